/**
 * Storage attacks from inside a sandbox.
 *
 * 1. Clean-up steered by a subvolume name: a sandbox that made nested btrfs subvolumes
 *    (an older sandbox could, by ioctl) names one "x\nID 1 gen 1 top level 5 path <victim>".
 *    Deleting the sandbox must remove exactly its own subvolumes, never the injected
 *    path: other sandboxes, images, snapshots and the pool file survive. The subvolumes
 *    are made from the host (what a sandbox could have made before seccomp refused it).
 * 2. Today a sandbox cannot make subvolumes at all: the ioctls answer EPERM (also with
 *    the upper 32 bits of the command set, which the kernel ignores).
 * 3. Filling the shared pool: a sandbox writes until it cannot. It hits its own disk limit
 *    (EDQUOT), and its neighbours keep writing, creating and snapshotting. Without an
 *    explicit limit the default (at most half the pool) still stops it.
 * 4. A full pool: create and snapshot answer NO_SPACE instead of "succeeding" with a
 *    sandbox that cannot write.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import type { Usage } from '../../src/api/schemas.js';
import { rejectsWith } from '../helpers/assert.js';
import { resolvePaths } from '../../src/core/paths.js';
import { run, which } from '../../src/util/proc.js';
import { REPO_ROOT, startDaemon, type TestDaemon } from '../helpers/daemon.js';

describe('storage attacks', async () => {
  const gcc = await which('gcc');
  let d: TestDaemon;
  let pool: string;
  let work: string;

  before(async () => {
    work = mkdtempSync('/tmp/nook-storage-attack-');
    d = await startDaemon({ NOOK_STORAGE: 'btrfs' });
    pool = join(resolvePaths({ NOOK_STATE_DIR: d.stateDir }).storageDir, 'btrfs', 'pool');
  });
  after(async () => {
    await d.teardown();
    rmSync(work, { recursive: true, force: true });
  });

  /** Nested subvolumes with injected names under `dir`, one per victim path (relative to the pool). */
  const plant = async (dir: string, victims: string[]): Promise<void> => {
    await run(['btrfs', 'subvolume', 'create', join(dir, 'outer')]);
    for (const [i, v] of victims.entries()) {
      await run(['btrfs', 'subvolume', 'create', join(dir, `x${i}\nID 1 gen 1 top level 5 path ${v}`)]);
      // and one nested a level deeper, inside another subvolume
      await run(['btrfs', 'subvolume', 'create', join(dir, 'outer', `y${i}\nID 1 gen 1 top level 5 path ${v}`)]);
    }
  };

  const attempts: { name: string; remove: (s: Sandbox) => Promise<unknown> }[] = [
    { name: 'destroy', remove: (s) => s.destroy() },
    { name: 'recycle', remove: (s) => s.recycle() },
  ];
  for (const attempt of attempts) {
    it(`${attempt.name} of a sandbox with injected subvolume names removes only its own subvolumes`, async () => {
      const victim = await d.client.sandboxes.create({ name: `victim-${attempt.name}`, image: 'minimal' });
      await victim.exec(['sh', '-c', 'echo precious > /work/data']);
      const snap = await victim.snapshots.create({ name: `snap-${attempt.name}` });
      const attacker = await d.client.sandboxes.create({ name: `attacker-${attempt.name}`, image: 'minimal', persist: ['/work'] });
      await attacker.stop();
      const rootfs = join(pool, 'sandboxes', attacker.id, 'rootfs');
      const imagesBefore = (await d.client.images.list({ all: true })).map((i) => i.id).sort();
      // A name is one path component (no '/'), so the reachable victims are the pool's own
      // directories, and '..': the directory holding the pool file.
      await plant(rootfs, ['sandboxes', 'images', 'snapshots', '..']);

      await attempt.remove(attacker);

      assert.equal(existsSync(join(pool, '..', 'pool.btrfs')), true, 'the pool file is intact');
      assert.equal((await victim.exec(['cat', '/work/data'])).stdout, 'precious\n', 'the victim keeps its data');
      assert.deepEqual((await d.client.images.list({ all: true })).map((i) => i.id).sort(), imagesBefore, 'images are intact');
      assert.equal(existsSync(join(pool, 'snapshots', snap.id, 'rootfs', 'work', 'data')), true, 'the snapshot is intact');
      const restored = await d.client.sandboxes.create({ name: `restored-${attempt.name}`, snapshot: snap.id });
      assert.equal((await restored.exec(['cat', '/work/data'])).stdout, 'precious\n');
      const listed = (await run(['btrfs', 'subvolume', 'list', '-o', join(pool, 'sandboxes', attacker.id)], { allowFail: true })).stdout;
      assert.doesNotMatch(listed, /outer|x0/, 'the attacker subvolumes are gone');
      if (attempt.name === 'recycle') {
        assert.equal((await attacker.exec(['echo', 'fresh'])).stdout, 'fresh\n');
        await attacker.destroy();
      }
      await restored.destroy();
      await victim.destroy({ withSnapshots: true });
    });
  }

  it('refuses subvolume and snapshot ioctls, and extent clones the quota would not charge, inside a sandbox', { skip: gcc ? false : 'gcc is not installed' }, async () => {
    await run(['gcc', '-static', '-O1', '-DSUBVOL_ONLY', '-o', join(work, 'probe'), join(REPO_ROOT, 'test', 'fixtures', 'escape-probe.c')]);
    const s = await d.client.sandboxes.create({ name: 'ioctl', image: 'minimal' });
    await s.files.write('/work/probe', readFileSync(join(work, 'probe')), { mode: 0o755 });
    const r = await s.exec(['/work/probe'], { timeoutMs: 30_000 });
    assert.equal(r.exitCode, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    for (const name of ['btrfs-subvol-create', 'btrfs-subvol-create-v2', 'btrfs-subvol-create-hibits', 'btrfs-snap-create-v2', 'btrfs-snap-destroy']) {
      const line = lines.find((l) => l.startsWith(`${name} `));
      assert.ok(line, `the probe reported on ${name}: ${r.stdout}`);
      assert.match(line, / refused EPERM$/, line);
    }
    // Ordinary ioctls still work (a terminal query answers, not EPERM).
    assert.ok(lines.includes('tcgets refused ENOTTY'), r.stdout);
    // Clones and dedupes on the sandbox's own btrfs (each works there without the profile):
    // refused with what makes cp and friends copy the bytes instead, which still works.
    for (const name of ['ficlone', 'ficlonerange', 'ficlone-hibits', 'fidedupe']) assert.ok(lines.includes(`${name} refused EOPNOTSUPP`), `${name}: ${r.stdout}`);
    assert.ok(lines.includes('copy-file-range refused ENOSYS'), r.stdout);
    assert.ok(lines.includes('write-copy ALLOWED'), r.stdout);
    await s.destroy();
  });

  /** Writes 1 MiB blocks to `path` in the sandbox until the kernel refuses; returns what dd said. */
  const fillUp = async (s: Sandbox, path: string, mib: number): Promise<{ exitCode: number; out: string }> => {
    const r = await s.exec(['sh', '-c', `dd if=/dev/zero of=${path} bs=1M count=${mib} conv=fsync 2>&1`], { timeoutMs: 120_000 });
    return { exitCode: r.exitCode, out: r.stdout + r.stderr };
  };

  it('a sandbox with --disk-mib 64 fills only itself; neighbours write, create and snapshot', async () => {
    const hog = await d.client.sandboxes.create({ name: 'hog', image: 'minimal', diskMiB: 64, persist: ['/work'] });
    assert.equal(hog.data.limits.diskMiB, 64, 'the limit is on the sandbox object');
    const neighbour = await d.client.sandboxes.create({ name: 'neighbour', image: 'minimal' });
    const falloc = await hog.exec(['sh', '-c', 'fallocate -l 1G /work/big 2>&1; echo rc=$?']);
    assert.match(falloc.stdout, /Disk quota exceeded|No space left/, falloc.stdout);
    // The limit covers every unit together: the rootfs and the persisted /work.
    const dd = await fillUp(hog, '/work/fill', 1024);
    assert.notEqual(dd.exitCode, 0, dd.out);
    assert.match(dd.out, /Disk quota exceeded|No space left/, dd.out);
    const more = await fillUp(hog, '/more', 64); // the rootfs unit (/tmp is a tmpfs)
    assert.match(more.out, /Disk quota exceeded|No space left/, more.out);

    assert.equal((await fillUp(neighbour, '/work/ten', 10)).exitCode, 0, 'the neighbour writes 10 MiB');
    const fresh = await d.client.sandboxes.create({ name: 'fresh', image: 'minimal' });
    assert.equal((await fresh.exec(['echo', 'ok'])).stdout, 'ok\n');
    const snap = await neighbour.snapshots.create({ name: 'after-hog' });

    const inspect = await d.cli(['inspect', 'hog', '--json']);
    assert.equal((JSON.parse(inspect.stdout) as { limits: { diskMiB: number } }).limits.diskMiB, 64, inspect.stdout + inspect.stderr);
    const usage = JSON.parse((await d.cli(['usage', 'hog', '--json'])).stdout) as Usage;
    assert.equal(usage.disk.limitMiB, 64);
    assert.ok(usage.disk.usedBytes !== null && usage.disk.usedBytes > 48 * 1024 * 1024 && usage.disk.usedBytes <= 65 * 1024 * 1024, JSON.stringify(usage.disk));
    assert.match((await d.cli(['usage', 'hog'])).stdout, /disk \d+(\.\d+)? MiB of 64 MiB/);

    // Recycle (a fresh rootfs), restore and fork keep the limit.
    await hog.exec(['rm', '-f', '/work/fill', '/work/big']);
    await hog.recycle();
    assert.match((await fillUp(hog, '/work/fill', 1024)).out, /Disk quota exceeded|No space left/, 'after recycle');
    const hogSnap = await hog.snapshots.create({ name: 'full' });
    const restored = await d.client.sandboxes.create({ name: 'hog-restored', snapshot: hogSnap.id });
    assert.equal(restored.data.limits.diskMiB, 64);
    assert.match((await fillUp(restored, '/work/again', 1024)).out, /Disk quota exceeded|No space left/, 'after restore');
    const [fork] = await hog.fork({ name: 'hog-fork' });
    assert.equal(fork?.data.limits.diskMiB, 64);
    for (const s of [fork, restored, fresh, hog]) await s?.destroy({ withSnapshots: true });
    await neighbour.destroy();
    assert.ok(snap.id);
  });

  it('without --disk-mib the default limit (at most half the pool) stops a sandbox filling the pool', async () => {
    const hog = await d.client.sandboxes.create({ name: 'default-hog', image: 'minimal' });
    const neighbour = await d.client.sandboxes.create({ name: 'default-neighbour', image: 'minimal' });
    const r = await hog.exec(['sh', '-c', 'fallocate -l 7G /work/huge 2>&1; echo rc=$?']);
    assert.equal((await fillUp(neighbour, '/work/ten', 10)).exitCode, 0, 'the neighbour still writes');
    assert.match(r.stdout, /Disk quota exceeded/, r.stdout);
    const poolMiB = 8 * 1024;
    assert.ok(hog.data.limits.diskMiB !== null && hog.data.limits.diskMiB !== undefined && hog.data.limits.diskMiB <= poolMiB / 2, JSON.stringify(hog.data.limits));
    await hog.destroy();
    await neighbour.destroy();
  });

  it('asking a disk limit larger than the pool is refused before anything is made', async () => {
    await rejectsWith(d.client.sandboxes.create({ name: 'too-big', image: 'minimal', diskMiB: 1024 * 1024 }), 'INVALID_ARGUMENT', /pool/);
    assert.equal((await d.client.sandboxes.list()).some((s) => s.name === 'too-big'), false);
  });

  it('a full pool refuses create and snapshot with NO_SPACE', async () => {
    const s = await d.client.sandboxes.create({ name: 'before-full', image: 'minimal' });
    // Fill the pool from the host, outside any sandbox's quota group.
    const filler = join(pool, 'staging', 'filler');
    // Space of earlier tests' destroyed sandboxes is freed in the background; the daemon waits
    // for it before saying NO_SPACE, so the pool is filled only once it is settled.
    await run(['btrfs', 'subvolume', 'sync', pool]);
    await run(['btrfs', 'filesystem', 'sync', pool]);
    const st = statfsSync(pool);
    await run(['fallocate', '-l', String(st.bavail * st.bsize), filler], { allowFail: true });
    await run(['sync']);
    try {
      await rejectsWith(d.client.sandboxes.create({ name: 'during-full', image: 'minimal' }), 'NO_SPACE', /pool/);
      await rejectsWith(s.snapshots.create({ name: 'during-full' }), 'NO_SPACE', /pool/);
      assert.deepEqual((await s.snapshots.list()).map((x) => x.name), [], 'no half-made snapshot');
    } finally {
      rmSync(filler, { force: true });
      await run(['sync']);
    }
    await s.destroy();
  });
});

describe('disk limits on dir storage', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon({ NOOK_STORAGE: 'dir' });
  });
  after(async () => d.teardown());

  it('answers NOT_SUPPORTED to an explicit diskMiB, and shows no limit otherwise', async () => {
    await rejectsWith(d.client.sandboxes.create({ name: 'limited', image: 'minimal', diskMiB: 64 }), 'NOT_SUPPORTED', /cannot enforce a disk limit/);
    const s = await d.client.sandboxes.create({ name: 'unlimited', image: 'minimal' });
    assert.equal(s.data.limits.diskMiB, null);
    assert.deepEqual((await s.usage()).disk, { usedBytes: null, limitMiB: null });
    await s.destroy();
  });
});
