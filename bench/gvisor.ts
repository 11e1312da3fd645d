/**
 * crun against gVisor in one run, on the same daemon and image: create + first exec, the
 * exec round trip, and cold mode (checkpoint = stop --memory, restore = resume) against
 * the memory the sandbox holds. Prints medians, p90s and ratios; `--json` the raw figures.
 *
 *   npm run bench:gvisor              # N=15
 *   BENCH_N=30 npm run bench:gvisor
 */
import { startDaemon } from '../test/helpers/daemon.js';
import { which } from '../src/util/proc.js';
import type { Sandbox } from '../src/sdk/client.js';
import { round, stat, timeIt, type Stat } from './stats.js';

const N = Number(process.env.BENCH_N ?? 15);
const MEMORY_N = Number(process.env.BENCH_MEMORY_N ?? 3);
const RESIDENT_MIB = [16, 256];

/** A process holding `mib` MiB of incompressible memory until killed; resolves when it has it. */
async function holdMemory(sb: Sandbox, mib: number): Promise<void> {
  const py = `import os,time\nb=os.urandom(${mib}*1024*1024)\nopen('/tmp/ready','w').close()\ntime.sleep(1e9)`;
  await sb.files.write('/tmp/hold.py', py);
  await sb.exec(['sh', '-c', 'python3 /tmp/hold.py >/dev/null 2>&1 </dev/null &']);
  for (let i = 0; i < 600; i++) {
    if ((await sb.exec(['test', '-e', '/tmp/ready'])).exitCode === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the memory holder never got ready');
}

async function main(): Promise<void> {
  if (!(await which('runsc'))) throw new Error('runsc is not installed (apt-get install runsc)');
  const d = await startDaemon();
  const results: Stat[] = [];
  const extra: Record<string, number> = {};
  try {
    await d.client.images.build({ preset: 'minimal' });
    await d.client.images.build({ preset: 'python' });
    for (const runtime of ['crun', 'gvisor'] as const) {
      const made: Sandbox[] = [];
      results.push(stat(`${runtime}: create + first exec`, await timeIt(N, async () => {
        const sb = await d.client.sandboxes.create({ image: 'minimal', runtime });
        await sb.exec(['true']);
        made.push(sb);
      })));
      const sb = made[0];
      if (!sb) throw new Error('nothing was created');
      results.push(stat(`${runtime}: exec true (round trip)`, await timeIt(N * 2, async () => {
        await sb.exec(['true']);
      })));
      for (const s of made) await s.destroy();
    }
    for (const mib of RESIDENT_MIB) {
      const stops: number[] = [];
      const resumes: number[] = [];
      for (let i = 0; i < MEMORY_N; i++) {
        const sb = await d.client.sandboxes.create({ image: 'python', runtime: 'gvisor', memoryMiB: 1024 });
        await holdMemory(sb, mib);
        let t = performance.now();
        await sb.stop({ memory: true });
        stops.push(performance.now() - t);
        extra[`image MiB at ${mib} MiB resident`] = round((sb.data.memory?.sizeBytes ?? 0) / 1048576);
        t = performance.now();
        await sb.resume();
        resumes.push(performance.now() - t);
        // The holder is the saved process, still there.
        const alive = await sb.exec(['sh', '-c', `for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done | grep -c '[h]old.py'`]);
        if (alive.stdout.trim() !== '1') throw new Error('the holder did not survive');
        await sb.destroy();
      }
      results.push(stat(`gvisor: checkpoint (stop --memory), ${mib} MiB resident`, stops));
      results.push(stat(`gvisor: restore (resume), ${mib} MiB resident`, resumes));
    }
  } finally {
    await d.teardown();
  }
  const by = (name: string): number => results.find((r) => r.name === name)?.medianMs ?? NaN;
  const ratios = {
    'create + first exec, gvisor / crun': round(by('gvisor: create + first exec') / by('crun: create + first exec')),
    'exec round trip, gvisor / crun': round(by('gvisor: exec true (round trip)') / by('crun: exec true (round trip)')),
  };
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ results, ratios, extra }, null, 2)}\n`);
    return;
  }
  process.stdout.write('| | median | p90 | n |\n| --- | --- | --- | --- |\n');
  for (const r of results) process.stdout.write(`| ${r.name} | ${r.medianMs} ms | ${r.p90Ms} ms | ${r.n} |\n`);
  process.stdout.write('\n| ratio | measured |\n| --- | --- |\n');
  for (const [k, v] of Object.entries(ratios)) process.stdout.write(`| ${k} | ${v}x |\n`);
  for (const [k, v] of Object.entries(extra)) process.stdout.write(`\n${k}: ${v}`);
  process.stdout.write('\n');
}

await main();
