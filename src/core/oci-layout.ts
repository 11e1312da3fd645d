/**
 * OCI image layout export and import (https://github.com/opencontainers/image-spec).
 * Export writes one gzip layer of the image's files with ownership mapped back from the
 * sandbox range to ordinary ids, plus config, manifest and index with sha256 digests.
 * Import verifies every digest, applies layers in order (whiteouts and opaque dirs
 * honoured), refuses device nodes and paths that escape, and maps ownership into the
 * sandbox range.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { NookError } from '../api/errors.js';
import { ID_MAP } from '../runtime/oci-config.js';
import { run } from '../util/proc.js';
import { shiftOwnership } from './ownership.js';

const MT = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
} as const;

export interface ImageMeta {
  name: string;
  env: Record<string, string>;
  cwd: string;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

async function writeBlob(layout: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const hex = createHash('sha256').update(data).digest('hex');
  await fsp.writeFile(join(layout, 'blobs', 'sha256', hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

/** GNU tar maps for the sandbox uid/gid range back to 0..65535. */
async function idMapFile(dir: string): Promise<string> {
  const lines: string[] = [];
  for (let i = 0; i < ID_MAP.size; i++) lines.push(`+${ID_MAP.hostId + i} ${i === 0 ? 'root' : `u${i}`}:${i}`);
  const file = join(dir, 'idmap');
  await fsp.writeFile(file, lines.join('\n') + '\n');
  return file;
}

/** Builds an OCI image layout directory for the image whose files are at `rootfs`. */
export async function buildLayout(rootfs: string, layout: string, meta: ImageMeta): Promise<void> {
  await fsp.mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  const map = await idMapFile(layout);
  const layerTmp = join(layout, 'layer.tmp');
  const diffHash = createHash('sha256');
  const blobHash = createHash('sha256');
  const tar = spawn('tar', ['--numeric-owner', `--owner-map=${map}`, `--group-map=${map}`, '--xattrs', '-C', rootfs, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  tar.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number>((resolve) => tar.on('close', (code) => resolve(code ?? 1)));
  tar.stdout.on('data', (b: Buffer) => diffHash.update(b));
  const gzip = createGzip();
  gzip.on('data', (b: Buffer) => blobHash.update(b));
  await pipeline(tar.stdout, gzip, createWriteStream(layerTmp));
  if ((await exited) !== 0) throw new NookError('INTERNAL', `tar failed while exporting: ${stderr.trim()}`);
  const layerHex = blobHash.digest('hex');
  const layerSize = (await fsp.stat(layerTmp)).size;
  await fsp.rename(layerTmp, join(layout, 'blobs', 'sha256', layerHex));
  await fsp.rm(map);

  const config = await writeBlob(
    layout,
    Buffer.from(
      JSON.stringify({
        created: new Date().toISOString(),
        architecture: 'amd64',
        os: 'linux',
        config: { Env: Object.entries(meta.env).map(([k, v]) => `${k}=${v}`), WorkingDir: meta.cwd },
        rootfs: { type: 'layers', diff_ids: [`sha256:${diffHash.digest('hex')}`] },
        history: [{ created: new Date().toISOString(), created_by: `nook image export ${meta.name}` }],
      }),
    ),
  );
  const manifest = await writeBlob(
    layout,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.manifest,
        config: { mediaType: MT.config, ...config },
        layers: [{ mediaType: MT.layerGzip, digest: `sha256:${layerHex}`, size: layerSize }],
      }),
    ),
  );
  const index = { schemaVersion: 2, mediaType: MT.index, manifests: [{ mediaType: MT.manifest, ...manifest, annotations: { 'org.opencontainers.image.ref.name': meta.name } }] };
  await fsp.writeFile(join(layout, 'index.json'), JSON.stringify(index));
  await fsp.writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

async function readJson<T>(path: string): Promise<T> {
  try {
    return JSON.parse(await fsp.readFile(path, 'utf8')) as T;
  } catch (e) {
    throw new NookError('INVALID_ARGUMENT', `not an OCI image layout: cannot read ${path.split('/').slice(-2).join('/')}: ${(e as Error).message}`, {
      hint: 'give a tar of an OCI image layout (oci-layout, index.json, blobs/sha256/...), e.g. from nook image export',
    });
  }
}

/** The path of a blob after checking its sha256 and size against its descriptor. */
async function verifiedBlob(layout: string, d: Descriptor): Promise<string> {
  const m = /^sha256:([a-f0-9]{64})$/.exec(d.digest ?? '');
  if (!m?.[1]) throw new NookError('INVALID_ARGUMENT', `unsupported or malformed digest ${String(d.digest)}`);
  const path = join(layout, 'blobs', 'sha256', m[1]);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
  } catch {
    throw new NookError('INVALID_ARGUMENT', `the layout lacks blob ${d.digest}`);
  }
  if (hash.digest('hex') !== m[1] || (typeof d.size === 'number' && d.size !== size)) {
    throw new NookError('INVALID_ARGUMENT', `blob ${d.digest} does not match its digest or size: the archive is corrupt or was tampered with`);
  }
  return path;
}

/** Tar members of a layer: type letter and path (without leading ./). */
async function listLayer(blob: string, gzip: boolean): Promise<{ type: string; path: string }[]> {
  const r = await run(['tar', gzip ? '-tvzf' : '-tvf', blob, '--numeric-owner', '--quoting-style=escape']);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      // "drwxr-xr-x 0/0 0 2026-01-01 00:00 ./path" (symlinks and hard links add " -> target" / " link to target")
      const m = /^(\S)\S*\s+\S+\s+\S+\s+\S+\s+\S+\s+(.*?)(?: -> .*| link to .*)?$/.exec(line);
      return { type: m?.[1] ?? '?', path: (m?.[2] ?? '').replace(/^\.\//, '').replace(/^\/+/, '') };
    });
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
 * Reads an OCI image layout directory into `target` (an empty staging dir). Returns the
 * image config (env, cwd) the layout declares.
 */
export async function applyLayout(layout: string, target: string): Promise<{ env: Record<string, string>; cwd: string | null; manifestDigest: string }> {
  const index = await readJson<{ manifests?: Descriptor[] }>(join(layout, 'index.json'));
  const desc = (index.manifests ?? []).find((m) => m.mediaType === MT.manifest || m.mediaType === undefined) ?? index.manifests?.[0];
  if (!desc) throw new NookError('INVALID_ARGUMENT', 'the layout\'s index.json lists no image manifest');
  if (desc.mediaType && desc.mediaType !== MT.manifest) {
    throw new NookError('NOT_SUPPORTED', `manifest type ${desc.mediaType} is not supported yet`, { hint: 'export a single-platform OCI image' });
  }
  const manifest = await readJson<{ config?: Descriptor; layers?: Descriptor[] }>(await verifiedBlob(layout, desc));
  if (!manifest.config || !manifest.layers) throw new NookError('INVALID_ARGUMENT', 'the image manifest lacks its config or layers');
  const config = await readJson<{ config?: { Env?: string[]; WorkingDir?: string } }>(await verifiedBlob(layout, manifest.config));

  for (const layer of manifest.layers) {
    if (layer.mediaType !== MT.layerGzip && layer.mediaType !== MT.layerTar && !/docker\.image\.rootfs\.diff\.tar(\.gzip)?$/.test(layer.mediaType)) {
      throw new NookError('NOT_SUPPORTED', `layer type ${layer.mediaType} is not supported`, { hint: 'use gzip or plain tar layers' });
    }
    const gzip = layer.mediaType.endsWith('gzip');
    const blob = await verifiedBlob(layout, layer);
    const members = await listLayer(blob, gzip);
    const devices = members.filter((m) => m.type === 'c' || m.type === 'b');
    if (devices.length > 0) {
      throw new NookError('INVALID_ARGUMENT', `the image holds device nodes (${devices.slice(0, 3).map((d) => d.path).join(', ')}): refused`, {
        hint: 'sandboxes get their devices from nook; remove device nodes from the image',
      });
    }
    const escaping = members.find((m) => m.path.split('/').includes('..'));
    if (escaping) throw new NookError('INVALID_ARGUMENT', `layer path ${escaping.path} escapes the image: refused`);
    // Whiteouts delete what lower layers put there, before this layer's files land.
    for (const m of members) {
      const base = m.path.split('/').pop() ?? '';
      const parent = m.path.split('/').slice(0, -1).join('/');
      if (base === '.wh..wh..opq') await removeInside(target, parent, true);
      else if (base.startsWith('.wh.')) await removeInside(target, parent ? `${parent}/${base.slice(4)}` : base.slice(4));
    }
    await run(['tar', gzip ? '-xzf' : '-xf', blob, '-C', target, '--numeric-owner', '--same-permissions', '--xattrs', '--exclude=.wh.*', '--exclude=*/.wh.*']);
  }
  shiftOwnership(target, ID_MAP.hostId);
  const env: Record<string, string> = {};
  for (const kv of config.config?.Env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { env, cwd: config.config?.WorkingDir || null, manifestDigest: desc.digest };
}
