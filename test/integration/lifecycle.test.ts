import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

function poolPath(d: TestDaemon, id: string): string {
  return join(d.stateDir, 'storage', 'btrfs', 'pool', 'sandboxes', id);
}


describe('lifecycle (real crun, real btrfs)', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('keeps files across stop and resume', async () => {
    const sb = await d.client.sandboxes.create({ name: 'persist', image: 'minimal' });
    assert.equal(sb.state, 'running');
    await sb.exec(['sh', '-c', 'echo kept > /work/file; echo also > /root/r']);
    await sb.stop();
    assert.equal(sb.state, 'paused');
    assert.equal((await d.client.sandboxes.get('persist')).state, 'paused');
    await sb.resume();
    assert.equal(sb.state, 'running');
    assert.equal((await sb.exec(['cat', '/work/file', '/root/r'])).stdout, 'kept\nalso\n');
    await sb.destroy();
  });

  it('ends a running command with SIGTERM when its sandbox stops, without hanging', async () => {
    const sb = await d.client.sandboxes.create({ name: 'stop-mid-exec', image: 'minimal' });
    const pending = sb.exec(['sleep', '300'], { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 300));
    await sb.stop();
    const r = await pending;
    assert.equal(r.signal, 'SIGTERM');
    assert.equal(r.exitCode, 143);
    assert.ok(r.durationMs < 10_000);
    await sb.destroy();
  });

  it('resumes a paused sandbox on exec', async () => {
    const sb = await d.client.sandboxes.create({ name: 'autoresume', image: 'minimal' });
    await sb.exec(['sh', '-c', 'echo 1 > /work/n']);
    await sb.stop();
    const r = await sb.exec(['cat', '/work/n']);
    assert.equal(r.stdout, '1\n');
    assert.equal((await sb.refresh()).state, 'running');
    await sb.destroy();
  });

  it('destroy removes the sandbox and its files', async () => {
    const sb = await d.client.sandboxes.create({ name: 'gone', image: 'minimal' });
    assert.ok(existsSync(poolPath(d, sb.id)));
    await sb.destroy();
    assert.ok(!existsSync(poolPath(d, sb.id)));
    await rejectsWith(d.client.sandboxes.get('gone'), 'SANDBOX_NOT_FOUND');
  });

  it('non-persistent sandboxes are discarded on stop', async () => {
    const sb = await d.client.sandboxes.create({ name: 'ephemeral', image: 'minimal', persistent: false });
    await sb.stop();
    await rejectsWith(d.client.sandboxes.get('ephemeral'), 'SANDBOX_NOT_FOUND');
    assert.ok(!existsSync(poolPath(d, sb.id)));
  });

  it('rejects bad and duplicate names with a clear error, leaving nothing behind', async () => {
    const before = (await d.client.sandboxes.list()).length;
    for (const name of ['Upper', '-lead', 'a'.repeat(64), 'sp ace', '']) {
      const e = await rejectsWith(d.client.sandboxes.create({ name, image: 'minimal' }), 'INVALID_NAME');
      assert.ok(e.hint);
    }
    await d.client.sandboxes.create({ name: 'dup', image: 'minimal' });
    const e = await rejectsWith(d.client.sandboxes.create({ name: 'dup', image: 'minimal' }), 'NAME_TAKEN');
    assert.match(e.hint ?? '', /nook destroy dup/);
    await rejectsWith(d.client.sandboxes.create({ name: 'noimg', image: 'no-such-image' }), 'IMAGE_NOT_FOUND');
    assert.equal((await d.client.sandboxes.list()).length, before + 1);
    await (await d.client.sandboxes.get('dup')).destroy();
  });

  it('stores labels and filters by them', async () => {
    await d.client.sandboxes.create({ name: 'l1', image: 'minimal', labels: { team: 'a', tier: 'x' } });
    await d.client.sandboxes.create({ name: 'l2', image: 'minimal', labels: { team: 'b' } });
    const a = await d.client.sandboxes.list({ labels: { team: 'a' } });
    assert.deepEqual(a.map((s) => s.name), ['l1']);
    assert.deepEqual(a[0]?.data.labels, { team: 'a', tier: 'x' });
    const none = await d.client.sandboxes.list({ labels: { team: 'a', tier: 'y' } });
    assert.equal(none.length, 0);
    for (const n of ['l1', 'l2']) await (await d.client.sandboxes.get(n)).destroy();
  });

  it('TTL stops a persistent sandbox and keeps its files', async () => {
    const sb = await d.client.sandboxes.create({ name: 'ttl-p', image: 'minimal', ttlMs: 1500 });
    assert.ok(sb.data.expiresAt);
    await sb.exec(['sh', '-c', 'echo still > /work/f']);
    await waitFor(async () => (await sb.refresh()).state === 'paused', 10_000, 'TTL stop');
    assert.equal((await sb.exec(['cat', '/work/f'])).stdout, 'still\n');
    await sb.destroy();
  });

  it('TTL destroys a non-persistent sandbox', async () => {
    const sb = await d.client.sandboxes.create({ name: 'ttl-np', image: 'minimal', ttlMs: 1500, persistent: false });
    await waitFor(async () => (await d.client.sandboxes.list()).every((s) => s.name !== 'ttl-np'), 10_000, 'TTL destroy');
    assert.ok(!existsSync(poolPath(d, sb.id)));
  });

  it('refuses to remove an image in use', async () => {
    const sb = await d.client.sandboxes.create({ name: 'img-user', image: 'minimal' });
    const e = await rejectsWith(d.client.images.remove('minimal'), 'IMAGE_IN_USE');
    assert.match(e.message, /img-user/);
    await sb.destroy();
  });

  it('runs one-shot commands and leaves no sandbox', async () => {
    const before = (await d.client.sandboxes.list()).length;
    const out: string[] = [];
    const r = await d.client.run(['sh', '-c', 'echo one-shot; exit 4'], { image: 'minimal', onStdout: (b) => out.push(b.toString()) });
    assert.equal(r.exitCode, 4);
    assert.equal(out.join(''), 'one-shot\n');
    // The answer does not wait for the destroy: until it ends the sandbox is listed as destroying.
    const listed = await d.client.sandboxes.list();
    const extra = listed.filter((s) => s.data.labels['nook.run'] === 'true');
    assert.equal(listed.length - extra.length, before);
    assert.ok(extra.every((s) => s.data.state === 'destroying'), JSON.stringify(extra.map((s) => s.data.state)));
    await waitFor(async () => (await d.client.sandboxes.list()).length === before, 10_000, 'the one-shot sandbox gone');
  });
});
