import { connect, type Socket } from 'node:net';
import { NookError } from '../api/errors.js';
import type { ExecOutcome, ExecSpec, SessionHandle, SessionSpec } from './driver.js';

/** Frame types of the agent protocol (native/src/frame.h). */
const F = { request: 'R', stdin: 'I', stdinEof: 'E', kill: 'K', resize: 'W', signal: 'S', started: 'P', stdout: 'O', stderr: 'A', exit: 'X' } as const;
const STDIN_CHUNK = 1024 * 1024;
/** After a kill, how long the agent gets to report the exit before we hang up on it. */
const KILL_GRACE_MS = 3000;

/** A frame's 5-byte head (the payload goes out after it, uncopied). */
function frameHead(type: string, length: number): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(length, 1);
  return head;
}

function frame(type: string, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

function requestPayload(spec: SessionSpec): Buffer {
  const env = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
  const fields = [String(spec.argv.length), ...spec.argv, String(env.length), ...env, spec.cwd, spec.user ?? ''];
  if (spec.tty) fields.push('1', String(spec.tty.cols), String(spec.tty.rows));
  return Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
}

/**
 * Splits a byte stream into frames. Chunks are kept as they come and joined once a whole
 * frame is there, so a large frame arriving in many pieces is copied once, not once a piece.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private bytes = 0;

  push(chunk: Buffer, onFrame: (type: string, payload: Buffer) => void): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    for (;;) {
      if (this.bytes < 5) return;
      let head = this.chunks[0] ?? Buffer.alloc(0);
      if (head.length < 5) {
        head = Buffer.concat(this.chunks);
        this.chunks = [head];
      }
      const len = head.readUInt32BE(1);
      if (this.bytes < 5 + len) return;
      if (head.length < 5 + len) {
        head = Buffer.concat(this.chunks);
        this.chunks = [head];
      }
      const type = String.fromCharCode(head[0] ?? 0);
      const payload = head.subarray(5, 5 + len);
      const rest = head.subarray(5 + len);
      this.chunks[0] = rest;
      if (rest.length === 0) this.chunks.shift();
      this.bytes -= 5 + len;
      onFrame(type, payload);
    }
  }
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 15: 'SIGTERM' };
export function signalName(n: number): string {
  return SIGNALS[n] ?? `SIG${n}`;
}

/**
 * One command run by the sandbox's exec agent (nook-init, PID 1) over the unix socket the
 * agent inherited at start. Streams output as it comes; stdin, resize and signals go the
 * other way. A hang-up makes the agent kill the whole tree, so a crashed daemon leaves
 * nothing running either.
 */
/** Where the agent listens: a socket path, or a function that connects (runsc checks the path first). */
export type AgentTarget = string | (() => Socket);

export class AgentSession implements SessionHandle {
  readonly exited: Promise<{ exitCode: number; signal: string | null }>;
  private readonly sock: Socket;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(target: AgentTarget, spec: SessionSpec, handlers: { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void }) {
    const sock = typeof target === 'string' ? connect(target) : target();
    this.sock = sock;
    const reader = new FrameReader();
    this.exited = new Promise((resolve, reject) => {
      let settled = false;
      const settle = (v: { exitCode: number; signal: string | null } | NookError): void => {
        if (settled) return;
        settled = true;
        if (this.killTimer) clearTimeout(this.killTimer);
        sock.destroy();
        if (v instanceof NookError) reject(v);
        else resolve(v);
      };
      sock.on('data', (chunk: Buffer) =>
        reader.push(chunk, (type, payload) => {
          if (type === F.stdout) handlers.onStdout(payload);
          else if (type === F.stderr) handlers.onStderr(payload);
          else if (type === F.exit) {
            const [code, sig] = payload.toString().split(' ').map(Number);
            settle({ exitCode: code ?? 125, signal: sig ? signalName(sig) : null });
          }
        }),
      );
      sock.on('error', (e: NodeJS.ErrnoException) => {
        settle(new NookError('RUNTIME_ERROR', `cannot reach the sandbox's exec agent: ${e.message}`, { hint: 'the sandbox may have stopped; check nook inspect' }));
      });
      sock.on('close', () => {
        settle(new NookError('RUNTIME_ERROR', 'the exec agent ended the session without an exit status (the sandbox stopped, or something in it killed the agent)'));
      });
    });
    // Queued now, before anything a caller may send: the agent reads the request first.
    sock.write(frame(F.request, requestPayload(spec)));
  }

  write(data: Buffer): void {
    for (let off = 0; off < data.length; off += STDIN_CHUNK) this.sock.write(frame(F.stdin, data.subarray(off, off + STDIN_CHUNK)));
  }

  async writeAsync(data: Buffer): Promise<void> {
    let ok = true;
    // Head and payload as two writes under one cork (one writev): bulk copy-in data is not
    // copied once more into a joined frame.
    this.sock.cork();
    for (let off = 0; off < data.length; off += STDIN_CHUNK) {
      const part = data.subarray(off, off + STDIN_CHUNK);
      this.sock.write(frameHead(F.stdin, part.length));
      ok = this.sock.write(part);
    }
    this.sock.uncork();
    if (ok || this.sock.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.sock.off('drain', done);
        this.sock.off('close', done);
        resolve();
      };
      this.sock.on('drain', done);
      this.sock.on('close', done);
    });
  }

  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  endStdin(): void {
    this.sock.write(frame(F.stdinEof));
  }

  resize(cols: number, rows: number): void {
    this.sock.write(frame(F.resize, `${Math.round(cols)} ${Math.round(rows)}`));
  }

  signal(signum: number): void {
    this.sock.write(frame(F.signal, String(signum)));
  }

  /** Kills the command's whole tree; hangs up if the agent does not answer in time. */
  kill(): void {
    if (this.sock.destroyed || this.killTimer) return;
    this.sock.write(frame(F.kill));
    this.killTimer = setTimeout(() => this.sock.destroy(), KILL_GRACE_MS);
  }

  /** Hangs up: the agent kills the tree. */
  hangUp(): void {
    this.sock.destroy();
  }
}

/** A bounded, one-shot exec: timeout and abort kill the tree. */
export async function agentExec(socketPath: AgentTarget, spec: ExecSpec): Promise<ExecOutcome> {
  const started = Date.now();
  const session = new AgentSession(socketPath, spec, { onStdout: spec.onStdout, onStderr: spec.onStderr });
  if (spec.stdin) session.write(spec.stdin);
  session.endStdin();
  let timedOut = false;
  let aborted = false;
  const timer = setTimeout(() => {
    timedOut = true;
    session.kill();
  }, spec.timeoutMs);
  const onAbort = (): void => {
    aborted = true;
    session.kill();
  };
  spec.signal?.addEventListener('abort', onAbort, { once: true });
  if (spec.signal?.aborted) onAbort();
  try {
    const r = await session.exited;
    return { exitCode: timedOut ? 124 : r.exitCode, signal: timedOut || aborted ? 'SIGKILL' : r.signal, timedOut, aborted, durationMs: Date.now() - started };
  } catch (e) {
    if (timedOut || aborted) return { exitCode: timedOut ? 124 : 137, signal: 'SIGKILL', timedOut, aborted, durationMs: Date.now() - started };
    throw e;
  } finally {
    clearTimeout(timer);
    spec.signal?.removeEventListener('abort', onAbort);
  }
}
