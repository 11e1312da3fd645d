import type { Readable } from 'node:stream';
import { routeRefs as routes } from '../../api/route-refs.js';
import type { FastCopyEvent, FastCopyRequest, FileInfo, TarResult } from '../../api/schemas.js';
// dir-transfer (tar) is loaded when a transfer runs, so a CLI command without one starts without it.
import type { Unpacked } from '../dir-transfer.js';
import type { Api } from '../routes.js';

const DEFAULT_READ_MAX_BYTES = 16 * 1024 * 1024;
const DEFAULT_TAR_MAX_BYTES = 1024 ** 3;

const optional = (n: number | undefined): string | undefined => (n === undefined ? undefined : String(n));
const octal = (mode: number | undefined): string | undefined => (mode === undefined ? undefined : mode.toString(8));
/** The query of a call about `path` in the sandbox. */
const at = (path: string, extra: Record<string, string | undefined> = {}): { query: Record<string, string | undefined> } => ({ query: { path, ...extra } });

/** Files inside a sandbox (resolved in its own root; a paused sandbox is resumed). `sandbox.files`. */
export class Files {
  constructor(
    private readonly api: Api,
    private readonly ref: () => string,
  ) {}

  /** A regular file's bytes; refused (PAYLOAD_TOO_LARGE) past maxBytes, default 16 MiB. */
  read(path: string, options: { maxBytes?: number } = {}): Promise<Buffer> {
    return this.api.bytes(routes.readFile, { ref: this.ref() }, at(path, { maxBytes: optional(options.maxBytes) }));
  }

  /** Writes a file (replaced atomically; a symlink there is replaced, not followed). */
  write(path: string, data: string | Buffer, options: { mode?: number } = {}): Promise<FileInfo> {
    return this.api.json(routes.writeFile, { ref: this.ref() }, { ...at(path, { mode: octal(options.mode) }), bodyBytes: Buffer.from(data) });
  }

  stat(path: string): Promise<FileInfo> {
    return this.api.json(routes.statFile, { ref: this.ref() }, at(path));
  }

  async list(path: string): Promise<FileInfo[]> {
    return (await this.api.json(routes.listFiles, { ref: this.ref() }, at(path))).files;
  }

  mkdir(path: string, options: { parents?: boolean } = {}): Promise<FileInfo> {
    return this.api.json(routes.makeDir, { ref: this.ref() }, { body: { path, ...(options.parents ? { parents: true } : {}) } });
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    await this.api.json(routes.removeFile, { ref: this.ref() }, at(path, { recursive: options.recursive ? 'true' : undefined }));
  }

  /** Unpacks a tar stream into `dir` (made with its parents); tar runs inside the sandbox. */
  writeTar(dir: string, archive: NodeJS.ReadableStream): Promise<TarResult> {
    return this.api.json(routes.putTar, { ref: this.ref() }, { ...at(dir), bodyStream: archive });
  }

  /** `path` as a tar stream (one top entry); the stream breaks off past maxBytes (default 1 GiB). */
  readTar(path: string, options: { maxBytes?: number } = {}): Promise<Readable> {
    return this.api.rawStream(routes.getTar, { ref: this.ref() }, at(path, { maxBytes: optional(options.maxBytes) }));
  }

  /**
   * The fast copy of one file, for a client on the daemon's own host (unix socket): yields
   * `{type: 'ready', socket}`, where the caller hands its open host file over with
   * native/build/nook-copy (SCM_RIGHTS), then the result or an error. `nook cp` uses it and
   * falls back to uploadFile/downloadFile; over TCP the daemon answers NOT_SUPPORTED.
   */
  fastCopy(request: FastCopyRequest, options: { signal?: AbortSignal } = {}): AsyncGenerator<FastCopyEvent> {
    return this.api.stream(routes.fastCopy, { ref: this.ref() }, { body: request, ...(options.signal ? { signal: options.signal } : {}) });
  }

  /** Streams a host file into the sandbox (no size held in memory; bounded by the daemon). */
  uploadFile(hostFile: string, path: string, options: { mode?: number } = {}): Promise<FileInfo> {
    return this.api.json(routes.writeFile, { ref: this.ref() }, { ...at(path, { mode: octal(options.mode) }), bodyFile: hostFile, contentType: 'application/octet-stream' });
  }

  /** Streams a regular file out to a host path (replaced atomically; refused past maxBytes, default 16 MiB). */
  async downloadFile(path: string, hostDest: string, options: { maxBytes?: number } = {}): Promise<{ path: string; bytes: number }> {
    const maxBytes = options.maxBytes ?? DEFAULT_READ_MAX_BYTES;
    const info = await this.stat(path);
    const data = await this.api.rawStream(routes.readFile, { ref: this.ref() }, at(path, { maxBytes: String(maxBytes) }));
    const { saveFile } = await import('../dir-transfer.js');
    return saveFile(data, hostDest, info.mode, maxBytes);
  }

  /** Copies a host directory's contents into `dir` in the sandbox. */
  async uploadDir(hostDir: string, dir: string): Promise<TarResult> {
    const { packDir } = await import('../dir-transfer.js');
    return this.writeTar(dir, packDir(hostDir));
  }

  /** Copies a file or directory out to the host (into `hostDest` when that is a directory). */
  async download(path: string, hostDest: string, options: { maxBytes?: number } = {}): Promise<Unpacked> {
    const maxBytes = options.maxBytes ?? DEFAULT_TAR_MAX_BYTES;
    const top = path.replace(/\/+$/, '').split('/').pop() || 'root';
    const { unpackTo } = await import('../dir-transfer.js');
    return unpackTo(await this.readTar(path, { maxBytes }), top, hostDest, maxBytes);
  }
}
