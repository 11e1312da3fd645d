/**
 * Desktop sandboxes: screenshot round trip (PNG of the whole 1280x800 screen through the
 * SDK; from the long-lived helper nook-grab, then with it stopped, from scrot), input action round trip (move, click, key through the SDK), and the memory an idle
 * desktop sandbox holds (Xvfb, openbox, two x11vnc, two websockify). Not a test: targets
 * (screenshot < 100 ms, input < 20 ms) are checked here and reported, never asserted.
 *
 *   npm run bench:desktop            # N=30
 *   BENCH_N=100 npm run bench:desktop
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolvePaths } from '../src/core/paths.js';
import { startDaemon } from '../test/helpers/daemon.js';
import { round, stat, timeIt, type Stat } from './stats.js';

const N = Number(process.env.BENCH_N ?? 30);

/** memory.usage_in_bytes and total_rss of the sandbox's cgroup (v1 or v2), in MiB; null without one. */
function cgroupMemoryMiB(instance: string, id: string): { usageMiB: number | null; rssMiB: number | null } {
  const mib = (b: number): number => round(b / 1024 / 1024);
  for (const dir of [join('/sys/fs/cgroup/memory', `nook-${instance}`, id), join('/sys/fs/cgroup', `nook-${instance}`, id)]) {
    try {
      const usage = readFileSync(join(dir, 'memory.usage_in_bytes'), 'utf8');
      const rss = /^total_rss (\d+)$/m.exec(readFileSync(join(dir, 'memory.stat'), 'utf8'))?.[1];
      return { usageMiB: mib(Number(usage)), rssMiB: rss ? mib(Number(rss)) : null };
    } catch {
      try {
        const current = readFileSync(join(dir, 'memory.current'), 'utf8');
        const anon = /^anon (\d+)$/m.exec(readFileSync(join(dir, 'memory.stat'), 'utf8'))?.[1];
        return { usageMiB: mib(Number(current)), rssMiB: anon ? mib(Number(anon)) : null };
      } catch {
        // try the other layout
      }
    }
  }
  return { usageMiB: null, rssMiB: null };
}

async function main(): Promise<void> {
  const d = await startDaemon();
  const results: Stat[] = [];
  const extra: Record<string, number | null> = {};
  try {
    const built = Date.now();
    await d.client.images.build({ preset: 'desktop' });
    extra.imageBuildMs = Date.now() - built;
    const createdAt = performance.now();
    const sb = await d.client.sandboxes.create({ name: 'bench-desk', template: 'desktop' });
    await sb.desktop.screenshot();
    extra.createToFirstScreenshotMs = round(performance.now() - createdAt);
    results.push(stat('screenshot 1280x800 PNG (SDK round trip)', await timeIt(N, async () => {
      await sb.desktop.screenshot();
    })));
    extra.screenshotBytes = (await sb.desktop.screenshot()).length;
    // The same, helper stopped: the per-call tool (scrot) the daemon falls back to, same run and load.
    await sb.exec(['sh', '-c', "pkill -KILL -f 'bin/[n]ook-grab$'; rm -f /tmp/.nook-grab.sock"]);
    results.push(stat('screenshot, per-call tool (helper stopped)', await timeIt(N, async () => {
      await sb.desktop.screenshot();
    })));
    extra.screenshotBytesPerCallTool = (await sb.desktop.screenshot()).length;
    results.push(stat('move (input round trip)', await timeIt(N, async (i) => {
      await sb.desktop.move(100 + i, 100 + i);
    })));
    results.push(stat('click (input round trip)', await timeIt(N, async (i) => {
      await sb.desktop.click(200 + i, 200);
    })));
    results.push(stat('key (input round trip)', await timeIt(N, async () => {
      await sb.desktop.key('shift');
    })));
    results.push(stat('exec true (for comparison)', await timeIt(N, async () => {
      await sb.exec(['true']);
    })));
    // Idle: nothing on the screen but the window manager, a few seconds after the start.
    await new Promise((r) => setTimeout(r, 3000));
    const mem = cgroupMemoryMiB(resolvePaths(d.env).instance, sb.id);
    extra.idleCgroupMiB = mem.usageMiB;
    extra.idleRssMiB = mem.rssMiB;
    const ps = await sb.exec(['ps', '-eo', 'rss=']);
    extra.idleProcessesRssSumMiB = round(ps.stdout.split('\n').filter(Boolean).reduce((a, l) => a + Number(l.trim()), 0) / 1024);
    await sb.destroy();
  } finally {
    await d.teardown();
  }
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ results, extra }, null, 2)}\n`);
    return;
  }
  for (const r of results) process.stdout.write(`${r.name.padEnd(44)} median ${String(r.medianMs).padStart(8)} ms   p90 ${String(r.p90Ms).padStart(8)} ms   n=${r.n}\n`);
  for (const [k, v] of Object.entries(extra)) process.stdout.write(`${k.padEnd(44)} ${v}\n`);
}

await main();
