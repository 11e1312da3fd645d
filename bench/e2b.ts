/**
 * The E2B front against nook's own SDK, in one run on one daemon: Sandbox.create() +
 * commands.run('true') + kill() through E2B's SDK (npm e2b, unmodified) vs create +
 * exec + destroy through nook's SDK, both on the `base` template and both running the
 * command the way E2B does (bash -l -c). `node dist/bench/e2b.js [N]`.
 */
import { Sandbox } from 'e2b';
import { startE2bDaemon } from '../test/helpers/e2b.js';
import { round, stat } from './stats.js';

const N = Number(process.argv[2] ?? process.env.BENCH_N ?? 15);

async function main(): Promise<void> {
  const { d, opts } = await startE2bDaemon();
  try {
    // Warm up both paths (the base image is built or copied on first use).
    await (await Sandbox.create({ ...opts })).kill();
    const e2b: number[] = [];
    const nook: number[] = [];
    for (let i = 0; i < N; i++) {
      let t = performance.now();
      const s = await Sandbox.create({ ...opts });
      await s.commands.run('true');
      await s.kill();
      e2b.push(performance.now() - t);
      t = performance.now();
      const sb = await d.client.sandboxes.create({ template: 'base' });
      await sb.exec(['/bin/bash', '-l', '-c', 'true'], { user: 'user' });
      await sb.destroy();
      nook.push(performance.now() - t);
    }
    const a = stat('e2b SDK: create + run true + kill', e2b);
    const b = stat('nook SDK: create + exec true + destroy', nook);
    console.log(JSON.stringify({ n: N, e2b: a, nook: b, ratio: round(a.medianMs / b.medianMs) }, null, 2));
  } finally {
    await d.teardown();
  }
}

void main();
