/**
 * Pulling an image: resolve the tag to a manifest (its linux/amd64 entry when it is an
 * index), then fetch config and layers into the shared blob cache, a few at a time, each
 * verified; blobs already cached are not fetched again, and one interrupted part-way
 * resumes where it stopped.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { RegistryClient, type RegistryCredentials } from './registry-client.js';
import { formatReference, type ImageReference } from './reference.js';
import { imageDefaults, isIndex, pickPlatform, sha256Hex, type Descriptor, type ImageDefaults } from './layers.js';
import type { ProgressFn } from './presets.js';

const LAYER_CONCURRENCY = 3;
const MAX_BLOB_BYTES = 64 * 1024 ** 3;

export interface PulledImage {
  digest: string;
  defaults: ImageDefaults;
  layers: { digest: string; sizeBytes: number }[];
  /** Verified layer files in the blob cache, lowest first. */
  layerFiles: string[];
}

/** One download per blob at a time, across concurrent pulls in this daemon. */
const inFlight = new Map<string, Promise<void>>();

/** Blob cache files (finished and partial), for retention reports and gc. */
export async function blobCacheFiles(blobDir: string): Promise<{ path: string; hex: string; bytes: number; mtimeMs: number }[]> {
  const names = await fsp.readdir(blobDir).catch(() => [] as string[]);
  const out: { path: string; hex: string; bytes: number; mtimeMs: number }[] = [];
  for (const name of names) {
    const st = await fsp.stat(join(blobDir, name)).catch(() => null);
    if (st?.isFile()) out.push({ path: join(blobDir, name), hex: name.replace(/\.partial$/, ''), bytes: st.size, mtimeMs: st.mtimeMs });
  }
  return out;
}

/** Is a download of this blob running in this daemon now (gc leaves it alone)? */
export function blobInFlight(hex: string): boolean {
  return inFlight.has(`sha256:${hex}`);
}

export async function resolveManifest(client: RegistryClient): Promise<{ digest: string; config: Descriptor; layers: Descriptor[] }> {
  const want = client.ref.digest ?? client.ref.tag ?? 'latest';
  let m = await client.manifest(want);
  if (isIndex(m.manifest, m.mediaType)) {
    const pick = pickPlatform(m.manifest, formatReference(client.ref));
    m = await client.manifest(pick.digest);
  }
  if (!m.manifest.config || !Array.isArray(m.manifest.layers)) {
    throw new NookError('NOT_SUPPORTED', `${formatReference(client.ref)} has a manifest of type ${m.mediaType ?? 'unknown'} without config and layers`, {
      hint: 'nook pulls OCI and Docker schema-2 images',
    });
  }
  for (const d of [m.manifest.config, ...m.manifest.layers]) {
    // Every download is bounded by its declared size: a descriptor without one is refused.
    if (typeof d.size !== 'number' || !Number.isInteger(d.size) || d.size < 0 || d.size > MAX_BLOB_BYTES) {
      throw new NookError('REGISTRY_ERROR', `${formatReference(client.ref)}: blob ${d.digest} declares no usable size (${String(d.size)})`);
    }
  }
  for (const l of m.manifest.layers) {
    if (l.mediaType && !/tar(\+gzip|\.gzip)?$/.test(l.mediaType)) {
      throw new NookError('NOT_SUPPORTED', `layer type ${l.mediaType} is not supported`, { hint: 'use gzip or plain tar layers' });
    }
  }
  return { digest: m.digest, config: m.manifest.config, layers: m.manifest.layers };
}

export async function pullBlobs(
  ref: ImageReference,
  credentials: RegistryCredentials | undefined,
  blobDir: string,
  progress: ProgressFn,
): Promise<PulledImage> {
  const client = new RegistryClient(ref, credentials);
  progress('resolve', 2, `resolving ${formatReference(ref)}`);
  const manifest = await resolveManifest(client);
  await fsp.mkdir(blobDir, { recursive: true, mode: 0o700 });
  const all = [manifest.config, ...manifest.layers];
  const totalBytes = all.reduce((n, d) => n + (d.size ?? 0), 0) || 1;
  let doneBytes = 0;
  const onBytes = (n: number): void => {
    doneBytes += n;
    progress('download', 5 + Math.min(80, Math.floor((doneBytes / totalBytes) * 80)), `${(doneBytes / 1048576).toFixed(1)} of ${(totalBytes / 1048576).toFixed(1)} MiB`);
  };
  const fetchOne = async (d: Descriptor): Promise<string> => {
    const file = join(blobDir, sha256Hex(d.digest));
    for (;;) {
      const present = await fsp.stat(file).catch(() => null);
      if (present && (d.size === undefined || present.size === d.size)) {
        return file;
      }
      const running = inFlight.get(d.digest);
      if (running) {
        await running;
        continue;
      }
      const job = client.blob(d.digest, d.size, file, onBytes).finally(() => inFlight.delete(d.digest));
      inFlight.set(d.digest, job);
      await job;
      return file;
    }
  };
  const files = new Array<string>(all.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(LAYER_CONCURRENCY, all.length) }, async () => {
      while (next < all.length) {
        const i = next++;
        const d = all[i];
        if (d) files[i] = await fetchOne(d);
      }
    }),
  );
  const configText = await fsp.readFile(files[0] ?? '', 'utf8');
  let config: unknown;
  try {
    config = JSON.parse(configText);
  } catch {
    throw new NookError('REGISTRY_ERROR', 'the image config is not JSON');
  }
  return {
    digest: manifest.digest,
    defaults: imageDefaults(config),
    layers: manifest.layers.map((l) => ({ digest: l.digest, sizeBytes: l.size ?? 0 })),
    layerFiles: files.slice(1),
  };
}
