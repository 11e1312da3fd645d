/**
 * Cross-tenant denial of service through the shared btrfs pool.
 *
 * Each sandbox's disk limit (btrfs simple quotas) is at most half the pool, but nothing
 * bounds the sum of the limits: three sandboxes that each stay inside their own limit can
 * together fill the pool. If their data takes every chunk, btrfs has no room left to grow
 * its metadata, aborts a transaction with ENOSPC and forces the WHOLE pool read-only:
 * every sandbox, image and snapshot on it is broken until an operator unmounts and checks it.
 *
 * The attackers write and delete (space freed by a delete is held until the next commit)
 * within their limits, on a 2 GiB pool. Afterwards, once they are destroyed, the pool must
 * still be read-write (no "forced readonly" for its loop device in the kernel log), a fresh
 * sandbox must write, and while it was full the daemon must have answered NO_SPACE.
 *
 * Measured (kernel 6.18, 2026-11-30): the attackers fill the pool (65 KiB free of 2 GiB,
 * every chunk allocated to data) but btrfs refuses their further writes with ENOSPC and
 * does not abort. What broke: right after they were destroyed the pool still looked full
 * (their subvolumes are freed in the background) and the newcomer got NO_SPACE; the btrfs
 * driver now waits for that clean-up before refusing (newcomer created in ~16 s here).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { NookError } from '../../src/api/errors.js';
import { resolvePaths } from '../../src/core/paths.js';
import { run } from '../../src/util/proc.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

const POOL_GIB = 2;

/** Kernel log lines about `dev` (e.g. "loop3") that say the filesystem gave up. */
async function kernelAborts(dev: string): Promise<string[]> {
  const r = await run(['dmesg'], { allowFail: true });
  const mine = new RegExp(`\\(device ${dev}[ )]`);
  return r.stdout.split('\n').filter((l) => mine.test(l) && /forced readonly|Transaction aborted|errno=-28/.test(l));
}

/** Mount options of `mountPoint` as /proc/mounts shows them. */
function mountOptions(mountPoint: string): string[] {
  const line = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[1] === mountPoint);
  return (line?.split(' ')[3] ?? '').split(',');
}

describe('a tenant filling the shared pool within its disk limits', () => {
  let d: TestDaemon;
  let pool: string;
  let loopDev = '';
  let kernelLogBefore: string[] = [];

  before(async () => {
    d = await startDaemon({ NOOK_STORAGE: 'btrfs', NOOK_POOL_SIZE_GIB: String(POOL_GIB) });
    const storage = join(resolvePaths({ NOOK_STATE_DIR: d.stateDir }).storageDir, 'btrfs');
    pool = join(storage, 'pool');
    const loops = await run(['losetup', '-j', join(storage, 'pool.btrfs')]);
    loopDev = (loops.stdout.split(':')[0] ?? '').replace('/dev/', '');
    assert.match(loopDev, /^loop\d+$/, loops.stdout);
    kernelLogBefore = await kernelAborts(loopDev);
  });
  after(async () => d.teardown());

  /** Writes `mib` MiB in 64 MiB files then deletes them, `rounds` times; returns what the shell said. */
  const churn = (s: Sandbox, mib: number, rounds: number): Promise<string> =>
    s
      .exec(
        [
          'sh',
          '-c',
          `for r in $(seq ${rounds}); do i=0; while [ $i -lt ${Math.ceil(mib / 64)} ]; do dd if=/dev/zero of=/work/f$i bs=1M count=64 2>/tmp/err || echo "write failed round $r: $(tail -1 /tmp/err)"; i=$((i+1)); done; rm -f /work/f*; done; sync; echo done`,
        ],
        { timeoutMs: 600_000 },
      )
      .then((r) => r.stdout + r.stderr, (e: Error) => `exec failed: ${e.message}`);

  /** Keeps `mib` MiB of data (up to the limit); returns what dd said. */
  const fill = (s: Sandbox, mib: number, i: number): Promise<string> =>
    s
      .exec(['sh', '-c', `dd if=/dev/zero of=/work/keep${i} bs=1M count=${mib} 2>&1 | tail -1; sync`], { timeoutMs: 600_000 })
      .then((r) => r.stdout + r.stderr, (e: Error) => `exec failed: ${e.message}`);

  /** Small files (inline in btrfs metadata) and xattrs until the kernel refuses; returns how many. */
  const smallFiles = (s: Sandbox, count: number): Promise<string> =>
    s
      .exec(
        [
          'sh',
          '-c',
          `mkdir -p /work/m; pad=$(head -c 1900 /dev/zero | tr '\\0' x); i=0; while [ $i -lt ${count} ]; do echo "$pad" > /work/m/$i 2>/tmp/err || { echo "small file $i failed: $(cat /tmp/err)"; break; }; i=$((i+1)); done; sync; echo "small files: $i"`,
        ],
        { timeoutMs: 600_000 },
      )
      .then((r) => r.stdout + r.stderr, (e: Error) => `exec failed: ${e.message}`);

  it('three sandboxes inside their limits cannot force the pool read-only for everyone', async () => {
    const attackers: Sandbox[] = [];
    for (const n of [1, 2, 3]) attackers.push(await d.client.sandboxes.create({ name: `attacker-${n}`, image: 'minimal' }));
    const limitMiB = attackers[0]?.data.limits.diskMiB ?? 0;
    assert.ok(limitMiB > 0 && limitMiB <= (POOL_GIB * 1024) / 2, `each attacker is limited to at most half the pool: ${limitMiB} MiB`);
    const sumMiB = limitMiB * attackers.length;

    // Together, within their own limits, the attackers write more than the pool holds
    // (data chunks take every byte), then churn, then make small files that live in metadata.
    const outs = await Promise.all(attackers.map((s) => churn(s, limitMiB, 1)));
    outs.push(...(await Promise.all(attackers.map((s, i) => fill(s, limitMiB, i)))));
    outs.push(...(await Promise.all(attackers.map((s) => smallFiles(s, 60_000)))));
    const usage = await run(['btrfs', 'filesystem', 'usage', '-b', pool], { allowFail: true });

    // While the pool is full (or after), the daemon answers cleanly: a create either works or says NO_SPACE.
    let t0 = Date.now();
    const probe = await d.client.sandboxes.create({ name: 'probe', image: 'minimal' }).catch((e: unknown) => e);
    if (probe instanceof NookError) assert.equal(probe.code, 'NO_SPACE', probe.message);
    else if (probe instanceof Error) assert.fail(`create failed without a NookError: ${probe.message}`);
    else await (probe as Sandbox).destroy();

    const probeMs = Date.now() - t0;
    for (const s of attackers) await s.destroy();

    const aborts = (await kernelAborts(loopDev)).filter((l) => !kernelLogBefore.includes(l));
    const diag = `limits ${limitMiB} MiB x ${attackers.length} = ${sumMiB} MiB on a ${POOL_GIB} GiB pool\n${outs.join('\n')}\n${usage.stdout}\n${aborts.join('\n')}`;
    if (process.env.NOOK_TEST_VERBOSE) console.log(diag);
    assert.deepEqual(aborts, [], `btrfs aborted a transaction on the pool: ${diag}`);
    assert.ok(!mountOptions(pool).includes('ro'), `the pool is still mounted read-write: ${mountOptions(pool).join(',')}`);

    // A third party (a fresh sandbox) still creates and writes.
    t0 = Date.now();
    const victim = await d.client.sandboxes.create({ name: 'victim', image: 'minimal' });
    if (process.env.NOOK_TEST_VERBOSE) console.log(`probe create answered in ${probeMs} ms, victim created in ${Date.now() - t0} ms`);
    const w = await victim.exec(['sh', '-c', 'dd if=/dev/zero of=/work/ten bs=1M count=10 conv=fsync 2>&1; echo rc=$?']);
    assert.match(w.stdout, /rc=0/, `the victim writes 10 MiB: ${w.stdout}\n${diag}`);
    await victim.destroy();
  });
});
