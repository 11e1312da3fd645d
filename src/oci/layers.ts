/**
 * What every image source (OCI layout, docker archive, registry) shares once its blobs are
 * on disk and verified: media types, platform choice, the image config's defaults, and
 * applying layers in order (whiteouts and opaque directories honoured, device nodes and
 * escaping paths refused, ownership shifted into the sandbox range).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { ID_MAP, shiftOwnership } from '../util/id-map.js';
import { listLayerFile, type ListedLayer, type Member } from './tar-list.js';

export const MT = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Media types a manifest request accepts, in order of preference. */
export const MANIFEST_ACCEPT = [MT.index, MT.dockerList, MT.manifest, MT.dockerManifest].join(', ');

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface Manifest {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/** The defaults an image's config gives its sandboxes. */
export interface ImageDefaults {
  env: Record<string, string>;
  cwd: string | null;
  user: string | null;
  entrypoint: string[];
  cmd: string[];
}

export function isIndex(m: Manifest, mediaType?: string): boolean {
  const t = mediaType ?? m.mediaType;
  return t === MT.index || t === MT.dockerList || (t === undefined && Array.isArray(m.manifests) && !m.layers);
}

/** The linux/amd64 entry of a multi-platform index. */
export function pickPlatform(index: Manifest, what: string): Descriptor {
  const all = index.manifests ?? [];
  const pick = all.find((d) => d.platform?.os === 'linux' && d.platform.architecture === 'amd64') ?? (all.length === 1 && !all[0]?.platform ? all[0] : undefined);
  if (!pick) {
    const have = all.map((d) => `${d.platform?.os ?? '?'}/${d.platform?.architecture ?? '?'}`).join(', ') || 'none';
    throw new NookError('NOT_SUPPORTED', `${what} has no linux/amd64 image (it has: ${have})`, { hint: 'sandboxes here run linux/amd64 images' });
  }
  return pick;
}

export function sha256Hex(digest: string): string {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m?.[1]) throw new NookError('INVALID_ARGUMENT', `unsupported or malformed digest ${digest}`, { hint: 'only sha256 digests are supported' });
  return m[1];
}

export async function fileSha256(path: string): Promise<{ hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { hex: hash.digest('hex'), size };
}

/** Reads the defaults out of an image config (OCI and Docker configs share this shape). */
export function imageDefaults(config: unknown): ImageDefaults {
  const c = (config as { config?: { Env?: unknown; WorkingDir?: unknown; User?: unknown; Entrypoint?: unknown; Cmd?: unknown } } | null)?.config ?? {};
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const env: Record<string, string> = {};
  for (const kv of strings(c.Env)) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
  return { env, cwd: str(c.WorkingDir), user: str(c.User), entrypoint: strings(c.Entrypoint), cmd: strings(c.Cmd) };
}

export async function isGzip(path: string): Promise<boolean> {
  const fh = await fsp.open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    await fh.read(head, 0, 2, 0);
    return head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/** Removes `rel` inside `root` without following symlinks on the way (whiteouts). */
async function removeInside(root: string, rel: string, contentsOnly = false): Promise<void> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new NookError('INVALID_ARGUMENT', `layer path ${rel} escapes the image`);
  let cur = root;
  for (const p of parts.slice(0, -1)) {
    cur = join(cur, p);
    const st = await fsp.lstat(cur).catch(() => null);
    if (!st) return;
    if (!st.isDirectory()) return; // a symlink or file on the way: nothing of ours to remove
  }
  const target = parts.length ? join(cur, parts[parts.length - 1] ?? '') : root;
  if (!contentsOnly) {
    await fsp.rm(target, { recursive: true, force: true });
    return;
  }
  const st = await fsp.lstat(target).catch(() => null);
  if (!st?.isDirectory()) return;
  for (const e of await fsp.readdir(target)) await fsp.rm(join(target, e), { recursive: true, force: true });
}

/**
 * Extracts one layer with the image's root as the root directory: bsdtar chroots into
 * `target` before it writes anything, so a symlink an earlier layer left (`etc -> /`,
 * `x -> ../../..`) resolves inside the image, never on the host. GNU tar would follow it
 * out: a two-layer image could otherwise write any host file as root. The archive is
 * opened here and handed over as stdin, since the chroot has no way back to it.
 */
async function extractConfined(blob: string, target: string): Promise<void> {
  const fh = await fsp.open(blob, 'r');
  try {
    const child = spawn('bsdtar', ['-x', '-P', '--chroot', '-C', target, '--numeric-owner', '-p', '--exclude', '.wh.*', '--exclude', '*/.wh.*', '-f', '-'], { stdio: [fh.fd, 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number>((resolve, reject) => {
      child.on('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'ENOENT' ? new NookError('NOT_SUPPORTED', 'unpacking images needs bsdtar on the host', { hint: 'apt-get install libarchive-tools' }) : e),
      );
      child.on('close', (c) => resolve(c ?? 1));
    });
    if (code !== 0) throw new NookError('INVALID_ARGUMENT', `a layer could not be unpacked inside the image: ${stderr.trim().split('\n').slice(-3).join('; ')}`);
  } finally {
    await fh.close();
  }
}

/** Refuses what no layer may hold: device nodes, and paths that climb out of the image. */
export function checkMembers(members: Member[]): void {
  const devices = members.filter((m) => m.type === 'c' || m.type === 'b');
  if (devices.length > 0) {
    throw new NookError('INVALID_ARGUMENT', `the image holds device nodes (${devices.slice(0, 3).map((d) => d.path).join(', ')}): refused`, {
      hint: 'sandboxes get their devices from nook; remove device nodes from the image',
    });
  }
  const escaping = members.find((m) => m.path.split('/').includes('..'));
  if (escaping) throw new NookError('INVALID_ARGUMENT', `layer path ${escaping.path} escapes the image: refused`);
}

/** Applies one verified, listed layer onto `target`: its whiteouts first, then its files. */
async function applyLayer(target: string, layer: ListedLayer): Promise<void> {
  checkMembers(layer.members);
  // Whiteouts delete what lower layers put there, before this layer's files land.
  for (const m of layer.members) {
    const base = m.path.split('/').pop() ?? '';
    const parent = m.path.split('/').slice(0, -1).join('/');
    if (base === '.wh..wh..opq') await removeInside(target, parent, true);
    else if (base.startsWith('.wh.')) await removeInside(target, parent ? `${parent}/${base.slice(4)}` : base.slice(4));
  }
  await extractConfined(layer.file, target);
}

/**
 * Applies `count` layers, lowest first, onto `target` (an empty staging dir), then shifts
 * ownership into the sandbox range. `layer(i)` gives layer i once it is verified and
 * listed; it is asked for i + 1 before layer i is applied, so the next one's work
 * (a listing, or a download) overlaps this one's extraction.
 */
export async function applyListed(target: string, count: number, layer: (index: number) => Promise<ListedLayer>, onLayer: (index: number) => void = () => undefined): Promise<void> {
  let next = count > 0 ? layer(0) : null;
  for (let i = 0; i < count && next; i++) {
    const current = next;
    next = i + 1 < count ? layer(i + 1) : null;
    // A failure of the next layer is reported when its turn comes.
    next?.catch(() => undefined);
    const ready = await current;
    onLayer(i);
    await applyLayer(target, ready);
  }
  await shiftOwnership(target, ID_MAP.hostId);
}

/**
 * Applies verified layer files, lowest first, onto `target`. Compression is sniffed by
 * bsdtar, not trusted from the media type (docker archives do not say).
 */
export async function applyLayers(target: string, layerFiles: string[], onLayer: (index: number) => void = () => undefined): Promise<void> {
  const list = async (file: string): Promise<ListedLayer> => ({ file, members: await listLayerFile(file) });
  await applyListed(target, layerFiles.length, (i) => list(layerFiles[i] ?? ''), onLayer);
}
