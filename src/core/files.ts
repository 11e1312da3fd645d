import type { Readable } from 'node:stream';
import { NookError } from '../api/errors.js';
import type { FastCopyRequest, FastCopyResult, FileInfo } from '../api/schemas.js';
import { INIT_PATH_IN_SANDBOX } from '../runtime/oci-config.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import { sha256, type AuditLog } from './audit.js';
import { fastCopy, type FastCopyDeps } from './fast-copy.js';
import type { SandboxManager } from './sandboxes.js';
import { feedStdin, SessionOutput } from './session-stream.js';

const FS_TIMEOUT_MS = 120_000;
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

/** nook-init fs's exit codes as errors. */
function failed(code: number, stderr: string, sandbox: string, path: string): void {
  if (code === 0) return;
  const message = stderr.trim() || `exit ${code}`;
  if (code === 2) throw new NookError('FILE_NOT_FOUND', message, { hint: `look with: nook fs ls ${sandbox} /`, context: { sandbox, path } });
  if (code === 3) throw new NookError('PAYLOAD_TOO_LARGE', message, { hint: 'raise --max-bytes, or copy a smaller file' });
  if (code === 4) throw new NookError('INVALID_ARGUMENT', message);
  throw new NookError('RUNTIME_ERROR', message);
}

function checkPath(path: string): void {
  if (!path.startsWith('/') || path.includes('\0') || path.length > 4096) {
    throw new NookError('INVALID_ARGUMENT', `path ${JSON.stringify(path)} must be absolute (inside the sandbox)`, { hint: 'e.g. /work/result.json' });
  }
}

/**
 * Files of a sandbox, read and written by nook-init inside it (run through the exec
 * agent): every path resolves in the sandbox's own root, so a symlink there can never
 * reach a host file, and the daemon never walks the sandbox's files itself. A paused
 * sandbox is resumed first, as for exec.
 */
export class FileManager {
  constructor(
    private readonly sandboxes: SandboxManager,
    private readonly runtime: RuntimeDriver,
    private readonly audit: AuditLog,
    /** The fast copy's helper and socket dir (see fast-copy.ts); none: only streams. */
    private readonly fast: Pick<FastCopyDeps, 'helper' | 'socketDir'> = { helper: null, socketDir: '' },
  ) {
  }

  /** One regular file, or a directory's tar stream, copied past the daemon by a native relay (fast-copy.ts). */
  fastCopy(ref: string, req: FastCopyRequest, maxInBytes: number, onReady: (socket: string) => void, signal: AbortSignal): Promise<FastCopyResult> {
    checkPath(req.path);
    const deps = { ...this.fast, sandboxes: this.sandboxes, runtime: this.runtime, audit: this.audit, stat: (id: string, path: string) => this.stat(id, path), mkdir: (id: string, path: string) => this.mkdir(id, path, true) };
    return fastCopy(deps, ref, req, maxInBytes, onReady, signal);
  }

  private async run(ref: string, args: string[], stdin?: Buffer, maxBytes = 1024 * 1024): Promise<Buffer> {
    const sb = await this.sandboxes.ensureRunning(ref);
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    const r = await this.runtime.exec(sb.id, {
      argv: [INIT_PATH_IN_SANDBOX, 'fs', ...args],
      env: ENV,
      cwd: '/',
      ...(stdin ? { stdin } : {}),
      timeoutMs: FS_TIMEOUT_MS,
      onStdout: (b) => {
        if (outBytes <= maxBytes) out.push(b);
        outBytes += b.length;
      },
      onStderr: (b) => (err = (err + b.toString()).slice(-4000)),
    });
    if (r.timedOut) throw new NookError('TIMEOUT', `the file operation timed out after ${FS_TIMEOUT_MS} ms`, { context: { timeoutMs: FS_TIMEOUT_MS } });
    failed(r.exitCode, err, sb.name, args[1] ?? '/');
    // Past the bound the output was cut (mid-line for a listing): say so, never parse the rest.
    if (outBytes > maxBytes) {
      throw new NookError('PAYLOAD_TOO_LARGE', `the answer from the sandbox is over ${maxBytes} bytes (${args[0]} ${args[1] ?? ''})`, {
        hint: 'list a smaller directory, or look inside it with nook exec SANDBOX -- ls',
        context: { maxBytes },
      });
    }
    this.audit.note({}, { id: sb.id, name: sb.name });
    return Buffer.concat(out);
  }

  /**
   * Writes a file from a stream, bounded by maxBytes, without holding it in memory. nook-init
   * writes into an unnamed temp file, so a stream cut short leaves the old file as it was.
   */
  async writeStream(ref: string, path: string, body: AsyncIterable<Uint8Array>, mode: number, maxBytes: number): Promise<FileInfo> {
    checkPath(path);
    const sb = await this.sandboxes.ensureRunning(ref);
    let err = '';
    const session = this.runtime.openSession(
      sb.id,
      { argv: [INIT_PATH_IN_SANDBOX, 'fs', 'write', path, (mode & 0o777).toString(8)], env: ENV, cwd: '/' },
      { onStdout: () => undefined, onStderr: (b) => (err += b.toString()) },
    );
    const fed = await feedStdin(session, body, maxBytes, () =>
      new NookError('PAYLOAD_TOO_LARGE', `more than ${maxBytes} bytes: stopped, the file is unchanged`, { hint: 'copy a smaller file, or raise NOOK_MAX_COPY_IN_BYTES on the daemon' }),
    );
    const exit = await session.exited;
    failed(exit.exitCode, err, sb.name, path);
    this.audit.note({ file: { path, ...fed, direction: 'in' } }, { id: sb.id, name: sb.name });
    return this.stat(sb.id, path);
  }

  /** A regular file as a stream; refused before anything is sent when it is larger than maxBytes. */
  async readStream(ref: string, path: string, maxBytes: number): Promise<{ info: FileInfo; stream: Readable }> {
    checkPath(path);
    const sb = await this.sandboxes.ensureRunning(ref);
    const info = await this.stat(sb.id, path);
    if (info.type !== 'file') throw new NookError('INVALID_ARGUMENT', `${path} is a ${info.type}, not a regular file`, { hint: 'copy directories with nook cp (a tar stream)' });
    if (info.size > maxBytes) throw new NookError('PAYLOAD_TOO_LARGE', `${path} is ${info.size} bytes, more than the limit of ${maxBytes}`, { hint: 'raise --max-bytes, or copy a smaller file' });
    const out = new SessionOutput();
    let err = '';
    const session = this.runtime.openSession(
      sb.id,
      { argv: [INIT_PATH_IN_SANDBOX, 'fs', 'cat', path, String(maxBytes)], env: ENV, cwd: '/' },
      { onStdout: (b) => out.push(b), onStderr: (b) => (err += b.toString()) },
    );
    out.attach(session);
    session.endStdin();
    session.exited.then(
      (exit) => {
        if (out.stream.destroyed) return;
        try {
          failed(exit.exitCode, err, sb.name, path);
        } catch (e) {
          out.fail(e as Error);
          return;
        }
        this.audit.note({ file: { path, bytes: out.bytes, sha256: out.hash.digest('hex'), direction: 'out' } }, { id: sb.id, name: sb.name });
        out.stream.end();
      },
      (e: unknown) => out.fail(e as Error),
    );
    return { info, stream: out.stream };
  }

  private parse(text: Buffer): FileInfo[] {
    return text
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as FileInfo);
  }

  async stat(ref: string, path: string): Promise<FileInfo> {
    checkPath(path);
    const [info] = this.parse(await this.run(ref, ['stat', path]));
    if (!info) throw new NookError('FILE_NOT_FOUND', `${path} not found`, { context: { sandbox: ref, path } });
    return { ...info, path };
  }

  async list(ref: string, path: string): Promise<FileInfo[]> {
    checkPath(path);
    return this.parse(await this.run(ref, ['ls', path], undefined, 64 * 1024 * 1024))
      .map((i) => ({ ...i, path: `${path.replace(/\/$/, '')}/${i.name}` }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A regular file's bytes; refused before anything is sent when it is larger than maxBytes. */
  async read(ref: string, path: string, maxBytes: number): Promise<Buffer> {
    checkPath(path);
    const data = await this.run(ref, ['cat', path, String(maxBytes)], undefined, maxBytes);
    this.audit.note({ file: { path, bytes: data.length, sha256: sha256(data), direction: 'out' } });
    return data;
  }

  async write(ref: string, path: string, data: Buffer, mode = 0o644): Promise<FileInfo> {
    checkPath(path);
    await this.run(ref, ['write', path, (mode & 0o777).toString(8)], data);
    this.audit.note({ file: { path, bytes: data.length, sha256: sha256(data), direction: 'in' } });
    return this.stat(ref, path);
  }

  async mkdir(ref: string, path: string, parents = false): Promise<FileInfo> {
    checkPath(path);
    await this.run(ref, ['mkdir', path, ...(parents ? ['-p'] : [])]);
    return this.stat(ref, path);
  }

  async remove(ref: string, path: string, recursive: boolean): Promise<void> {
    checkPath(path);
    if (path === '/') throw new NookError('INVALID_ARGUMENT', 'refusing to remove the sandbox root');
    await this.run(ref, ['rm', path, ...(recursive ? ['-r'] : [])]);
  }
}
