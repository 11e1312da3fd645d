/**
 * The order of what happens when compute comes up: a process restarted on resume starts only
 * after the sandbox's declared volumes are mounted (it once started first, on an empty mount point).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

describe('compute lifecycle order (real volume, real crun)', () => {
  let d: TestDaemon;
  let keyDir: string;

  before(async () => {
    keyDir = mkdtempSync('/tmp/nook-order-keys-');
    d = await startDaemon({ NOOK_MASTER_KEY_FILE: join(keyDir, 'master.key') });
  });
  after(async () => {
    await d.teardown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  it('a process with restart on-resume sees its declared volume when it starts again', async () => {
    await d.client.volumes.create('order-vol', { sizeMiB: 32 });
    await d.client.volumes.unlock('order-vol');
    const sb = await d.client.sandboxes.create({ name: 'order', image: 'minimal', volumes: [{ volume: 'order-vol', guest: '/data', rw: true }] });
    await sb.exec(['sh', '-c', 'echo from-the-volume > /data/hello']);
    // Records what it saw at each start, in the rootfs (which persists), then idles.
    await sb.processes.start(['sh', '-c', 'cat /data/hello >> /seen 2>&1 || echo missing >> /seen; while :; do sleep 1; done'], { name: 'reader', restart: 'on-resume' });
    await waitFor(async () => (await sb.exec(['cat', '/seen'])).stdout !== '', 10_000, 'the first start');
    await sb.stop();
    await sb.resume();
    await waitFor(async () => (await sb.exec(['cat', '/seen'])).stdout.split('\n').length > 2, 10_000, 'the restart on resume');
    assert.equal((await sb.exec(['cat', '/seen'])).stdout, 'from-the-volume\nfrom-the-volume\n');
    await sb.destroy();
    await d.client.volumes.lock('order-vol');
  });
});
