import { createHash } from 'node:crypto';
import { NookError } from '../api/errors.js';
import { DEFAULTS, LIMITS, type ExecRequest, type ExecResult, type RunRequest, type Sandbox } from '../api/schemas.js';
import type { RuntimeDriver, SessionHandle } from '../runtime/driver.js';
import type { Db } from '../store/db.js';
import { log } from '../util/log.js';
import { AuditLog, digestInputs, sha256 } from './audit.js';
import type { FileManager } from './files.js';
import { OutputCapture } from './output.js';
import { redact } from './redact.js';
import type { ExecSink } from './sandbox-model.js';
import type { SandboxManager } from './sandboxes.js';

/** A command whose stdin, signals and terminal size stay live while it runs (the E2B front's processes). */
export interface LiveCommandRequest {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  tty?: { cols: number; rows: number };
  /** 0 or absent: the longest exec timeout (LIMITS.maxExecTimeoutMs). */
  timeoutMs?: number;
  /** Who asked, for the audit record. */
  actor: string;
}

export interface LiveCommand {
  readonly session: SessionHandle;
  /** Resolves once the command has ended and its audit record is written; never rejects. */
  readonly ended: Promise<{ exitCode: number; signal: string | null; timedOut: boolean; durationMs: number }>;
}

/** Each stream of a live command passes at most this much; the rest is dropped (its timeout bounds it). */
const LIVE_OUTPUT_MAX_BYTES = LIMITS.maxOutputBytes;

/** Each declared output file is bounded to this (the daemon holds it in memory). */
const OUTPUT_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Commands in sandboxes: exec (timeouts, bounded output, redaction, declared outputs, an
 * audit note with digests and network decisions) and run, the one-shot sandbox.
 */
export class CommandRunner {
  constructor(
    private readonly db: Db,
    private readonly runtime: RuntimeDriver,
    private readonly sandboxes: SandboxManager,
    private readonly files: FileManager,
    private readonly audit: AuditLog,
  ) {}

  async exec(ref: string, req: ExecRequest, sink: ExecSink = {}, signal?: AbortSignal): Promise<ExecResult> {
    const sb = await this.sandboxes.ensureRunning(ref);
    const row = { id: sb.id, name: sb.name };
    const spec = sb.spec;
    const execStarted = Date.now();
    const secrets = [...Object.values(spec.env), ...Object.values(req.env ?? {})];
    // Live chunks are redacted one by one (a secret split across two chunks can pass here;
    // the final result is redacted whole).
    const live: ExecSink = req.redact
      ? {
          ...(sink.onStdout ? { onStdout: (b: Buffer) => sink.onStdout?.(Buffer.from(redact(b.toString('utf8'), secrets).text)) } : {}),
          ...(sink.onStderr ? { onStderr: (b: Buffer) => sink.onStderr?.(Buffer.from(redact(b.toString('utf8'), secrets).text)) } : {}),
        }
      : sink;
    const capture = new OutputCapture(req.maxOutputBytes ?? DEFAULTS.maxOutputBytes, live);
    const stdin = req.stdin ? Buffer.from(req.stdin, 'base64') : undefined;
    const outcome = await this.runtime.exec(row.id, {
      argv: req.argv,
      env: this.sandboxes.commandEnv(sb, req.env),
      cwd: req.cwd ?? spec.cwd,
      ...this.sandboxes.commandUser(sb, req.user),
      ...(stdin ? { stdin } : {}),
      timeoutMs: req.timeoutMs ?? DEFAULTS.execTimeoutMs,
      ...(signal ? { signal } : {}),
      onStdout: (b) => capture.stdout(b),
      onStderr: (b) => capture.stderr(b),
    });
    const captured = capture.result();
    let redactions: number | undefined;
    if (req.redact) {
      const secrets = [...Object.values(spec.env), ...Object.values(req.env ?? {})];
      const out = redact(captured.stdout, secrets);
      const err = redact(captured.stderr, secrets);
      captured.stdout = out.text;
      captured.stderr = err.text;
      redactions = out.count + err.count;
    }
    const outputs: NonNullable<ExecResult['outputs']> = [];
    for (const path of req.outputs ?? []) {
      try {
        const data = await this.files.read(row.id, path, OUTPUT_MAX_BYTES);
        outputs.push({ path, bytes: data.length, data: data.toString('base64') });
      } catch (e) {
        outputs.push({ path, bytes: 0, error: (e as Error).message });
      }
    }
    const result = {
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      ...captured,
      timedOut: outcome.timedOut,
      durationMs: outcome.durationMs,
      ...(redactions !== undefined ? { redactions } : {}),
      ...(req.outputs ? { outputs } : {}),
    };
    const decisions = this.db
      .prepare('SELECT SUM(allowed) AS allowed, COUNT(*) - SUM(allowed) AS denied FROM network_decisions WHERE sandbox_id = ? AND at >= ?')
      .get(row.id, execStarted) as { allowed: number | null; denied: number | null };
    this.audit.note(
      {
        exitCode: result.exitCode,
        signal: result.signal,
        durationMs: result.durationMs,
        timedOut: result.timedOut,
        truncated: result.truncated,
        stdout: { sha256: sha256(result.stdout), bytes: Buffer.byteLength(result.stdout) },
        stderr: { sha256: sha256(result.stderr), bytes: Buffer.byteLength(result.stderr) },
        network: { allowed: decisions.allowed ?? 0, denied: decisions.denied ?? 0 },
      },
      { id: row.id, name: row.name },
    );
    return result;
  }

  /**
   * Starts a live command: output goes to `sink` as it comes (each stream bounded), stdin
   * and signals go through the returned session. Its whole life is one audit record: begun
   * now, closed with the exit, the duration, and the size and sha256 of each stream.
   */
  async startLive(ref: string, req: LiveCommandRequest, sink: Required<ExecSink>): Promise<LiveCommand> {
    const sb = await this.sandboxes.ensureRunning(ref);
    const timeoutMs = Math.min(req.timeoutMs || LIMITS.maxExecTimeoutMs, LIMITS.maxExecTimeoutMs);
    const ctx = {
      receipt: AuditLog.newReceipt(),
      actor: req.actor,
      action: 'startCommand',
      inputs: digestInputs({ argv: req.argv, env: req.env ?? {}, cwd: req.cwd, user: req.user, tty: req.tty, timeoutMs }),
      result: {},
      sandboxId: sb.id,
      sandbox: sb.name,
    };
    this.audit.begin(ctx);
    const streams = { stdout: { bytes: 0, hash: createHash('sha256') }, stderr: { bytes: 0, hash: createHash('sha256') } };
    const pass = (which: 'stdout' | 'stderr', forward: (b: Buffer) => void) => (b: Buffer): void => {
      const s = streams[which];
      const kept = b.subarray(0, Math.max(0, LIVE_OUTPUT_MAX_BYTES - s.bytes));
      s.bytes += b.length;
      if (kept.length === 0) return;
      s.hash.update(kept);
      forward(kept);
    };
    let session: SessionHandle;
    try {
      session = this.runtime.openSession(
        sb.id,
        {
          argv: req.argv,
          env: this.sandboxes.commandEnv(sb, req.env),
          cwd: req.cwd ?? sb.spec.cwd,
          ...this.sandboxes.commandUser(sb, req.user),
          ...(req.tty ? { tty: req.tty } : {}),
        },
        { onStdout: pass('stdout', sink.onStdout), onStderr: pass('stderr', sink.onStderr) },
      );
    } catch (e) {
      const err = e instanceof NookError ? e : new NookError('INTERNAL', (e as Error).message);
      this.audit.append({ ...ctx, result: { error: err.message } }, 'error', err.code);
      throw err;
    }
    const startedAt = Date.now();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      session.kill();
    }, timeoutMs);
    const ended = session.exited
      .catch(() => ({ exitCode: 137, signal: 'SIGKILL' as string | null }))
      .then((end) => {
        clearTimeout(timer);
        const outcome = { ...end, timedOut, durationMs: Date.now() - startedAt };
        const digest = (s: { bytes: number; hash: ReturnType<typeof createHash> }) => ({ bytes: s.bytes, sha256: s.hash.digest('hex'), truncated: s.bytes > LIVE_OUTPUT_MAX_BYTES });
        try {
          this.audit.append({ ...ctx, result: { ...outcome, stdout: digest(streams.stdout), stderr: digest(streams.stderr) } }, 'ok');
        } catch (e) {
          log('live command: closing audit record failed', { sandbox: sb.name, error: (e as Error).message });
        }
        return outcome;
      });
    return { session, ended };
  }

  /** One-shot: a non-persistent sandbox for one command, destroyed whatever happens (after the answer). */
  async run(req: RunRequest, sink: ExecSink & { onSandbox?: (s: Sandbox) => void } = {}, signal?: AbortSignal): Promise<ExecResult> {
    const { image, pull, memoryMiB, cpus, pids, labels, stream: _stream, ...exec } = req;
    const sandbox = await this.sandboxes.create({
      persistent: false,
      ...(image ? { image } : {}),
      ...(pull ? { pull } : {}),
      ...(memoryMiB ? { memoryMiB } : {}),
      ...(cpus ? { cpus } : {}),
      ...(pids ? { pids } : {}),
      labels: { ...(labels ?? {}), 'nook.run': 'true' },
      ...(exec.timeoutMs ? { ttlMs: exec.timeoutMs + 60_000 } : {}),
    });
    sink.onSandbox?.(sandbox);
    try {
      return await this.exec(sandbox.id, exec, sink, signal);
    } finally {
      // The answer does not wait for the destroy: the sandbox is `destroying` (refused, shown so)
      // before it leaves, and goes in the background, bounded (SandboxManager.destroyAfterAnswer).
      await this.sandboxes.destroyAfterAnswer(sandbox.id).catch((e: Error) => log('run: destroy failed', { id: sandbox.id, error: e.message }));
    }
  }
}
