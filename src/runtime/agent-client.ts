import { connect, type Socket } from 'node:net';
import { NookError } from '../api/errors.js';
import type { ExecOutcome, ExecSpec } from './driver.js';

/** Frame types of the agent protocol (native/src/frame.h). */
const F = { request: 'R', stdin: 'I', stdinEof: 'E', kill: 'K', started: 'P', stdout: 'O', stderr: 'A', exit: 'X' } as const;
const STDIN_CHUNK = 1024 * 1024;
/** After a kill, how long the agent gets to report the exit before we hang up on it. */
const KILL_GRACE_MS = 3000;

function frame(type: string, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

function requestPayload(spec: ExecSpec): Buffer {
  const env = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
  const fields = [String(spec.argv.length), ...spec.argv, String(env.length), ...env, spec.cwd, spec.user ?? ''];
  return Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
}

/** Splits a byte stream into frames. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer, onFrame: (type: string, payload: Buffer) => void): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < 5 + len) return;
      const type = String.fromCharCode(this.buf[0] ?? 0);
      const payload = this.buf.subarray(5, 5 + len);
      this.buf = this.buf.subarray(5 + len);
      onFrame(type, payload);
    }
  }
}

/**
 * Runs one command through the sandbox's exec agent (nook-init, PID 1) over the unix
 * socket the agent inherited at start. A hang-up makes the agent kill the whole tree, so a
 * crashed daemon leaves nothing running either.
 */
export function agentExec(socketPath: string, spec: ExecSpec): Promise<ExecOutcome> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const sock: Socket = connect(socketPath);
    const reader = new FrameReader();
    let timedOut = false;
    let aborted = false;
    let settled = false;
    let hangUp: NodeJS.Timeout | undefined;

    const finish = (result: ExecOutcome | NookError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (hangUp) clearTimeout(hangUp);
      spec.signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      if (result instanceof NookError) reject(result);
      else resolve(result);
    };
    const kill = (): void => {
      if (settled || sock.destroyed) return;
      sock.write(frame(F.kill));
      hangUp = setTimeout(() => sock.destroy(), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, spec.timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      kill();
    };
    spec.signal?.addEventListener('abort', onAbort, { once: true });

    // Queued now, before any kill a timer or an abort may queue: the agent must read the
    // request first (a busy event loop can otherwise run the timeout before 'connect').
    sock.write(frame(F.request, requestPayload(spec)));
    const stdin = spec.stdin ?? Buffer.alloc(0);
    for (let off = 0; off < stdin.length; off += STDIN_CHUNK) sock.write(frame(F.stdin, stdin.subarray(off, off + STDIN_CHUNK)));
    sock.write(frame(F.stdinEof));
    if (spec.signal?.aborted) onAbort();
    sock.on('data', (chunk: Buffer) =>
      reader.push(chunk, (type, payload) => {
        if (type === F.stdout) spec.onStdout(payload);
        else if (type === F.stderr) spec.onStderr(payload);
        else if (type === F.exit) {
          const [code, sig] = payload.toString().split(' ').map(Number);
          const signal = timedOut || aborted ? 'SIGKILL' : sig ? signalName(sig) : null;
          finish({ exitCode: timedOut ? 124 : (code ?? 125), signal, timedOut, aborted, durationMs: Date.now() - started });
        }
      }),
    );
    sock.on('error', (e: NodeJS.ErrnoException) => {
      finish(new NookError('RUNTIME_ERROR', `cannot reach the sandbox's exec agent: ${e.message}`, { hint: 'the sandbox may have stopped; check nook inspect' }));
    });
    sock.on('close', () => {
      if (timedOut || aborted) {
        finish({ exitCode: timedOut ? 124 : 137, signal: 'SIGKILL', timedOut, aborted, durationMs: Date.now() - started });
      } else {
        finish(new NookError('RUNTIME_ERROR', 'the exec agent ended the session without an exit status (the sandbox stopped, or something in it killed the agent)'));
      }
    });
  });
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 15: 'SIGTERM' };
function signalName(n: number): string {
  return SIGNALS[n] ?? `SIG${n}`;
}
