import assert from 'node:assert/strict';
import { existsSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { detectCgroupKind } from '../../src/runtime/cgroups.js';
import { resolvePaths } from '../../src/core/paths.js';
import { run } from '../../src/util/proc.js';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';


describe('snapshots, restore, fork, commit (real btrfs)', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('snapshots a running sandbox and restores it into a new one', async () => {
    const agent = await d.client.sandboxes.create({ name: 'agent', image: 'minimal' });
    await agent.exec(['sh', '-c', 'mkdir -p /work/deps && echo installed > /work/deps/marker']);
    const snap = await agent.snapshots.create({ name: 'after deps installed' });
    assert.equal(snap.name, 'after deps installed');
    assert.equal(snap.sandbox, 'agent');
    assert.ok(snap.durationMs < 1000);
    assert.equal((await agent.refresh()).state, 'running', 'the source goes on running');
    await agent.exec(['sh', '-c', 'rm -rf /work/deps; echo broken > /work/state']);

    const restored = await d.client.sandboxes.create({ name: 'restored', snapshot: 'agent@after deps installed' });
    assert.equal(restored.state, 'running');
    assert.match(restored.data.origin ?? '', /agent@after deps installed/);
    assert.equal((await restored.exec(['cat', '/work/deps/marker'])).stdout, 'installed\n');
    assert.equal((await restored.exec(['ls', '/work'])).stdout, 'deps\n');
    await waitFor(async () => ((await agent.snapshots.list())[0]?.sizeBytes ?? null) !== null, 10_000, 'the snapshot size');
    await restored.destroy();
  });

  it('captures a consistent state while a writer is busy', async () => {
    const sb = await d.client.sandboxes.create({ name: 'busy', image: 'minimal' });
    const writer = sb.exec(['sh', '-c', 'i=0; while [ $i -lt 200000 ]; do echo "line-$i-end" >> /work/log; i=$((i+1)); done'], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 500));
    await sb.snapshots.create({ name: 'mid-write' });
    await writer;
    const copy = await d.client.sandboxes.create({ name: 'busy-copy', snapshot: 'busy@mid-write' });
    const r = await copy.exec(['sh', '-c', 'wc -l < /work/log; grep -cv "^line-[0-9]*-end$" /work/log']);
    const [lines, bad] = r.stdout.trim().split('\n').map(Number);
    assert.ok((lines ?? 0) > 0, 'the snapshot caught the writer mid-way');
    assert.equal(bad, 0, 'no torn line in the snapshot');
    await copy.destroy();
    await sb.destroy({ withSnapshots: true });
  });

  it('refuses bad snapshot requests with clear errors', async () => {
    const agent = await d.client.sandboxes.get('agent');
    await rejectsWith(agent.snapshots.create({ name: 'after deps installed' }), 'NAME_TAKEN');
    await rejectsWith(agent.snapshots.create({ name: '/etc/passwd' }), 'INVALID_NAME');
    await rejectsWith(agent.snapshots.create({ name: '' }), 'INVALID_NAME');
    const mem = await rejectsWith(agent.snapshots.create({ name: 'with memory', memory: true }), 'NOT_SUPPORTED');
    assert.ok(mem.hint);
    await rejectsWith(d.client.sandboxes.create({ name: 'nope', snapshot: 'agent@no such snapshot' }), 'SNAPSHOT_NOT_FOUND');
    await rejectsWith(d.client.sandboxes.create({ name: 'nope', snapshot: 'agent@after deps installed', image: 'minimal' }), 'INVALID_ARGUMENT');
    assert.deepEqual((await d.client.sandboxes.list()).map((s) => s.name), ['agent'], 'nothing half-made');
  });

  it('keeps snapshots after their sandbox is destroyed, until asked', async () => {
    const agent = await d.client.sandboxes.get('agent');
    await agent.snapshots.create({ name: 'second' });
    const destroyed = await agent.destroy();
    assert.deepEqual(destroyed.snapshotsKept.sort(), ['after deps installed', 'second']);
    const listed = await d.client.snapshots.list('agent');
    assert.equal(listed.length, 2);
    assert.equal(listed[0]?.sandboxExists, false);
    const back = await d.client.sandboxes.create({ name: 'agent-back', snapshot: 'agent@after deps installed' });
    assert.equal((await back.exec(['cat', '/work/deps/marker'])).stdout, 'installed\n');
    await back.destroy();
    await d.client.snapshots.delete('agent', 'second');
    await d.client.snapshots.delete('agent', 'after deps installed');
    assert.deepEqual(await d.client.snapshots.list(), []);
  });

  it('destroy --with-snapshots removes them', async () => {
    const sb = await d.client.sandboxes.create({ name: 'with-snaps', image: 'minimal' });
    const snap = await sb.snapshots.create({ name: 's1' });
    const r = await sb.destroy({ withSnapshots: true });
    assert.deepEqual(r.snapshotsDeleted, ['s1']);
    assert.deepEqual(await d.client.snapshots.list(), []);
    assert.ok(!existsSync(join(d.stateDir, 'storage', 'btrfs', 'pool', 'snapshots', snap.id)));
  });

  it('forks a running sandbox: both go on independently', async () => {
    const src = await d.client.sandboxes.create({ name: 'src', image: 'minimal', labels: { team: 'x' }, env: { MODE: 'src' } });
    await src.exec(['sh', '-c', 'echo base > /work/f']);
    const [fork] = await src.fork({ name: 'branch' });
    assert.ok(fork);
    assert.equal(fork.state, 'running');
    assert.deepEqual(fork.data.labels, { team: 'x' });
    assert.equal((await fork.exec(['sh', '-c', 'echo $MODE; cat /work/f'])).stdout, 'src\nbase\n');
    await fork.exec(['sh', '-c', 'echo in-fork > /work/f']);
    await src.exec(['sh', '-c', 'echo in-src > /work/f']);
    assert.equal((await fork.exec(['cat', '/work/f'])).stdout, 'in-fork\n');
    assert.equal((await src.exec(['cat', '/work/f'])).stdout, 'in-src\n');
    assert.equal((await src.refresh()).state, 'running');
    await fork.destroy();
  });

  it('forks several copies from one snapshot, or none on bad input', async () => {
    const src = await d.client.sandboxes.get('src');
    const forks = await src.fork({ name: 'many', count: 3 });
    assert.deepEqual(forks.map((f) => f.name), ['many-1', 'many-2', 'many-3']);
    for (const f of forks) assert.equal((await f.exec(['cat', '/work/f'])).stdout, 'in-src\n');
    const before = (await d.client.sandboxes.list()).length;
    await rejectsWith(src.fork({ name: 'many', count: 3 }), 'NAME_TAKEN');
    await rejectsWith(src.fork({ name: 'Bad Name' }), 'INVALID_NAME');
    assert.equal((await d.client.sandboxes.list()).length, before, 'a failed fork leaves no partial sandbox');
    for (const f of forks) await f.destroy();
    assert.deepEqual(await run(['ls', join(d.stateDir, 'storage', 'btrfs', 'pool', 'snapshots')]).then((r) => r.stdout.trim()), '', 'no temporary snapshot left');
  });

  it('forks a paused sandbox too', async () => {
    const src = await d.client.sandboxes.get('src');
    await src.stop();
    const [fork] = await src.fork({ name: 'from-paused' });
    assert.equal((await fork?.exec(['cat', '/work/f']))?.stdout, 'in-src\n');
    assert.equal((await src.refresh()).state, 'paused');
    await fork?.destroy();
  });

  it('commits a sandbox into an image that new sandboxes start from', async () => {
    const src = await d.client.sandboxes.get('src');
    const img = await src.commit({ image: 'src-base' });
    assert.equal(img.name, 'src-base');
    assert.ok(img.sizeBytes > 0);
    const child = await d.client.sandboxes.create({ name: 'from-commit', image: 'src-base' });
    assert.equal((await child.exec(['cat', '/work/f'])).stdout, 'in-src\n');
    await rejectsWith(src.commit({ image: 'src-base' }), 'NAME_TAKEN');
    await rejectsWith(d.client.images.remove('src-base'), 'IMAGE_IN_USE');
    await child.destroy();
    await d.client.images.remove('src-base');
    await src.destroy();
  });
});

describe('selected-path persistence (Mistle)', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('keeps only the persisted paths across stop, resume and recycle', async () => {
    const w = await d.client.sandboxes.create({ name: 'w', image: 'minimal', persist: ['/root', '/workspace'] });
    assert.deepEqual(w.data.persist, ['/root', '/workspace']);
    await w.exec(['sh', '-c', 'echo r > /root/a; echo w > /workspace/b; echo gone > /etc/c; echo gone > /work/d']);
    await w.stop();
    await w.resume();
    assert.equal((await w.exec(['cat', '/root/a', '/workspace/b'])).stdout, 'r\nw\n');
    assert.equal((await w.exec(['sh', '-c', 'ls /etc/c /work/d 2>&1 | grep -c "No such file"'])).stdout.trim(), '2');
    await w.exec(['sh', '-c', 'echo again > /etc/c; echo r2 >> /root/a']);
    await w.recycle();
    assert.equal((await w.refresh()).state, 'running');
    assert.equal((await w.exec(['cat', '/root/a'])).stdout, 'r\nr2\n');
    assert.notEqual((await w.exec(['cat', '/etc/c'])).exitCode, 0);
  });

  it('persists across compute replacement after a crash', async () => {
    const w = await d.client.sandboxes.get('w');
    await w.exec(['sh', '-c', 'echo before-crash > /workspace/c; echo scratch > /tmp/x; echo scratch > /srv-x']);
    await d.kill9();
    // The host "reboots": the sandbox's compute is gone when the daemon comes back.
    const paths = resolvePaths({ NOOK_STATE_DIR: d.stateDir });
    await run(['unshare', '-m', '--propagation', 'unchanged', 'sh', '-c', 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --root "$1" delete -f "$2"', 'sh', paths.runtimeStateDir, w.id]);
    await d.start();
    assert.equal((await w.refresh()).state, 'paused');
    assert.equal((await w.exec(['cat', '/workspace/c'])).stdout, 'before-crash\n');
    assert.notEqual((await w.exec(['cat', '/srv-x'])).exitCode, 0);
  });

  it('snapshots, forks and commits persisted paths with the rest', async () => {
    const w = await d.client.sandboxes.get('w');
    await w.snapshots.create({ name: 'p' });
    const restored = await d.client.sandboxes.create({ name: 'w2', snapshot: 'w@p' });
    assert.deepEqual(restored.data.persist, ['/root', '/workspace']);
    assert.equal((await restored.exec(['cat', '/workspace/c'])).stdout, 'before-crash\n');
    const img = await w.commit({ image: 'w-image' });
    const plain = await d.client.sandboxes.create({ name: 'w3', image: img.name });
    assert.equal((await plain.exec(['cat', '/workspace/c'])).stdout, 'before-crash\n');
    for (const s of [restored, plain]) await s.destroy();
    await w.destroy({ withSnapshots: true });
    await d.client.images.remove('w-image');
  });

  it('refuses to recycle a sandbox whose whole rootfs persists, and bad paths', async () => {
    const plain = await d.client.sandboxes.create({ name: 'plain', image: 'minimal' });
    const e = await rejectsWith(plain.recycle(), 'INVALID_STATE');
    assert.match(e.hint ?? '', /--persist/);
    await rejectsWith(d.client.sandboxes.create({ name: 'badp', image: 'minimal', persist: ['relative'] }), 'INVALID_ARGUMENT');
    await rejectsWith(d.client.sandboxes.create({ name: 'badp', image: 'minimal', persist: ['/'] }), 'INVALID_ARGUMENT');
    await rejectsWith(d.client.sandboxes.create({ name: 'badp', image: 'minimal', persist: ['/a/../b'] }), 'INVALID_ARGUMENT');
    await rejectsWith(d.client.sandboxes.create({ name: 'badp', image: 'minimal', persist: ['/bin/sh'] }), 'INVALID_ARGUMENT');
    assert.deepEqual((await d.client.sandboxes.list()).map((s) => s.name), ['plain']);
    await plain.destroy();
  });
});

describe('snapshot crash safety', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('a snapshot interrupted by a crash is absent after restart, and the sandbox is thawed', async () => {
    const sb = await d.client.sandboxes.create({ name: 'frozen', image: 'minimal' });
    await sb.snapshots.create({ name: 'complete' });
    await d.kill9();
    // What a crash in the middle of a snapshot leaves: a half-made record, a frozen sandbox.
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(join(d.stateDir, 'nook.db'));
    db.prepare("INSERT INTO snapshots (id, sandbox_id, sandbox_name, name, state, image_id, created_at, spec_json) SELECT 'snap_halfmade0000', id, name, 'half', 'creating', image_id, 0, spec_json FROM sandboxes WHERE name = 'frozen'").run();
    db.prepare("UPDATE sandboxes SET state = 'snapshotting' WHERE name = 'frozen'").run();
    db.close();
    const paths = resolvePaths({ NOOK_STATE_DIR: d.stateDir });
    if (detectCgroupKind() === 'v2') writeFileSync(join('/sys/fs/cgroup', `nook-${paths.instance}`, sb.id, 'cgroup.freeze'), '1');
    else writeFileSync(join('/sys/fs/cgroup/freezer', `nook-${paths.instance}`, sb.id, 'freezer.state'), 'FROZEN');
    await run(['btrfs', 'subvolume', 'snapshot', join(d.stateDir, 'storage/btrfs/pool/sandboxes', sb.id, 'rootfs'), join(d.stateDir, 'storage/btrfs/pool/snapshots/snap_orphan')]);
    await d.start();
    assert.deepEqual((await sb.snapshots.list()).map((s) => s.name), ['complete']);
    assert.ok(!existsSync(join(d.stateDir, 'storage/btrfs/pool/snapshots/snap_orphan')));
    assert.equal((await sb.refresh()).state, 'running');
    assert.equal((await sb.exec(['echo', 'thawed'], { timeoutMs: 5000 })).stdout, 'thawed\n');
    await sb.destroy({ withSnapshots: true });
  });
});

describe('a full pool', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon({ NOOK_POOL_SIZE_GIB: '0.3' });
  });
  after(async () => d.teardown());

  it('answers NO_SPACE with the pool usage, and damages nothing that existed', async () => {
    // A disk limit as big as the pool: the default (half the pool) would stop the filler first.
    const st = statfsSync(join(d.stateDir, 'storage', 'btrfs', 'pool'));
    // Kernels before 6.7 (the cgroup v2 guest's 6.1) have no btrfs simple quotas: no disk limits, no default one either.
    const sb = await d.client.sandboxes
      .create({ name: 'filler', image: 'minimal', diskMiB: Math.floor((st.blocks * st.bsize) / 1048576) })
      .catch(async (e: { code?: string }) => {
        if (e.code !== 'NOT_SUPPORTED') throw e;
        return d.client.sandboxes.create({ name: 'filler', image: 'minimal' });
      });
    await sb.exec(['sh', '-c', 'echo precious > /work/keep']);
    await sb.snapshots.create({ name: 'before-full' });
    const fill = await sb.exec(['sh', '-c', 'dd if=/dev/urandom of=/work/big bs=1M count=400; r=$?; sync; exit $r'], { timeoutMs: 120_000 });
    assert.notEqual(fill.exitCode, 0, 'the sandbox itself sees ENOSPC');
    const attempts: [string, () => Promise<unknown>][] = [
      ['snapshot', () => sb.snapshots.create({ name: 'when-full' })],
      ['commit', () => sb.commit({ image: 'full-image' })],
      ['image build', () => d.client.images.build({ preset: 'minimal', name: 'another-image' })],
      ['create', () => d.client.sandboxes.create({ name: 'another', image: 'minimal' })],
    ];
    for (const [what, attempt] of attempts) {
      const e = await rejectsWith(attempt(), 'NO_SPACE');
      assert.match(e.message, /MiB free of \d+ MiB/, what);
      assert.ok(typeof e.context?.sizeBytes === 'number', what);
      assert.ok(e.hint, what);
    }
    assert.deepEqual((await d.client.sandboxes.list()).map((s) => s.name), ['filler']);
    assert.deepEqual((await d.client.images.list()).map((i) => i.name), ['minimal']);
    assert.deepEqual((await sb.snapshots.list()).map((s) => s.name), ['before-full']);
    await sb.exec(['sh', '-c', 'rm /work/big && sync']);
    await run(['btrfs', 'filesystem', 'sync', join(d.stateDir, 'storage', 'btrfs', 'pool')], { allowFail: true });
    assert.equal((await sb.exec(['cat', '/work/keep'])).stdout, 'precious\n');
    // btrfs returns freed extents after its next transaction commit: give it a moment.
    let restored: Awaited<ReturnType<typeof d.client.sandboxes.create>> | undefined;
    await waitFor(
      async () => {
        restored = await d.client.sandboxes.create({ name: 'restored', snapshot: 'filler@before-full' }).catch(() => undefined);
        return restored !== undefined;
      },
      60_000,
      'space to come back',
    );
    assert.ok(restored);
    assert.equal((await restored.exec(['cat', '/work/keep'])).stdout, 'precious\n');
  });
});
