/**
 * Directory trees in and out of a sandbox as tar streams. The tar runs inside the sandbox
 * (the image's own tar, busybox or GNU), in its namespaces, so whatever paths and links
 * the archive or the sandbox's files hold resolve in the sandbox's root and never on the
 * host. Streams are bounded in bytes and time, with back-pressure both ways.
 */
import type { Readable } from 'node:stream';
import { NookError } from '../api/errors.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { AuditLog } from './audit.js';
import type { FileManager } from './files.js';
import type { SandboxManager } from './sandboxes.js';
import { feedStdin, SessionOutput } from './session-stream.js';
import { positiveInt } from '../util/env.js';

const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
/** A transfer that makes no progress for this long is ended (the fast path's too). */
export const COPY_IDLE_TIMEOUT_MS = positiveInt(process.env.NOOK_COPY_IDLE_TIMEOUT_MS, 120_000);
const IDLE_TIMEOUT_MS = COPY_IDLE_TIMEOUT_MS;
const OUT_SLACK_BYTES = 1024 * 1024;
/** tar's stderr kept for the error message: the sandbox chooses what `tar` is, so only a tail. */
const STDERR_TAIL_CHARS = 4000;

function keepTail(kept: string, chunk: Buffer): string {
  return (kept + chunk.toString()).slice(-STDERR_TAIL_CHARS);
}

function checkPath(path: string): void {
  if (!path.startsWith('/') || path.includes('\0') || path.length > 4096) {
    throw new NookError('INVALID_ARGUMENT', `path ${JSON.stringify(path)} must be absolute (inside the sandbox)`, { hint: 'e.g. /work/data' });
  }
}

function tarFailed(code: number, stderr: string, what: string): NookError {
  if (code === 127) {
    return new NookError('NOT_SUPPORTED', `the sandbox's image has no tar, which ${what} needs`, { hint: 'copy single files with nook cp FILE, or use an image with tar (every preset has one)' });
  }
  return new NookError('INVALID_ARGUMENT', `tar in the sandbox failed (${what}, exit ${code}): ${stderr.trim().slice(-400) || 'no message'}`);
}

export interface TarResult {
  path: string;
  bytes: number;
  sha256: string;
}

export class TarTransfer {
  constructor(
    private readonly sandboxes: SandboxManager,
    private readonly runtime: RuntimeDriver,
    private readonly files: FileManager,
    private readonly audit: AuditLog,
  ) {}

  /** Unpacks a tar stream into `dir` inside the sandbox (made first, with its parents). */
  async extractInto(ref: string, dir: string, body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>, maxBytes: number): Promise<TarResult> {
    checkPath(dir);
    const sb = await this.sandboxes.ensureRunning(ref);
    await this.files.mkdir(sb.id, dir, true);
    let stderr = '';
    const session = this.runtime.openSession(sb.id, { argv: ['tar', '-xf', '-', '-C', dir], env: ENV, cwd: '/' }, { onStdout: () => undefined, onStderr: (b) => (stderr = keepTail(stderr, b)) });
    const idle = new IdleTimer(() => session.kill());
    let fed: { bytes: number; sha256: string };
    try {
      // preventCancel: on a refusal the daemon still reads the rest, so the client sees the answer.
      fed = await feedStdin(
        session,
        body instanceof ReadableStream ? body.values({ preventCancel: true }) : body,
        maxBytes,
        () => new NookError('PAYLOAD_TOO_LARGE', `the archive is larger than ${maxBytes} bytes: stopped`, { hint: 'copy less, or raise the limit (NOOK_MAX_TAR_IN_BYTES on the daemon)' }),
        () => idle.touch(),
      );
      const exit = await session.exited;
      if (idle.fired) throw new NookError('TIMEOUT', `the copy made no progress for ${IDLE_TIMEOUT_MS} ms`, { context: { timeoutMs: IDLE_TIMEOUT_MS } });
      if (exit.exitCode !== 0) throw tarFailed(exit.exitCode, stderr, 'unpacking the archive');
    } finally {
      idle.stop();
    }
    const result = { path: dir, ...fed };
    this.audit.note({ file: { ...result, direction: 'in', kind: 'tar' } }, { id: sb.id, name: sb.name });
    return result;
  }

  /**
   * A tar stream of `path` (file or directory) inside the sandbox; the archive's one top
   * entry is the path's last part. If tar fails the stream errors; past `maxBytes` it ends
   * without tar's end blocks. Either way a reader never mistakes a cut archive for a whole one.
   */
  async archive(ref: string, path: string, maxBytes: number): Promise<Readable> {
    checkPath(path);
    const sb = await this.sandboxes.ensureRunning(ref);
    const info = await this.files.stat(sb.id, path);
    const parts = path.replace(/\/+$/, '').split('/');
    const base = parts.pop() || '.';
    const parent = parts.join('/') || '/';
    const out = new SessionOutput();
    let stderr = '';
    let cut = false;
    const idle = new IdleTimer(() => out.fail(new NookError('TIMEOUT', `the copy made no progress for ${IDLE_TIMEOUT_MS} ms`, { context: { timeoutMs: IDLE_TIMEOUT_MS } })));
    const session = this.runtime.openSession(
      sb.id,
      { argv: ['tar', '-cf', '-', '-C', parent, base], env: ENV, cwd: '/' },
      {
        onStdout: (b) => {
          idle.touch();
          if (cut) return;
          // Past the bound (plus slack, so a client counting exactly trips first and says
          // why) the archive ends early, without tar's end blocks: it never reads as whole.
          if (out.bytes + b.length > maxBytes + OUT_SLACK_BYTES) {
            cut = true;
            session.kill();
            out.stream.end();
            return;
          }
          out.push(b);
        },
        onStderr: (b) => (stderr = keepTail(stderr, b)),
      },
    );
    out.attach(session);
    session.endStdin();
    session.exited.then(
      (exit) => {
        idle.stop();
        if (out.stream.destroyed || cut) return;
        if (exit.exitCode !== 0) {
          out.fail(tarFailed(exit.exitCode, stderr, `archiving ${path}`));
          return;
        }
        this.audit.note({ file: { path, type: info.type, bytes: out.bytes, sha256: out.hash.digest('hex'), direction: 'out', kind: 'tar' } }, { id: sb.id, name: sb.name });
        out.stream.end();
      },
      (e: unknown) => {
        idle.stop();
        out.fail(e instanceof NookError ? e : new NookError('RUNTIME_ERROR', String(e)));
      },
    );
    return out.stream;
  }
}

class IdleTimer {
  fired = false;
  private timer: NodeJS.Timeout;
  constructor(private readonly onIdle: () => void) {
    this.timer = this.arm();
  }
  private arm(): NodeJS.Timeout {
    return setTimeout(() => {
      this.fired = true;
      this.onIdle();
    }, IDLE_TIMEOUT_MS);
  }
  touch(): void {
    clearTimeout(this.timer);
    this.timer = this.arm();
  }
  stop(): void {
    clearTimeout(this.timer);
  }
}
