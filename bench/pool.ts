/**
 * Warm pool rows: create and one-shot run served from a pool of started sandboxes, against
 * the same calls without a pool and against raw `crun run` measured earlier in the same run.
 * The in-daemon create time comes from the daemon's own log (`sandbox created … pooled`).
 */
import type { TestDaemon } from '../test/helpers/daemon.js';
import { waitFor } from '../test/helpers/daemon.js';
import { round, stat, timeIt, type Stat } from './stats.js';

const IMAGE = 'minimal';
const SIZE = 4;

/** The `ms` of every pooled create the daemon logged after `from` (an offset into its log). */
function pooledCreateMs(log: string, from: number): number[] {
  return log
    .slice(from)
    .split('\n')
    .filter((l) => l.includes('sandbox created') && l.includes('"pooled":true'))
    .map((l) => Number((/"ms":([0-9.]+)/.exec(l) ?? [])[1]))
    .filter((x) => Number.isFinite(x));
}

export async function benchPool(d: TestDaemon, n: number, rawCrunRunMs: number, ratios: Record<string, number>, extra: Record<string, number>): Promise<Stat[]> {
  const results: Stat[] = [];
  const ready = async (): Promise<void> =>
    waitFor(async () => ((await d.client.pools()).find((p) => p.image === IMAGE)?.ready ?? 0) >= SIZE, 60_000, 'a full pool');
  await d.client.images.build({ preset: IMAGE });
  const runTrue = async (): Promise<void> => {
    const r = await d.client.run(['/bin/true'], { image: IMAGE });
    if (r.exitCode !== 0) throw new Error(`run failed: ${r.stderr}`);
  };
  // Without a pool first: the same calls the normal way.
  const coldRun = stat('nook run /bin/true, no pool (SDK, POST /v1/run)', await timeIt(n, runTrue));
  const coldCreate = stat('nook create, no pool (SDK)', await timeIt(n, async () => void (await d.client.sandboxes.create({ image: IMAGE })), async () => {
    for (const s of await d.client.sandboxes.list()) await s.destroy();
  }));
  await d.client.setPoolSize(IMAGE, SIZE);
  await ready();
  const logFrom = d.log.length;
  const refill = async (): Promise<void> => {
    for (const s of await d.client.sandboxes.list()) await s.destroy();
    await ready();
  };
  const create = stat('nook create from the warm pool (SDK)', await timeIt(n, async () => void (await d.client.sandboxes.create({ image: IMAGE })), refill));
  const inDaemon = stat('  of which inside the daemon (its log)', pooledCreateMs(d.log, logFrom));
  const named = stat('nook create from the warm pool, named (hostname set)', await timeIt(n, async (i) => void (await d.client.sandboxes.create({ name: `pooled-${i}`, image: IMAGE })), refill));
  const pooledRun = stat('nook run /bin/true from the warm pool (SDK, POST /v1/run)', await timeIt(n, runTrue, () => ready()));
  const idle = (await d.client.pools()).find((p) => p.image === IMAGE);
  extra.poolIdleMiBPerMember = round((idle?.idleMemoryBytes ?? 0) / SIZE / 1024 / 1024);
  extra.poolIdleDiskMiBPerMember = round((idle?.idleDiskBytes ?? 0) / SIZE / 1024 / 1024);
  await d.client.setPoolSize(IMAGE, 0);
  results.push(coldCreate, create, inDaemon, named, coldRun, pooledRun);
  ratios['pooled run /bin/true / raw crun run'] = round(pooledRun.medianMs / rawCrunRunMs);
  ratios['run /bin/true without pool / raw crun run'] = round(coldRun.medianMs / rawCrunRunMs);
  ratios['pooled create / create without pool'] = round(create.medianMs / coldCreate.medianMs);
  return results;
}
