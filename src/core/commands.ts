import { DEFAULTS, type ExecRequest, type ExecResult, type RunRequest, type Sandbox } from '../api/schemas.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { Db } from '../store/db.js';
import { log } from '../util/log.js';
import { sha256, type AuditLog } from './audit.js';
import type { FileManager } from './files.js';
import { OutputCapture } from './output.js';
import { redact } from './redact.js';
import type { ExecSink } from './sandbox-model.js';
import type { SandboxManager } from './sandboxes.js';

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

  /** One-shot: a non-persistent sandbox for one command, destroyed whatever happens. */
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
      await this.sandboxes.destroy(sandbox.id).catch((e: Error) => log('run: destroy failed', { id: sandbox.id, error: e.message }));
    }
  }
}
