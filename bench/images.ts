/**
 * Image benchmarks: pulling a multi-layer image from a loopback registry (nook against
 * `skopeo copy` of the same image, and against `skopeo copy` then `umoci raw unpack`, in
 * the same run), unpacking from a warm blob cache, and rebuilding an unchanged build spec.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolvePaths } from '../src/core/paths.js';
import { run, which } from '../src/util/proc.js';
import type { TestDaemon } from '../test/helpers/daemon.js';
import { tarOf, writeLayout } from '../test/helpers/oci.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, startRegistry } from '../test/helpers/registry.js';
import { round, stat, timeIt, type Stat } from './stats.js';

const LAYERS = 4;
const LAYER_MIB = 24;

export async function benchImages(d: TestDaemon, n: number, extra: Record<string, number>): Promise<Stat[]> {
  const results: Stat[] = [];
  const work = mkdtempSync('/tmp/nook-image-bench-');
  const blobDir = join(resolvePaths(process.env).cacheDir, 'blobs', 'sha256');
  const cachedBefore = new Set(existsSync(blobDir) ? readdirSync(blobDir) : []);
  const reg = await startRegistry();
  try {
    // Incompressible layers, so gzip does not flatter either side.
    const layers: Buffer[] = [];
    for (let i = 0; i < LAYERS; i++) {
      const dir = join(work, `l${i}`);
      mkdirSync(join(dir, `layer${i}`), { recursive: true });
      writeFileSync(join(dir, `layer${i}`, 'data.bin'), randomBytes(LAYER_MIB * 1024 * 1024));
      layers.push(await tarOf(dir, `layer${i}`));
    }
    writeLayout(join(work, 'layout'), [{ layers, config: { Env: ['PATH=/bin'] } }], 'v1');
    await reg.push(`oci:${join(work, 'layout')}:v1`, 'bench/big:v1');
    const ref = `${reg.host}/bench/big:v1`;
    const auth = { username: REGISTRY_USER, password: REGISTRY_PASSWORD };
    const image = await d.client.images.pull(ref, { auth, name: 'bench-big' });
    const dropBlobs = (): void => {
      for (const l of image.layers) rmSync(join(blobDir, l.digest.slice(7)), { force: true });
    };
    const removeImage = async (): Promise<void> => void (await d.client.images.remove('bench-big').catch(() => undefined));
    await removeImage();
    const totalMiB = LAYERS * LAYER_MIB;

    const cold = await timeIt(n, async () => void (await d.client.images.pull(ref, { auth, name: 'bench-big' })), async () => {
      await removeImage();
      dropBlobs();
    });
    results.push(stat(`nook image pull, ${LAYERS} x ${LAYER_MIB} MiB layers (download + verify + unpack)`, cold));
    const skopeo = await timeIt(n, async () => {
      await run(['skopeo', 'copy', '--quiet', '--src-tls-verify=false', '--src-creds', `${REGISTRY_USER}:${REGISTRY_PASSWORD}`, `docker://${ref}`, `oci:${join(work, 'skopeo')}:v1`]);
    }, async () => rmSync(join(work, 'skopeo'), { recursive: true, force: true }));
    results.push(stat('skopeo copy of the same image to an OCI layout (download only)', skopeo));
    // The issue 17 target: the host's own tools doing what a pull does, one after the other.
    const umoci = await which('umoci');
    const reference = umoci
      ? await timeIt(n, async () => {
          await run(['skopeo', 'copy', '--quiet', '--src-tls-verify=false', '--src-creds', `${REGISTRY_USER}:${REGISTRY_PASSWORD}`, `docker://${ref}`, `oci:${join(work, 'skopeo')}:v1`]);
          await run([umoci, 'raw', 'unpack', '--image', `${join(work, 'skopeo')}:v1`, join(work, 'umoci-rootfs')]);
        }, async () => {
          for (const dir of ['skopeo', 'umoci-rootfs']) rmSync(join(work, dir), { recursive: true, force: true });
        })
      : null;
    if (reference) results.push(stat('skopeo copy + umoci raw unpack of the same image (download + unpack)', reference));
    else process.stderr.write('images: umoci is not installed (apt-get install umoci); the skopeo + umoci row is skipped\n');
    await d.client.images.pull(ref, { auth, name: 'bench-big' });
    await removeImage();
    const warm = await timeIt(n, async () => void (await d.client.images.pull(ref, { auth, name: 'bench-big' })), removeImage);
    const warmStat = stat(`nook image pull from a warm blob cache (unpack only, ${totalMiB} MiB)`, warm);
    results.push(warmStat);
    extra.unpackMiBs = round(totalMiB / (warmStat.medianMs / 1000));
    extra.pullVsSkopeo = round((results[0]?.medianMs ?? NaN) / (results[1]?.medianMs ?? NaN));
    if (reference) extra.pullVsSkopeoUmoci = round((results[0]?.medianMs ?? NaN) / (results[2]?.medianMs ?? NaN));

    // Warm rebuild of an unchanged spec.
    const ctx = join(work, 'ctx');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'task.sh'), 'echo hi\n');
    writeFileSync(join(ctx, 'nook.json'), JSON.stringify({ name: 'bench-built', base: 'minimal', copy: [{ from: '.', to: '/work/app' }], run: ['sh -n /work/app/task.sh', 'echo built > /work/app/built'] }));
    await d.client.builds.run(ctx);
    results.push(stat('nook build of an unchanged spec (3 steps, up to date)', await timeIt(n, async () => void (await d.client.builds.run(ctx)))));
    await d.client.images.remove('bench-built');
    for (const img of await d.client.images.list({ all: true })) if (img.name.startsWith('build-cache-')) await d.client.images.remove(img.name);
  } finally {
    rmSync(work, { recursive: true, force: true });
    await reg.stop();
    // The blobs this run added to the shared cache go too.
    for (const f of existsSync(blobDir) ? readdirSync(blobDir) : []) if (!cachedBefore.has(f)) rmSync(join(blobDir, f), { force: true });
  }
  return results;
}
