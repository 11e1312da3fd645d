import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/util/proc.js';
import { hostProcessesWith, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

describe('daemon crash and restart (SIGKILL)', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('keeps every sandbox usable, running or paused', async () => {
    const a = await d.client.sandboxes.create({ name: 'keep-running', image: 'minimal' });
    const b = await d.client.sandboxes.create({ name: 'keep-paused', image: 'minimal' });
    await a.exec(['sh', '-c', 'echo a > /work/a']);
    await b.exec(['sh', '-c', 'echo b > /work/b']);
    await b.stop();
    await d.restart();
    const list = await d.client.sandboxes.list();
    assert.deepEqual(list.map((s) => [s.name, s.state]), [['keep-running', 'running'], ['keep-paused', 'paused']]);
    assert.equal((await (await d.client.sandboxes.get('keep-running')).exec(['cat', '/work/a'])).stdout, 'a\n');
    assert.equal((await (await d.client.sandboxes.get('keep-paused')).exec(['cat', '/work/b'])).stdout, 'b\n');
    await a.destroy();
    await b.destroy();
  });

  it('kills commands that were running when the daemon died', async () => {
    const sb = await d.client.sandboxes.create({ name: 'mid-exec', image: 'minimal' });
    const marker = `crash-${Date.now()}`;
    const pending = sb.exec(['sh', '-c', `sh -c 'while :; do sleep 1; done' ${marker}`], { timeoutMs: 60_000 }).catch((e: Error) => e);
    await waitFor(() => hostProcessesWith(marker).length > 0, 5000, 'the command to start');
    await d.restart();
    await pending;
    await waitFor(() => hostProcessesWith(marker).length === 0, 5000, 'the stray command to be killed');
    assert.equal((await sb.exec(['echo', 'ok'])).stdout, 'ok\n');
    await sb.destroy();
  });

  it('keeps TTL timers across a restart', async () => {
    await d.client.sandboxes.create({ name: 'ttl-restart', image: 'minimal', ttlMs: 2500 });
    await d.kill9();
    await new Promise((r) => setTimeout(r, 3000));
    await d.start();
    await waitFor(async () => (await d.client.sandboxes.get('ttl-restart')).state === 'paused', 5000, 'TTL applied after restart');
    await (await d.client.sandboxes.get('ttl-restart')).destroy();
  });

  it('removes orphans the database does not know', async () => {
    await d.kill9();
    const pool = join(d.stateDir, 'storage', 'btrfs', 'pool', 'sandboxes', 'sb_orphanrootfs');
    await run(['btrfs', 'subvolume', 'create', pool]);
    const { resolvePaths } = await import('../../src/core/paths.js');
    const { detectCgroupKind } = await import('../../src/runtime/cgroups.js');
    // v1: one hierarchy per controller (memory stands for all); v2: the one unified tree.
    const hierarchy = detectCgroupKind() === 'v2' ? '/sys/fs/cgroup' : '/sys/fs/cgroup/memory';
    const cgroup = join(hierarchy, `nook-${resolvePaths({ NOOK_STATE_DIR: d.stateDir }).instance}`, 'sb_orphancgroup');
    mkdirSync(cgroup, { recursive: true });
    await d.start();
    assert.ok(!existsSync(pool), 'orphaned rootfs removed');
    assert.ok(!existsSync(cgroup), 'orphaned cgroup removed');
  });

  it('finishes an interrupted create by removing it', async () => {
    // A create that crashed after the row and rootfs were written, before compute started.
    const sb = await d.client.sandboxes.create({ name: 'half', image: 'minimal' });
    await d.kill9();
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(join(d.stateDir, 'nook.db'));
    db.prepare("UPDATE sandboxes SET state = 'creating' WHERE id = ?").run(sb.id);
    db.close();
    await d.start();
    assert.deepEqual((await d.client.sandboxes.list()).map((s) => s.name), []);
    assert.ok(!existsSync(join(d.stateDir, 'storage', 'btrfs', 'pool', 'sandboxes', sb.id)));
    const crun = await run(['crun', '--root', join(d.stateDir, 'run', 'oci'), 'list', '-q'], { allowFail: true });
    assert.equal(crun.stdout.trim(), '');
  });
});
