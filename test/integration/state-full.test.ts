/**
 * The state dir's file system filling up: the daemon refuses new work with NO_SPACE before
 * anything starts (its btrfs pool is a loop file there, and must never be starved), SQLite
 * running out of room answers NO_SPACE too, reads and clean-ups keep working, and once
 * space is back everything that existed before works and the audit chain verifies.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NookError } from '../../src/api/errors.js';
import { run } from '../../src/util/proc.js';
import { rejectsWith } from '../helpers/assert.js';
import { TestDaemon } from '../helpers/daemon.js';

describe('a full state dir', () => {
  let mnt: string;
  let d: TestDaemon;
  const filler = (): string => join(mnt, 'filler');

  /** Fills the file system until `leaveBytes` are free. */
  const fill = async (leaveBytes: number): Promise<void> => {
    rmSync(filler(), { force: true });
    const st = statfsSync(mnt);
    const free = st.bavail * st.bsize;
    await run(['fallocate', '-l', String(Math.max(0, free - leaveBytes)), filler()]);
  };

  before(async () => {
    mnt = mkdtempSync('/tmp/nook-statefull-');
    await run(['mount', '-t', 'tmpfs', '-o', 'size=400m', 'tmpfs', mnt]);
    mkdirSync(join(mnt, 'state'));
    d = new TestDaemon(join(mnt, 'state'), { NOOK_POOL_SIZE_GIB: '1' });
    await d.start();
  });
  after(async () => {
    rmSync(filler(), { force: true });
    await d.teardown();
    // The pool's loop device lets go of its file a moment after the pool is unmounted.
    for (let i = 0; i < 50 && (await run(['umount', mnt], { allowFail: true })).code !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    rmSync(mnt, { recursive: true, force: true });
  });

  it('refuses new work cleanly, keeps reads and clean-ups, and recovers when space returns', async () => {
    const a = await d.client.sandboxes.create({ name: 'before', image: 'minimal' });
    await a.exec(['sh', '-c', 'echo kept > /work/kept']);
    const spare = await d.client.sandboxes.create({ name: 'spare', image: 'minimal' });

    await fill(16 * 1024 * 1024);
    await rejectsWith(d.client.sandboxes.create({ name: 'during', image: 'minimal' }), 'NO_SPACE', /state dir/);
    await rejectsWith(a.exec(['true']), 'NO_SPACE');
    await rejectsWith(a.snapshots.create({ name: 'full' }), 'NO_SPACE');
    // Reads answer; clean-ups (which free space) go through.
    assert.deepEqual((await d.client.sandboxes.list()).map((s) => s.name).sort(), ['before', 'spare']);
    assert.equal((await a.files.read('/work/kept')).toString(), 'kept\n');
    await spare.destroy();
    assert.equal((await d.client.health()).ok, true);

    rmSync(filler(), { force: true });
    assert.deepEqual((await d.client.sandboxes.list()).map((s) => s.name), ['before'], 'no half-made sandbox');
    assert.equal((await a.exec(['cat', '/work/kept'])).stdout, 'kept\n');
    const after = await d.client.sandboxes.create({ name: 'after', image: 'minimal' });
    assert.equal((await after.exec(['echo', 'fine'])).stdout, 'fine\n');
    assert.equal((await d.client.audit.verify()).ok, true);
    await after.destroy();
  });

  it('SQLite running out of room answers NO_SPACE, never a 500, and the chain still verifies', async () => {
    // Without the guard's reserve, the database itself hits the wall.
    await d.teardown();
    mkdirSync(join(mnt, 'state2'));
    d = new TestDaemon(join(mnt, 'state2'), { NOOK_POOL_SIZE_GIB: '1', NOOK_MIN_FREE_MIB: '0' });
    await d.start();
    await fill(0);
    const codes = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const outcome = await d.client.profiles.save(`p${i}`, { persistent: true, memoryMiB: 256 }).then(
        () => 'ok',
        (e: unknown) => (e instanceof NookError ? e.code : `not a NookError: ${String(e)}`),
      );
      codes.set(outcome, (codes.get(outcome) ?? 0) + 1);
      if (outcome !== 'ok' && (codes.get(outcome) ?? 0) > 5) break;
    }
    assert.deepEqual([...codes.keys()].filter((c) => c !== 'ok' && c !== 'NO_SPACE'), [], `outcomes: ${JSON.stringify([...codes])}`);
    assert.ok((codes.get('NO_SPACE') ?? 0) > 0, 'the database filled up and said so');
    assert.equal((await d.client.health()).ok, true);
    rmSync(filler(), { force: true });
    assert.equal((await d.client.audit.verify()).ok, true);
    await d.client.profiles.save('after-full', { persistent: true });
  });
});
