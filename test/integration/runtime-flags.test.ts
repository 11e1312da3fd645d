/**
 * A runtime without hot mounts, egress, exposed ports, holder scans or freeze (what a gVisor
 * or microVM backend may be): every feature that needs one answers NOT_SUPPORTED with a
 * hint, leaves nothing half-made, and everything else keeps working. The real crun driver
 * with its flags turned off (NOOK_RUNTIME_DISABLE), through the real daemon.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

describe('runtime flags off: NOT_SUPPORTED, never a silent no-op', () => {
  let d: TestDaemon;
  let host: string;

  before(async () => {
    host = mkdtempSync('/tmp/nook-flags-');
    d = await startDaemon({ NOOK_RUNTIME_DISABLE: 'hotMounts,egress,exposePorts,holders,freeze', NOOK_MASTER_KEY_FILE: join(host, 'master.key') });
  });
  after(async () => {
    await d.teardown();
    rmSync(host, { recursive: true, force: true });
  });

  it('refuses what needs a missing feature, and the sandbox stays as it was', async () => {
    const sb = await d.client.sandboxes.create({ name: 'plain', image: 'minimal' });
    assert.equal((await sb.exec(['echo', 'ok'])).stdout, 'ok\n', 'exec needs none of them');

    const noMount = await rejectsWith(
      (async () => {
        await d.client.volumes.create('v', { sizeMiB: 32 });
        await d.client.volumes.unlock('v');
        return sb.volumes.mount('v', '/v');
      })(),
      'NOT_SUPPORTED',
      /cannot mount into a running sandbox/,
    );
    assert.ok(noMount.hint);
    assert.equal((await d.client.volumes.get('v')).mountedIn, null, 'the volume is not marked as held');

    const noEgress = await rejectsWith(sb.network.allow('example.test:443'), 'NOT_SUPPORTED', /egress/);
    assert.ok(noEgress.hint);
    assert.equal((await sb.network.show()).policy.mode, 'none', 'the policy did not change');

    const noExpose = await rejectsWith(sb.expose(8000), 'NOT_SUPPORTED', /expose/);
    assert.ok(noExpose.hint);
    assert.deepEqual(await sb.exposures.list(), []);

    await rejectsWith(sb.snapshots.create({ name: 'live' }), 'NOT_SUPPORTED', /freeze/);
    await sb.destroy();
  });

  it('refuses to create a sandbox whose attachments or egress it cannot give, leaving nothing', async () => {
    await rejectsWith(d.client.sandboxes.create({ name: 'with-dir', image: 'minimal', attach: [{ kind: 'dir', source: host, guest: '/h' }] }), 'NOT_SUPPORTED', /mount into a running sandbox/);
    await rejectsWith(d.client.sandboxes.create({ name: 'online', image: 'minimal', network: 'allowlist', allowHosts: ['example.test:443'] }), 'NOT_SUPPORTED', /egress/);
    assert.deepEqual((await d.client.sandboxes.list()).map((s) => s.name), []);
  });
});
