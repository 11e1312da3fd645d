/**
 * Pulling an image: resolve the tag to a manifest (its linux/amd64 entry when it is an
 * index) and fetch its config, then fetch layers into the shared blob cache, a few at a
 * time, each hashed and listed as it arrives; blobs already cached are not fetched again,
 * and one interrupted part-way resumes where it stopped. The caller applies each layer
 * once it is verified, while later ones still download.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { RegistryClient, type RegistryCredentials } from './registry-client.js';
import { formatReference, type ImageReference } from './reference.js';
import { checkMembers, imageDefaults, isIndex, pickPlatform, sha256Hex, type Descriptor, type ImageDefaults } from './layers.js';
import { listLayerFile, StreamLister, type ListedLayer } from './tar-list.js';
import type { ProgressFn } from './presets.js';

const LAYER_CONCURRENCY = 3;
const MAX_BLOB_BYTES = 64 * 1024 ** 3;

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

/**
 * An image resolved (manifest and config fetched and verified) whose layers are not yet
 * fetched: `start()` begins fetching them, LAYER_CONCURRENCY at a time in order, each
 * hashed and listed while its bytes arrive, so applying layer i (in order, after its
 * digest matched) overlaps the downloads of the ones above it.
 */
export interface PullPlan {
  digest: string;
  defaults: ImageDefaults;
  layers: { digest: string; sizeBytes: number }[];
  start(): LayerFetch;
}

export interface LayerFetch {
  /** Layer i, verified and listed, lowest first. */
  layer(index: number): Promise<ListedLayer>;
  /** Reports layer i being applied (progress). */
  unpacking(index: number): void;
  /** Every layer verified (used before an older image is set aside for this one). */
  all(): Promise<void>;
  /** Stops downloads not yet done and waits for every one to stop (partial files stay, to resume). */
  cancel(): Promise<void>;
}

export async function planPull(ref: ImageReference, credentials: RegistryCredentials | undefined, blobDir: string, progress: ProgressFn): Promise<PullPlan> {
  const client = new RegistryClient(ref, credentials);
  progress('resolve', 2, `resolving ${formatReference(ref)}`);
  const manifest = await resolveManifest(client);
  await fsp.mkdir(blobDir, { recursive: true, mode: 0o700 });
  const meter = new PullMeter(manifest.layers, progress);
  const configFile = await fetchBlob(client, blobDir, manifest.config, { onBytes: () => undefined });
  let config: unknown;
  try {
    config = JSON.parse(await fsp.readFile(configFile.file, 'utf8'));
  } catch {
    throw new NookError('REGISTRY_ERROR', 'the image config is not JSON');
  }
  return {
    digest: manifest.digest,
    defaults: imageDefaults(config),
    layers: manifest.layers.map((l) => ({ digest: l.digest, sizeBytes: l.size ?? 0 })),
    start: () => startLayers(client, blobDir, manifest.layers, meter),
  };
}

/** Progress of a pull: bytes per layer while downloading, then each layer unpacked. */
export class PullMeter {
  private readonly totalBytes: number;
  private doneBytes = 0;
  private readonly perLayer: number[];
  private applied = 0;

  constructor(
    private readonly layers: Descriptor[],
    private readonly progress: ProgressFn,
  ) {
    this.totalBytes = layers.reduce((n, d) => n + (d.size ?? 0), 0) || 1;
    this.perLayer = layers.map(() => 0);
  }

  private percent(): number {
    return 5 + Math.min(75, Math.floor((this.doneBytes / this.totalBytes) * 75)) + Math.floor((this.applied / Math.max(1, this.layers.length)) * 18);
  }

  bytes(index: number, n: number): void {
    this.doneBytes += n;
    const have = (this.perLayer[index] = (this.perLayer[index] ?? 0) + n);
    const mib = (b: number): string => (b / 1048576).toFixed(1);
    this.progress('download', this.percent(), `layer ${index + 1}/${this.layers.length} ${mib(have)}/${mib(this.layers[index]?.size ?? 0)} MiB, all ${mib(this.doneBytes)}/${mib(this.totalBytes)}`);
  }

  verified(index: number): void {
    this.progress('verify', this.percent(), `layer ${index + 1}/${this.layers.length} verified`);
  }

  unpacking(index: number): void {
    this.applied = index;
    this.progress('unpack', this.percent(), `layer ${index + 1}/${this.layers.length} unpacking`);
  }
}

/**
 * One blob into the cache: already there, fetched by another pull of this daemon (wait,
 * then look again), or downloaded here with `sink` seeing its bytes. Returns whether the
 * bytes went through `sink` (if not, the caller reads the cached file).
 */
async function fetchBlob(
  client: RegistryClient,
  blobDir: string,
  d: Descriptor,
  opts: { onBytes: (n: number) => void; sink?: (chunk: Buffer) => Promise<void>; signal?: AbortSignal },
): Promise<{ file: string; streamed: boolean }> {
  const file = join(blobDir, sha256Hex(d.digest));
  for (;;) {
    const present = await fsp.stat(file).catch(() => null);
    if (present && (d.size === undefined || present.size === d.size)) return { file, streamed: false };
    const running = inFlight.get(d.digest);
    if (running) {
      // Another pull's failure (or cancel) is not ours: look again, and fetch it ourselves.
      await running.catch(() => undefined);
      opts.signal?.throwIfAborted();
      continue;
    }
    const job = client.blob(d.digest, d.size, file, opts.onBytes, { ...(opts.sink ? { sink: opts.sink } : {}), ...(opts.signal ? { signal: opts.signal } : {}) }).finally(() => inFlight.delete(d.digest));
    inFlight.set(d.digest, job);
    await job;
    return { file, streamed: true };
  }
}

function startLayers(client: RegistryClient, blobDir: string, layers: Descriptor[], meter: PullMeter): LayerFetch {
  const abort = new AbortController();
  const listers = new Set<StreamLister>();
  const one = async (d: Descriptor, index: number): Promise<ListedLayer> => {
    const lister = new StreamLister();
    listers.add(lister);
    try {
      const got = await fetchBlob(client, blobDir, d, { onBytes: (n) => meter.bytes(index, n), sink: (c) => lister.write(c), signal: abort.signal });
      meter.verified(index);
      const members = got.streamed ? await lister.finish() : (lister.abort(), await listLayerFile(got.file));
      // Refused here too, not only when its turn to apply comes: before an older image is set aside.
      checkMembers(members);
      return { file: got.file, members };
    } finally {
      lister.abort();
      listers.delete(lister);
    }
  };
  // Started in order, a bounded number at a time; each result is kept for its turn.
  const results: Promise<ListedLayer>[] = [];
  const starters: (() => void)[] = [];
  const slots = { free: LAYER_CONCURRENCY };
  const release = (): void => {
    slots.free++;
    starters.shift()?.();
  };
  for (const [i, d] of layers.entries()) {
    const p = new Promise<void>((resolve) => {
      if (slots.free > 0) {
        slots.free--;
        resolve();
      } else starters.push(resolve);
    }).then(() => {
      if (abort.signal.aborted) throw new NookError('REGISTRY_ERROR', 'the pull was given up');
      return one(d, i);
    });
    p.then(release, release);
    p.catch(() => undefined);
    results.push(p);
  }
  const settled = (): Promise<void> => Promise.allSettled(results).then(() => undefined);
  return {
    layer: (i) => results[i] ?? Promise.reject(new Error(`no layer ${i}`)),
    unpacking: (i) => meter.unpacking(i),
    all: () => Promise.all(results).then(() => undefined),
    cancel: async () => {
      abort.abort();
      for (const l of listers) l.abort();
      await settled();
    },
  };
}
