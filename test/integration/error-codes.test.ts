import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileNotFoundError, NotFoundError, ProcessNotFoundError, SandboxNotFoundError, VolumeNotFoundError } from '../../src/api/error-classes.js';
import { NookError } from '../../src/api/errors.js';
import type { Sandbox } from '../../src/sdk/index.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

/** Awaits `p`, which must fail; returns what it threw. */
async function thrown(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  return assert.fail('expected an error');
}

describe('typed errors from a real daemon: what is missing says what it is', () => {
  let d: TestDaemon;
  let sb: Sandbox;
  let keyDir: string;

  before(async () => {
    keyDir = mkdtempSync('/tmp/nook-errkey-');
    d = await startDaemon({ NOOK_MASTER_KEY_FILE: join(keyDir, 'master.key') });
    sb = await d.client.sandboxes.create({ name: 'errs', image: 'minimal' });
  });
  after(async () => {
    await d.teardown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  it('a missing process is PROCESS_NOT_FOUND, a ProcessNotFoundError naming it', async () => {
    // Thunks, not promises made up front: one would reject before it is awaited.
    for (const call of [() => sb.processes.get('no-such'), () => sb.processes.kill('no-such')]) {
      const e = await thrown(call());
      assert.ok(e instanceof ProcessNotFoundError && e instanceof NotFoundError && e instanceof NookError, String(e));
      assert.equal(e.code, 'PROCESS_NOT_FOUND');
      assert.equal(e.status, 404);
      assert.equal(e.context?.process, 'no-such');
      assert.equal(e.context?.sandboxId, sb.id);
    }
  });

  it('a ProcessHandle follows its process to the end', async () => {
    const handle = await sb.processes.spawn('echo hi; exit 3', { name: 'short' });
    let out = '';
    const final = await handle.wait({ onStdout: (b) => (out += b.toString()) });
    assert.deepEqual([final.state, final.exitCode, out], ['exited', 3, 'hi\n']);
    assert.equal(handle.state, 'exited');
    assert.equal((await sb.processes.handle('short')).id, handle.id);
  });

  it('a missing volume (by name, or at a mount point) is VOLUME_NOT_FOUND', async () => {
    const byName = await thrown(d.client.volumes.get('no-such'));
    assert.ok(byName instanceof VolumeNotFoundError, String(byName));
    assert.deepEqual(byName.context, { name: 'no-such' });
    const atPath = await thrown(sb.volumes.unmount('/nowhere'));
    assert.ok(atPath instanceof VolumeNotFoundError, String(atPath));
    assert.deepEqual(atPath.context, { sandbox: 'errs', guest: '/nowhere' });
  });

  it('a missing file is FILE_NOT_FOUND, from stat, read and a copy-out alike', async () => {
    for (const call of [() => sb.files.stat('/work/nope'), () => sb.files.read('/work/nope'), () => sb.files.readTar('/work/nope')]) {
      const e = await thrown(call());
      assert.ok(e instanceof FileNotFoundError, String(e));
      assert.equal(e.code, 'FILE_NOT_FOUND');
      assert.equal(e.context?.path, '/work/nope');
    }
  });

  it('keeps generic NOT_FOUND for an unknown endpoint and SANDBOX_NOT_FOUND for a sandbox', async () => {
    const endpoint = await thrown(d.client.transport.json('GET', '/v1/no-such-endpoint'));
    assert.ok(endpoint instanceof NotFoundError && endpoint.code === 'NOT_FOUND' && !(endpoint instanceof FileNotFoundError), String(endpoint));
    const sandbox = await thrown(d.client.sandboxes.get('no-such'));
    assert.ok(sandbox instanceof SandboxNotFoundError, String(sandbox));
    assert.deepEqual(sandbox.context, { ref: 'no-such' });
  });

  it('the CLI still renders code and hint, and --json the wire body', async () => {
    const r = await d.cli(['volume', 'inspect', 'no-such']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no volume named no-such \[VOLUME_NOT_FOUND\]/);
    assert.match(r.stderr, /nook volume ls/);
    const j = await d.cli(['volume', 'inspect', 'no-such', '--json']);
    assert.equal((JSON.parse(j.stderr) as { code: string }).code, 'VOLUME_NOT_FOUND');
  });
});
