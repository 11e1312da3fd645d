/**
 * Interactive terminals, as core sees them: the same admission as exec (a paused sandbox is
 * resumed, a sandbox that cannot run is refused), the same environment and user rules, and
 * an audit record when a terminal opens (who, where, what, its size) and one when it
 * closes (exit code, duration, bytes each way). The transport (a WebSocket) is the
 * daemon's business; nothing here knows about it.
 */
import { NookError } from '../api/errors.js';
import type { PtyClientMessage } from '../api/schemas.js';
import type { RuntimeDriver, SessionHandle } from '../runtime/driver.js';
import { log } from '../util/log.js';
import { AuditLog, digestInputs, type AuditContext } from './audit.js';
import type { SandboxManager } from './sandboxes.js';

export type TerminalRequest = Omit<Extract<PtyClientMessage, { type: 'start' }>, 'type'>;

/** The shell a terminal runs unless told otherwise: bash where the image has it. */
const DEFAULT_SHELL = ['/bin/sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi'];

export interface Terminal {
  readonly session: SessionHandle;
  /** The receipt of the opening record (the closing one points back at it). */
  readonly receipt: string;
  /** Resolves once the command has ended and the closing record is written. */
  readonly ended: Promise<{ exitCode: number; signal: string | null }>;
  /** Counts terminal input, for the closing record. */
  countInput(bytes: number): void;
}

export class TerminalManager {
  constructor(
    private readonly sandboxes: SandboxManager,
    private readonly runtime: RuntimeDriver,
    private readonly audit: AuditLog,
  ) {}

  private context(actor: string, action: string, sandbox: { id: string | null; name: string | null }, inputs: Record<string, unknown>): AuditContext {
    return { receipt: AuditLog.newReceipt(), actor, action, inputs, result: {}, sandboxId: sandbox.id, sandbox: sandbox.name };
  }

  /**
   * Opens a terminal in the sandbox `ref`. A refusal (no such sandbox, not runnable) is
   * recorded too, then thrown.
   */
  async open(ref: string, req: TerminalRequest, actor: string, onOutput: (chunk: Buffer) => void): Promise<Terminal> {
    const known = this.sandboxes.find(ref);
    const inputs = { ...digestInputs({ ...req, argv: req.argv ?? DEFAULT_SHELL }), ref };
    const opened = this.context(actor, 'openTerminal', { id: known?.id ?? null, name: known?.name ?? ref }, inputs);
    this.audit.begin(opened);
    let session: SessionHandle;
    let sandbox: { id: string; name: string };
    let bytesOut = 0;
    let bytesIn = 0;
    const count = (b: Buffer): void => {
      bytesOut += b.length;
      onOutput(b);
    };
    try {
      const sb = await this.sandboxes.ensureRunning(ref);
      sandbox = { id: sb.id, name: sb.name };
      const env = { TERM: 'xterm-256color', ...this.sandboxes.commandEnv(sb, req.env) };
      session = this.runtime.openSession(
        sb.id,
        { argv: req.argv ?? DEFAULT_SHELL, env, cwd: req.cwd ?? sb.spec.cwd, ...this.sandboxes.commandUser(sb, req.user), tty: { cols: req.cols, rows: req.rows } },
        { onStdout: (b) => count(b), onStderr: (b) => count(b) },
      );
    } catch (e) {
      const err = e instanceof NookError ? e : new NookError('INTERNAL', (e as Error).message);
      opened.result = { error: err.message };
      this.audit.append(opened, 'error', err.code);
      throw err;
    }
    opened.sandboxId = sandbox.id;
    opened.sandbox = sandbox.name;
    opened.result = { cols: req.cols, rows: req.rows };
    const receipt = this.audit.append(opened, 'ok');
    const startedAt = Date.now();
    const ended = session.exited
      .catch(() => ({ exitCode: 137, signal: 'SIGKILL' as string | null }))
      .then((end) => {
        const closed = this.context(actor, 'closeTerminal', sandbox, { opened: receipt });
        closed.result = { exitCode: end.exitCode, signal: end.signal, durationMs: Date.now() - startedAt, bytesIn, bytesOut };
        try {
          this.audit.append(closed, 'ok');
        } catch (e) {
          log('terminal: closing audit record failed', { sandbox: sandbox.name, error: (e as Error).message });
        }
        return end;
      });
    return {
      session,
      receipt,
      ended,
      countInput: (n) => {
        bytesIn += n;
      },
    };
  }
}
