/**
 * nook against raw crun on a cgroup-v2-only host: the QEMU guest (`npm run bench:cgroup2`).
 * Under TCG every absolute figure is ~40x slower than native, so only ratios mean anything;
 * both columns run in the same guest, on the same rootfs and the same generated OCI config.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolvePaths } from '../src/core/paths.js';
import { detectCgroupKind } from '../src/runtime/cgroups.js';
import { buildOciSpec } from '../src/runtime/oci-config.js';
import { run } from '../src/util/proc.js';
import { startDaemon } from '../test/helpers/daemon.js';
import { round, stat, timeIt, type Stat } from './stats.js';
import { spawnQuiet } from './raw.js';

const N = Number(process.env.BENCH_N ?? 10);


async function main(): Promise<void> {
  const kind = detectCgroupKind();
  const d = await startDaemon();
  const paths = resolvePaths({ NOOK_STATE_DIR: d.stateDir });
  const crun = ['crun', '--root', join(d.stateDir, 'bench-crun')];
  // Raw crun gets its own parent beside nook's, at the root like nook's (no systemd in the guest).
  const rawParent = `/nook-bench-${paths.instance}`;
  const results: Stat[] = [];
  try {
    const image = await d.client.images.build({ preset: 'minimal' });
    const rootfs = join(d.stateDir, 'storage', 'btrfs', 'pool', 'images', image.id);
    const bundle = (id: string): string => {
      const dir = join(d.stateDir, 'bench-bundles', id);
      mkdirSync(dir, { recursive: true });
      const spec = buildOciSpec({
        rootfs, hostname: id, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, limits: { memoryMiB: 1024, cpus: 1, pids: 1024 },
        cgroupsPath: `${rawParent}/${id}`, swapLimit: false, initDir: paths.initDir,
      }) as { root: { readonly: boolean } };
      spec.root.readonly = true; // the image itself: raw crun gets no snapshot to make
      writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
      return dir;
    };
    const nookCreate = stat('nook create + first exec', await timeIt(N, async (i) => {
      const sb = await d.client.sandboxes.create({ name: `b-${i}`, image: 'minimal' });
      await sb.exec(['true']);
    }, async (i) => void (await (await d.client.sandboxes.get(`b-${i}`)).destroy())));
    const rawCreate = stat('raw crun run -d + crun exec true', await timeIt(N, async (i) => {
      const id = `raw-${i}`;
      if ((await spawnQuiet([...crun, 'run', '-d', '--bundle', bundle(id), id])) !== 0) throw new Error('crun run -d failed');
      if ((await spawnQuiet([...crun, 'exec', id, '/bin/true'])) !== 0) throw new Error('crun exec failed');
    }, async (i) => void (await run([...crun, 'delete', '-f', `raw-${i}`], { allowFail: true }))));
    const sb = await d.client.sandboxes.create({ name: 'b-exec', image: 'minimal' });
    await sb.exec(['true']);
    const nookExec = stat('nook exec true (SDK, socket)', await timeIt(N * 3, async () => void (await sb.exec(['true']))));
    const rawExec = stat('raw crun exec true', await timeIt(N * 3, async () => void (await spawnQuiet(['crun', '--root', paths.runtimeStateDir, 'exec', sb.id, '/bin/true']))));
    await sb.destroy();
    results.push(nookCreate, rawCreate, nookExec, rawExec);
    const out = {
      cgroup: kind,
      results,
      ratios: {
        createPlusFirstExecVsRawCrun: round(nookCreate.medianMs / rawCreate.medianMs),
        execVsRawCrunExec: round(nookExec.medianMs / rawExec.medianMs),
      },
    };
    if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    else {
      process.stdout.write(`cgroup ${kind}, N=${N} (medians; absolute times are TCG-slow, read the ratios)\n`);
      for (const r of results) process.stdout.write(`  ${r.name.padEnd(36)} ${String(r.medianMs).padStart(9)} ms  p90 ${r.p90Ms} ms\n`);
      process.stdout.write(`  nook create+exec / raw crun run -d+exec: ${out.ratios.createPlusFirstExecVsRawCrun}\n`);
      process.stdout.write(`  nook exec / raw crun exec:               ${out.ratios.execVsRawCrunExec}\n`);
    }
  } finally {
    await d.teardown();
    await run(['rmdir', join('/sys/fs/cgroup', rawParent)], { allowFail: true });
  }
}

await main();
