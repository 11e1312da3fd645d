/**
 * OCI image layout import (https://github.com/opencontainers/image-spec; export is in
 * export.ts). Import verifies every digest, applies layers in order (whiteouts and opaque dirs
 * honoured), refuses device nodes and paths that escape, and maps ownership into the
 * sandbox range.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { NookError } from '../api/errors.js';
import { run } from '../util/proc.js';
import { listLayerFile } from './tar-list.js';
import { applyLayers, fileSha256, isGzip, imageDefaults, isIndex, MT, pickPlatform, sha256Hex, type Descriptor, type ImageDefaults, type Manifest } from './layers.js';

async function readJson<T>(path: string, what = 'OCI image layout'): Promise<T> {
  const name = path.split('/').slice(-2).join('/');
  const bad = (why: string): NookError =>
    new NookError('INVALID_ARGUMENT', `not a valid ${what}: ${name} ${why}`, {
      hint: 'give an OCI image layout tar (oci-layout, index.json, blobs/sha256/...) or a docker save archive',
    });
  // Never through a link: an archive could point one at a host file. And the parse error is
  // not echoed, since it quotes the text it choked on.
  const st = await fsp.lstat(path).catch(() => null);
  if (!st) throw bad('is missing');
  if (!st.isFile()) throw bad('is not a plain file');
  try {
    return JSON.parse(await fsp.readFile(path, 'utf8')) as T;
  } catch {
    throw bad('is not valid JSON');
  }
}

/**
 * The real path of an archive member, or null when it is missing. Every component is resolved,
 * and the result must be a plain file inside the unpacked archive: a member (or a parent such
 * as `blobs/`) that links to a host directory can never make us read host content.
 */
async function memberPath(root: string, rel: string, what: string): Promise<string | null> {
  const realRoot = await fsp.realpath(root);
  const real = await fsp.realpath(join(realRoot, rel)).catch(() => null);
  if (!real) return null;
  if (!real.startsWith(`${realRoot}/`)) throw new NookError('INVALID_ARGUMENT', `the ${what} names a path outside itself: ${rel}`, { hint: 'the archive is malformed or hostile; rebuild it' });
  if (!(await fsp.lstat(real)).isFile()) throw new NookError('INVALID_ARGUMENT', `${rel} in the ${what} is not a plain file`);
  return real;
}

/** The path of a blob after checking its sha256 and size against its descriptor. */
async function verifiedBlob(layout: string, d: Descriptor): Promise<string> {
  const hex = sha256Hex(d.digest ?? '');
  const path = await memberPath(layout, join('blobs', 'sha256', hex), 'OCI image layout');
  const found = path ? await fileSha256(path).catch(() => null) : null;
  if (!path || !found) throw new NookError('INVALID_ARGUMENT', `the layout lacks blob ${d.digest}`);
  if (found.hex !== hex || (typeof d.size === 'number' && d.size !== found.size)) {
    throw new NookError('DIGEST_MISMATCH', `blob ${d.digest} does not match its digest or size: the archive is corrupt or was tampered with`);
  }
  return path;
}

export interface UnpackedImage {
  defaults: ImageDefaults;
  /** Manifest digest (OCI layout) or config digest (docker archive): what identifies the image. */
  digest: string;
  layers: { digest: string; sizeBytes: number }[];
}

/**
 * Reads an OCI image layout directory into `target` (an empty staging dir): the first
 * image of index.json, or its linux/amd64 entry when that is a multi-platform index.
 */
export async function applyLayout(layout: string, target: string): Promise<UnpackedImage> {
  const index = await readJson<Manifest>(join(layout, 'index.json'));
  let desc = (index.manifests ?? []).find((m) => m.mediaType === MT.manifest || m.mediaType === MT.dockerManifest || m.mediaType === undefined) ?? index.manifests?.[0];
  if (!desc) throw new NookError('INVALID_ARGUMENT', "the layout's index.json lists no image manifest");
  let manifest = await readJson<Manifest>(await verifiedBlob(layout, desc));
  if (isIndex(manifest, desc.mediaType)) {
    desc = pickPlatform(manifest, 'the layout');
    manifest = await readJson<Manifest>(await verifiedBlob(layout, desc));
  }
  if (!manifest.config || !manifest.layers) throw new NookError('INVALID_ARGUMENT', 'the image manifest lacks its config or layers');
  const config = await readJson<unknown>(await verifiedBlob(layout, manifest.config));
  const files: string[] = [];
  for (const layer of manifest.layers) {
    if (layer.mediaType && !/tar(\+gzip|\.gzip)?$/.test(layer.mediaType)) {
      throw new NookError('NOT_SUPPORTED', `layer type ${layer.mediaType} is not supported`, { hint: 'use gzip or plain tar layers' });
    }
    files.push(await verifiedBlob(layout, layer));
  }
  await applyLayers(target, files);
  return { defaults: imageDefaults(config), digest: desc.digest, layers: manifest.layers.map((l) => ({ digest: l.digest, sizeBytes: l.size ?? 0 })) };
}

/**
 * Reads a `docker save` archive directory (manifest.json naming a config and layer tars)
 * into `target`. The config file's sha256 must match its name, and each layer's sha256
 * must match the config's diff_ids, so nothing in the archive goes unverified.
 */
export async function applyDockerArchive(dir: string, target: string): Promise<UnpackedImage> {
  const entries = await readJson<{ Config?: string; Layers?: string[]; RepoTags?: string[] }[]>(join(dir, 'manifest.json'), 'docker archive');
  const entry = entries[0];
  if (!entry?.Config || !Array.isArray(entry.Layers)) throw new NookError('INVALID_ARGUMENT', 'the docker archive\'s manifest.json names no config or layers');
  const inside = async (rel: string): Promise<string> => {
    const real = await memberPath(dir, rel, 'docker archive');
    if (!real) throw new NookError('INVALID_ARGUMENT', `the docker archive lacks ${rel}`);
    return real;
  };
  const configPath = await inside(entry.Config);
  const configSum = await fileSha256(configPath).catch(() => null);
  if (!configSum) throw new NookError('INVALID_ARGUMENT', `the docker archive lacks its config ${entry.Config}`);
  const named = /([a-f0-9]{64})(\.json)?$/.exec(entry.Config)?.[1];
  if (named && named !== configSum.hex) throw new NookError('DIGEST_MISMATCH', `the docker archive's config does not match its digest ${named}`);
  const config = await readJson<{ rootfs?: { diff_ids?: string[] } }>(configPath, 'docker archive');
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== entry.Layers.length) throw new NookError('INVALID_ARGUMENT', `the docker archive lists ${entry.Layers.length} layers but its config ${diffIds.length}`);
  const layers: { digest: string; sizeBytes: number }[] = [];
  const files: string[] = [];
  for (const [i, rel] of entry.Layers.entries()) {
    const path = await inside(rel);
    const sum = await fileSha256(path).catch(() => null);
    if (!sum) throw new NookError('INVALID_ARGUMENT', `the docker archive lacks layer ${rel}`);
    // diff_ids digest the uncompressed tar; archives normally hold layers uncompressed.
    const want = sha256Hex(diffIds[i] ?? '');
    const have = (await isGzip(path)) ? await gunzipSha256(path) : sum.hex;
    if (have !== want) throw new NookError('DIGEST_MISMATCH', `layer ${rel} does not match its diff_id sha256:${want}: the archive is corrupt or was tampered with`);
    files.push(path);
    layers.push({ digest: `sha256:${sum.hex}`, sizeBytes: sum.size });
  }
  await applyLayers(target, files);
  return { defaults: imageDefaults(config), digest: `sha256:${configSum.hex}`, layers };
}

async function gunzipSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), createGunzip(), async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) hash.update(chunk);
  });
  return hash.digest('hex');
}

/**
 * Unpacks an uploaded image archive (an OCI image layout tar or a `docker save` archive)
 * into `layout` and says which it is. The outer archive holds only JSON and blobs: its
 * listing goes through the same bounded listing as a layer (as nobody, members and bytes
 * capped), and devices, fifos and hard links are refused before anything is written.
 * Symlinks are allowed (docker archives link legacy layer paths to blobs); they are resolved
 * and kept inside the archive when read.
 */
export async function unpackImageArchive(tarFile: string, layout: string): Promise<'oci-layout' | 'docker-archive'> {
  const notTar = (): NookError => new NookError('INVALID_ARGUMENT', 'the file is not a tar archive', { hint: 'give an OCI image layout tar (nook image export writes one) or a docker save archive' });
  const members = await listLayerFile(tarFile).catch((e: unknown) => {
    throw e instanceof NookError && (e.code === 'NOT_SUPPORTED' || /too large/.test(e.message)) ? e : notTar();
  });
  if (members.some((m) => 'cbph'.includes(m.type))) throw new NookError('INVALID_ARGUMENT', 'an image archive must hold only files, directories and symlinks');
  await run(['tar', '-xf', tarFile, '-C', layout, '--no-same-owner', '--no-same-permissions']);
  const has = (f: string): Promise<boolean> => fsp.stat(join(layout, f)).then(() => true, () => false);
  // Docker 25+ writes both; the layout is the one with digests for everything.
  if (await has('index.json')) return 'oci-layout';
  if (await has('manifest.json')) return 'docker-archive';
  throw new NookError('INVALID_ARGUMENT', 'the archive is neither an OCI image layout (index.json) nor a docker save archive (manifest.json)', {
    hint: 'write one with nook image export, skopeo copy ... oci-archive: or docker save',
  });
}
