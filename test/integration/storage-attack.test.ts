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
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
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

  it('refuses subvolume and snapshot ioctls inside a sandbox', { skip: gcc ? false : 'gcc is not installed' }, async () => {
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
    writeFileSync(join(work, 'ok'), '');
    await s.destroy();
  });
});
