/**
 * The CLI's start-up cost: `nook --version`, `nook ls` and `nook exec SB -- /bin/true` from
 * a fresh process each time, against `node -e 0` (Node's own start), on a real daemon with a
 * running `minimal` sandbox. Runs are interleaved so load on the host hits every row alike.
 * Prints medians, p90s and each row's difference from `node -e 0`; `--json` the raw figures.
 *
 *   npm run bench:cli                                 # N=20
 *   BENCH_N=50 npm run bench:cli
 *   BENCH_CLI=/other/dist/src/cli/main.js npm run bench:cli   # another build, same daemon
 */
import { spawn } from 'node:child_process';
import { CLI_MAIN, startDaemon } from '../test/helpers/daemon.js';
import { round, stat, type Stat } from './stats.js';

const N = Number(process.env.BENCH_N ?? 20);
const CLI = process.env.BENCH_CLI ?? CLI_MAIN;

/** Wall time of one process from spawn to exit; a non-zero exit fails the bench. */
function timeProcess(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0] ?? '', argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr}`))));
  });
}

async function main(): Promise<void> {
  const d = await startDaemon();
  try {
    await d.client.images.build({ preset: 'minimal' });
    const sb = await d.client.sandboxes.create({ image: 'minimal', name: 'bench-cli' });
    const rows: Array<[string, string[]]> = [
      ['node -e 0', [process.execPath, '-e', '0']],
      ['nook --version', [process.execPath, CLI, '--version']],
      ['nook ls', [process.execPath, CLI, 'ls']],
      ['nook exec SB -- /bin/true', [process.execPath, CLI, 'exec', sb.name, '--', '/bin/true']],
    ];
    const samples = new Map<string, number[]>(rows.map(([name]) => [name, []]));
    // One warm-up round (page cache), then N interleaved rounds.
    for (let i = -1; i < N; i++) {
      for (const [name, argv] of rows) {
        const ms = await timeProcess(argv, d.env);
        if (i >= 0) samples.get(name)?.push(ms);
      }
    }
    await sb.destroy();
    const stats: Stat[] = rows.map(([name]) => stat(name, samples.get(name) ?? []));
    const base = stats[0]?.medianMs ?? NaN;
    if (process.argv.includes('--json')) {
      process.stdout.write(JSON.stringify({ cli: CLI, stats, samples: Object.fromEntries(samples) }, null, 2) + '\n');
      return;
    }
    process.stdout.write(`CLI ${CLI}, N=${N}\n\n| | median | p90 | median - node -e 0 | median / node -e 0 |\n| --- | --- | --- | --- | --- |\n`);
    for (const s of stats) {
      const diff = round(s.medianMs - base);
      const cells = s === stats[0] ? '- | -' : `${diff >= 0 ? '+' : ''}${diff} ms | ${round(s.medianMs / base)}x`;
      process.stdout.write(`| ${s.name} | ${s.medianMs} ms | ${s.p90Ms} ms | ${cells} |\n`);
    }
  } finally {
    await d.teardown();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
