/**
 * Snapshot, fork and restore across data sizes (10 MiB, 1 GiB, 20k files), each followed by a
 * first exec: the rows behind "constant-time snapshots and forks". Part of `npm run bench`
 * (BENCH_STATE=0 skips it; BENCH_STATE_N sets the rounds, default 7).
 */
import { join } from 'node:path';
import { run } from '../src/util/proc.js';
import type { TestDaemon } from '../test/helpers/daemon.js';
import { stat, timeIt, type Stat } from './stats.js';

export async function benchState(d: TestDaemon): Promise<Stat[]> {
  const results: Stat[] = [];
  const datasets: [string, string][] = [
    ['10 MiB', 'dd if=/dev/urandom of=/work/data bs=1M count=10 2>/dev/null'],
    ['1 GiB', 'dd if=/dev/urandom of=/work/data bs=1M count=1024 2>/dev/null'],
    ['20k files', 'mkdir -p /work/many && cd /work/many && seq 1 20000 | xargs touch'],
  ];
  const M = Number(process.env.BENCH_STATE_N ?? 7);
  for (const [label, fill] of datasets) {
    const src = await d.client.sandboxes.create({ name: `state-src`, image: 'minimal' });
    const filled = await src.exec(['sh', '-c', `${fill} && sync`], { timeoutMs: 600_000 });
    if (filled.exitCode !== 0) throw new Error(`filling ${label} failed: ${filled.stderr}`);
    await run(['btrfs', 'filesystem', 'sync', join(d.stateDir, 'storage', 'btrfs', 'pool')], { allowFail: true });
    results.push(
      stat(`snapshot (${label}, running)`, await timeIt(M, async (i) => void (await src.snapshots.create({ name: `s${i}` })))),
    );
    results.push(
      stat(
        `fork + first exec (${label})`,
        await timeIt(
          M,
          async (i) => {
            const [f] = await src.fork({ name: `fork-${i}` });
            await f?.exec(['true']);
          },
          async (i) => void (await (await d.client.sandboxes.get(`fork-${i}`)).destroy()),
        ),
      ),
    );
    results.push(
      stat(
        `restore + first exec (${label})`,
        await timeIt(
          M,
          async (i) => {
            const r = await d.client.sandboxes.create({ name: `restore-${i}`, snapshot: `state-src@s${i}` });
            await r.exec(['true']);
          },
          async (i) => void (await (await d.client.sandboxes.get(`restore-${i}`)).destroy()),
        ),
      ),
    );
    await src.destroy({ withSnapshots: true });
    // btrfs deletes subvolumes in the background: let it finish before the next size.
    await run(['btrfs', 'subvolume', 'sync', join(d.stateDir, 'storage', 'btrfs', 'pool')], { allowFail: true });
  }
  return results;
}
