/**
 * OCI image layout export (https://github.com/opencontainers/image-spec), written as one tar
 * archive directly: one gzip layer of the image's files with ownership mapped back from the
 * sandbox range to ordinary ids, then config, manifest and index with sha256 digests.
 *
 * The image's files are a sandbox's (a commit), so the export is bounded by what they store:
 * holes are kept as holes (`--sparse`), the layer is written once, into its place in the
 * archive (before, a layout directory was copied into the archive: two copies), and the
 * writer stops with NO_SPACE before the state dir's file system, where the pool's loop file
 * also lives, drops below its floor.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Header } from 'tar';
import { NookError } from '../api/errors.js';
import { ID_MAP } from '../util/id-map.js';
import { MT } from './layers.js';

export interface ImageMeta {
  name: string;
  env: Record<string, string>;
  cwd: string;
  user?: string | null;
  entrypoint?: string[];
  cmd?: string[];
}

/** How much of tar's complaints an export error quotes. */
const STDERR_KEEP_CHARS = 4096;
/** Free space is checked again after this many bytes are written. */
const SPACE_CHECK_BYTES = 4 * 1024 * 1024;

/** GNU tar maps for the sandbox uid/gid range back to 0..65535. */
async function idMapFile(dir: string): Promise<string> {
  const lines: string[] = [];
  for (let i = 0; i < ID_MAP.size; i++) lines.push(`+${ID_MAP.hostId + i} ${i === 0 ? 'root' : `u${i}`}:${i}`);
  const file = join(dir, 'idmap');
  await fsp.writeFile(file, lines.join('\n') + '\n');
  return file;
}

/** One 512-byte ustar header, root-owned. */
function header(path: string, type: 'File' | 'Directory', size: number): Buffer {
  const block = Buffer.alloc(512);
  new Header({ path, type, mode: type === 'Directory' ? 0o755 : 0o644, size, mtime: new Date(), uid: 0, gid: 0, uname: 'root', gname: 'root' }).encode(block);
  return block;
}

const padding = (size: number): Buffer => Buffer.alloc((512 - (size % 512)) % 512);

/** NO_SPACE unless the file system holding `dir` keeps `floorBytes` free. */
export async function ensureFree(dir: string, floorBytes: number, what: string): Promise<void> {
  const st = await fsp.statfs(dir);
  const free = st.bavail * st.bsize;
  if (free < floorBytes) {
    throw new NookError('NO_SPACE', `${what} stopped: only ${Math.floor(free / 1048576)} MiB are free where the state dir lives, and ${Math.floor(floorBytes / 1048576)} MiB are kept free for the storage pool`, {
      hint: 'free space there (nook gc, nook image rm), then retry; the export needs about the size of the image (nook image ls)',
      context: { freeBytes: free, minFreeBytes: floorBytes },
    });
  }
}

/** Passes bytes through, checking free space every SPACE_CHECK_BYTES. */
function spaceGuard(dir: string, floorBytes: number): Transform {
  let sinceCheck = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
      sinceCheck += chunk.length;
      if (sinceCheck < SPACE_CHECK_BYTES) return done(null, chunk);
      sinceCheck = 0;
      ensureFree(dir, floorBytes, 'the export').then(() => done(null, chunk), (e: unknown) => done(e as Error));
    },
  });
}

/** Writes the image whose files are at `rootfs` as an OCI image layout tar at `file` (which must not exist). */
export async function writeOciArchive(rootfs: string, file: string, meta: ImageMeta, floorBytes: number): Promise<void> {
  const dir = dirname(file);
  await ensureFree(dir, floorBytes, 'the export');
  const map = await idMapFile(dir);
  const fh = await fsp.open(file, 'wx', 0o600);
  try {
    let offset = 0;
    const put = async (b: Buffer): Promise<void> => {
      await fh.write(b, 0, b.length, offset);
      offset += b.length;
    };
    const putFile = async (path: string, data: Buffer): Promise<{ digest: string; size: number }> => {
      await put(Buffer.concat([header(path, 'File', data.length), data, padding(data.length)]));
      return { digest: `sha256:${path.split('/').pop() ?? ''}`, size: data.length };
    };
    const putBlob = (data: Buffer): Promise<{ digest: string; size: number }> => putFile(`blobs/sha256/${createHash('sha256').update(data).digest('hex')}`, data);

    await putFile('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    await put(Buffer.concat([header('blobs/', 'Directory', 0), header('blobs/sha256/', 'Directory', 0)]));
    // The layer's header is written once its digest and size are known.
    const layerAt = offset;
    offset += 512;
    const layer = await writeLayer(rootfs, map, writerAt(fh, offset), spaceGuard(dir, floorBytes));
    await fh.write(header(`blobs/sha256/${layer.blobHex}`, 'File', layer.size), 0, 512, layerAt);
    offset += layer.size;
    await put(padding(layer.size));

    const config = await putBlob(
      Buffer.from(
        JSON.stringify({
          created: new Date().toISOString(),
          architecture: 'amd64',
          os: 'linux',
          config: {
            Env: Object.entries(meta.env).map(([k, v]) => `${k}=${v}`),
            WorkingDir: meta.cwd,
            ...(meta.user ? { User: meta.user } : {}),
            ...(meta.entrypoint?.length ? { Entrypoint: meta.entrypoint } : {}),
            ...(meta.cmd?.length ? { Cmd: meta.cmd } : {}),
          },
          rootfs: { type: 'layers', diff_ids: [`sha256:${layer.diffHex}`] },
          history: [{ created: new Date().toISOString(), created_by: `nook image export ${meta.name}` }],
        }),
      ),
    );
    const manifest = await putBlob(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT.manifest,
          config: { mediaType: MT.config, ...config },
          layers: [{ mediaType: MT.layerGzip, digest: `sha256:${layer.blobHex}`, size: layer.size }],
        }),
      ),
    );
    const index = { schemaVersion: 2, mediaType: MT.index, manifests: [{ mediaType: MT.manifest, ...manifest, annotations: { 'org.opencontainers.image.ref.name': meta.name } }] };
    await putFile('index.json', Buffer.from(JSON.stringify(index)));
    await put(Buffer.alloc(1024));
  } finally {
    await fh.close();
    await fsp.rm(map, { force: true });
  }
}

/**
 * A stream writing into `fh` from `start` on. Not fs.createWriteStream: given the FileHandle
 * it keeps a reference that makes close() wait forever, and given the plain descriptor it
 * closes it when the pipeline fails.
 */
function writerAt(fh: FileHandle, start: number): Writable {
  let position = start;
  return new Writable({
    write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
      fh.write(chunk, 0, chunk.length, position).then(() => {
        position += chunk.length;
        done();
      }, done);
    },
  });
}

/** The image's files as one gzip layer written to `out`: its digests and size. */
async function writeLayer(rootfs: string, map: string, out: Writable, guard: Transform): Promise<{ diffHex: string; blobHex: string; size: number }> {
  const diffHash = createHash('sha256');
  const blobHash = createHash('sha256');
  let size = 0;
  // --sparse: the rootfs is the sandbox's, and a file's length costs it nothing (`truncate -s 4E`
  // stores no block): tar walks only its data (SEEK_DATA) and writes a sparse member, so the
  // export costs what the disk limit let the sandbox store, not years of zeros through gzip.
  const tar = spawn('tar', ['--numeric-owner', `--owner-map=${map}`, `--group-map=${map}`, '--xattrs', '--sparse', '-C', rootfs, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Only the end is kept: tar warns once per socket or unreadable file the sandbox made.
  let stderr = '';
  tar.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-STDERR_KEEP_CHARS)));
  const exited = new Promise<number>((resolve) => tar.on('close', (code) => resolve(code ?? 1)));
  tar.stdout.on('data', (b: Buffer) => diffHash.update(b));
  const gzip = createGzip();
  gzip.on('data', (b: Buffer) => {
    blobHash.update(b);
    size += b.length;
  });
  try {
    await pipeline(tar.stdout, gzip, guard, out);
  } catch (e) {
    tar.kill('SIGKILL');
    await exited;
    throw e;
  }
  if ((await exited) !== 0) throw new NookError('INTERNAL', `tar failed while exporting: ${stderr.trim()}`);
  return { diffHex: diffHash.digest('hex'), blobHex: blobHash.digest('hex'), size };
}
