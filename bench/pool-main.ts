/**
 * The warm-pool rows alone (bench/pool.ts), with the raw `crun run` they are measured
 * against taken in the same run, the same way as bench/run.ts does:
 *
 *   npm run bench:pool            # or: node dist/bench/pool-main.js [--json]
 *   BENCH_N=30 npm run bench:pool
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolvePaths } from '../src/core/paths.js';
import { buildOciSpec } from '../src/runtime/oci-config.js';
import { run } from '../src/util/proc.js';
import { startDaemon } from '../test/helpers/daemon.js';
import { benchPool } from './pool.js';
import { stat, timeIt } from './stats.js';
import { HIDE_UNIFIED, spawnQuiet } from './raw.js';

const N = Number(process.env.BENCH_N ?? 20);


async function main(): Promise<void> {
  const d = await startDaemon();
  const paths = resolvePaths({ NOOK_STATE_DIR: d.stateDir });
  const crun = ['crun', '--root', join(d.stateDir, 'bench-crun')];
  try {
    const image = await d.client.images.build({ preset: 'minimal' });
    const rootfs = join(d.stateDir, 'storage', 'btrfs', 'pool', 'images', image.id);
    const raw = stat(
      'raw crun run /bin/true (same rootfs, same config)',
      await timeIt(N, async (i) => {
        const id = `raw-${i}`;
        const dir = join(d.stateDir, 'bench-bundles', id);
        mkdirSync(dir, { recursive: true });
        const spec = buildOciSpec({
          rootfs, hostname: id, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, limits: { memoryMiB: 1024, cpus: 1, pids: 1024 },
          cgroupsPath: `/nook-bench/${id}`, swapLimit: false, initDir: paths.initDir,
        }) as { process: { args: string[] }; root: { readonly: boolean } };
        spec.process.args = ['/bin/true'];
        spec.root.readonly = true;
        writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
        const code = await spawnQuiet([...HIDE_UNIFIED, ...crun, 'run', '--bundle', dir, id]);
        if (code !== 0) throw new Error(`crun run exited ${code}`);
      }),
    );
    const ratios: Record<string, number> = {};
    const extra: Record<string, number> = {};
    const results = [raw, ...(await benchPool(d, N, raw.medianMs, ratios, extra))];
    if (process.argv.includes('--json')) {
      process.stdout.write(JSON.stringify({ n: N, results, ratios, extra }, null, 2) + '\n');
      return;
    }
    const w = Math.max(...results.map((r) => r.name.length));
    process.stdout.write(`\nwarm pool (N=${N}; medians, p90)\n\n`);
    for (const r of results) process.stdout.write(`  ${r.name.padEnd(w)}  ${r.medianMs.toFixed(2).padStart(8)} ms   p90 ${r.p90Ms.toFixed(2).padStart(8)} ms\n`);
    process.stdout.write('\nratios (lower is better)\n');
    for (const [k, v] of Object.entries(ratios)) process.stdout.write(`  ${k.padEnd(45)} ${v.toFixed(2)}x\n`);
    process.stdout.write(`\nidle per member: ${extra.poolIdleMiBPerMember} MiB memory, ${extra.poolIdleDiskMiBPerMember} MiB disk\n`);
  } finally {
    await d.teardown();
    await run(['sh', '-c', 'for c in /sys/fs/cgroup/*/nook-bench /sys/fs/cgroup/nook-bench; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \\; 2>/dev/null; done; true'], { allowFail: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
