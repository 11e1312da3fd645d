import { constants as os } from 'node:os';
import { NookError } from '../api/errors.js';
import { DEFAULTS, type LogEvent, type Process, type StartProcessRequest } from '../api/schemas.js';
import type { RuntimeDriver, SessionHandle } from '../runtime/driver.js';
import type { Db } from '../store/db.js';
import { newId } from '../util/ids.js';
import { log } from '../util/log.js';
import type { LogStore } from './logs.js';
import type { SandboxManager } from './sandboxes.js';

interface ProcessRow {
  id: string;
  sandbox_id: string;
  name: string | null;
  argv_json: string;
  spec_json: string;
  restart: 'never' | 'on-resume';
  state: Process['state'];
  exit_code: number | null;
  signal: string | null;
  started_at: number;
  ended_at: number | null;
  runs: number;
}

type ProcessSpec = Pick<StartProcessRequest, 'env' | 'cwd' | 'user'>;

/** How long a signalled process gets before its whole tree is killed. */
const SIGNAL_GRACE_MS = 3000;

/**
 * Background processes: commands that outlive the request that started them. The daemon
 * holds each one's agent session and writes its output to a bounded log in its own state
 * (never the sandbox's files). They stop with the sandbox and, with restart on-resume,
 * start again when it resumes; a daemon crash ends them (the agent kills what loses its
 * daemon), and they are then listed as lost.
 */
export class ProcessManager {
  private readonly sessions = new Map<string, SessionHandle>();

  constructor(
    private readonly db: Db,
    private readonly runtime: RuntimeDriver,
    private readonly sandboxes: SandboxManager,
    private readonly logs: LogStore,
  ) {
  }

  private toProcess(row: ProcessRow): Process {
    return {
      id: row.id,
      name: row.name,
      sandbox: this.sandboxes.find(row.sandbox_id)?.name ?? row.sandbox_id,
      argv: JSON.parse(row.argv_json) as string[],
      state: row.state,
      exitCode: row.exit_code,
      signal: row.signal,
      startedAt: new Date(row.started_at).toISOString(),
      endedAt: row.ended_at === null ? null : new Date(row.ended_at).toISOString(),
      restart: row.restart,
      runs: row.runs,
    };
  }

  private row(sandboxId: string, ref: string): ProcessRow {
    const row = this.db.prepare('SELECT * FROM processes WHERE sandbox_id = ? AND (id = ? OR name = ?) ORDER BY started_at DESC').get(sandboxId, ref, ref) as ProcessRow | undefined;
    if (!row) throw new NookError('PROCESS_NOT_FOUND', `no process ${ref} in this sandbox`, { hint: 'list them: nook ps SANDBOX', context: { sandboxId, process: ref } });
    return row;
  }

  async start(ref: string, req: StartProcessRequest): Promise<Process> {
    const sb = await this.sandboxes.ensureRunning(ref);
    return this.startIn(sb.id, req);
  }

  /** Starts a process in a sandbox whose compute is up (also from a compute lifecycle step). */
  async startIn(sandboxId: string, req: StartProcessRequest): Promise<Process> {
    const sb = this.sandboxes.record(sandboxId);
    if (req.name) {
      const same = this.db.prepare('SELECT * FROM processes WHERE sandbox_id = ? AND name = ?').get(sb.id, req.name) as ProcessRow | undefined;
      if (same?.state === 'running') throw new NookError('NAME_TAKEN', `process ${req.name} is already running in ${sb.name}`, { hint: `stop it first: nook kill ${sb.name} ${req.name}` });
      if (same) {
        this.db.prepare('DELETE FROM processes WHERE id = ?').run(same.id);
        await this.logs.remove(sb.id, same.id);
      }
    }
    const id = newId('proc');
    const spec: ProcessSpec = { ...(req.env ? { env: req.env } : {}), ...(req.cwd ? { cwd: req.cwd } : {}), ...(req.user ? { user: req.user } : {}) };
    this.db
      .prepare("INSERT INTO processes (id, sandbox_id, name, argv_json, spec_json, restart, state, started_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)")
      .run(id, sb.id, req.name ?? null, JSON.stringify(req.argv), JSON.stringify(spec), req.restart ?? 'never', Date.now());
    await this.launch(sb.id, id);
    return this.toProcess(this.row(sb.id, id));
  }

  private async launch(sandboxId: string, processId: string): Promise<void> {
    const row = this.row(sandboxId, processId);
    const sb = this.sandboxes.record(sandboxId);
    const spec = JSON.parse(row.spec_json) as ProcessSpec;
    await this.logs.open(sandboxId, processId);
    // Back-pressure: while the log file is behind, stop reading the process.
    const store = (stream: 'o' | 'e') => (b: Buffer): void => {
      if (this.logs.append(sandboxId, processId, stream, b)) return;
      session.pause();
      this.logs.whenDrained(processId, () => session.resume());
    };
    const session: SessionHandle = this.runtime.openSession(
      sandboxId,
      {
        argv: JSON.parse(row.argv_json) as string[],
        env: this.sandboxes.commandEnv(sb, spec.env),
        cwd: spec.cwd ?? sb.spec.cwd ?? DEFAULTS.cwd,
        ...this.sandboxes.commandUser(sb, spec.user),
      },
      { onStdout: store('o'), onStderr: store('e') },
    );
    session.endStdin();
    this.sessions.set(processId, session);
    this.sandboxes.events.publish('process.started', { sandbox: sb.name, sandboxId, detail: { process: processId, name: row.name } });
    void session.exited
      .then(
        (r) => ({ state: 'exited' as const, exitCode: r.exitCode, signal: r.signal }),
        () => ({ state: 'lost' as const, exitCode: null, signal: null }),
      )
      .then(async (end) => {
        this.sessions.delete(processId);
        const killed = this.killing.has(processId);
        this.killing.delete(processId);
        if (this.db.open) {
          this.db
            .prepare('UPDATE processes SET state = ?, exit_code = ?, signal = ?, ended_at = ? WHERE id = ?')
            .run(killed ? 'killed' : end.state, end.exitCode, end.signal, Date.now(), processId);
        }
        await this.logs.close(processId);
        this.sandboxes.events.publish('process.exited', { sandbox: sb.name, sandboxId, detail: { process: processId, name: row.name, exitCode: end.exitCode, signal: end.signal } });
      });
  }

  private readonly killing = new Set<string>();

  list(ref: string): Process[] {
    const sb = this.sandboxes.record(ref);
    return (this.db.prepare('SELECT * FROM processes WHERE sandbox_id = ? ORDER BY started_at').all(sb.id) as ProcessRow[]).map((r) => this.toProcess(r));
  }

  get(ref: string, proc: string): Process {
    return this.toProcess(this.row(this.sandboxes.record(ref).id, proc));
  }

  /**
   * Signals a process (default SIGKILL: its whole tree at once). Any other signal goes to
   * its process group first; whatever is left after a grace period is killed with the tree.
   */
  async kill(ref: string, proc: string, signal = 'SIGKILL'): Promise<Process> {
    const sb = this.sandboxes.record(ref);
    const row = this.row(sb.id, proc);
    const session = this.sessions.get(row.id);
    if (!session) return this.toProcess(row);
    const name = signal.startsWith('SIG') ? signal : `SIG${signal}`;
    const signum = (os.signals as Record<string, number | undefined>)[name];
    if (signum === undefined) throw new NookError('INVALID_ARGUMENT', `unknown signal ${signal}`, { hint: 'e.g. TERM, INT, KILL, HUP' });
    this.killing.add(row.id);
    if (signum === os.signals.SIGKILL) session.kill();
    else {
      session.signal(signum);
      const timer = setTimeout(() => session.kill(), SIGNAL_GRACE_MS);
      void session.exited.finally(() => clearTimeout(timer)).catch(() => undefined);
    }
    await session.exited.catch(() => undefined);
    // The exit handler records the end; wait for it to land.
    for (let i = 0; i < 100 && this.row(sb.id, row.id).state === 'running'; i++) await new Promise((r) => setTimeout(r, 10));
    return this.toProcess(this.row(sb.id, row.id));
  }

  /**
   * Stored output (last `tail` lines, or since a time), then, with follow, new output as
   * it is written until the process ends.
   */
  async streamLogs(ref: string, proc: string, opts: { follow: boolean; tail?: number; sinceMs?: number }, emit: (e: LogEvent) => void, signal: AbortSignal): Promise<void> {
    const sb = this.sandboxes.record(ref);
    const row = this.row(sb.id, proc);
    const pending: { n: number; t: number; s: 'o' | 'e'; d: string }[] = [];
    let lastSeen = 0;
    let ended = !this.sessions.has(row.id);
    let wake: () => void = () => undefined;
    const stop = opts.follow && !ended
      ? this.logs.follow(
          row.id,
          (r) => {
            pending.push(r);
            wake();
          },
          () => {
            ended = true;
            wake();
          },
        )
      : () => undefined;
    try {
      const all = await this.logs.read(sb.id, row.id);
      // Everything this read saw is settled (shown or filtered out); what the follow caught
      // after it is newer. (A second read here once skipped records it saw but never sent.)
      lastSeen = all.at(-1)?.n ?? 0;
      let stored = all;
      if (opts.sinceMs !== undefined) stored = stored.filter((r) => r.t >= (opts.sinceMs ?? 0));
      if (opts.tail !== undefined) stored = lastLines(stored, opts.tail);
      for (const r of stored) emit({ type: r.s === 'o' ? 'stdout' : 'stderr', data: r.d, at: new Date(r.t).toISOString() });
      while (opts.follow && !signal.aborted) {
        for (const r of pending.splice(0)) {
          if (r.n <= lastSeen) continue;
          lastSeen = r.n;
          emit({ type: r.s === 'o' ? 'stdout' : 'stderr', data: r.d, at: new Date(r.t).toISOString() });
        }
        if (ended) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
      }
    } finally {
      stop();
    }
    if (!signal.aborted) {
      for (let i = 0; i < 100 && this.row(sb.id, row.id).state === 'running' && ended && opts.follow; i++) await new Promise((r) => setTimeout(r, 10));
      emit({ type: 'exit', process: this.toProcess(this.row(sb.id, row.id)) });
    }
  }

  /** A destroyed sandbox: its process records and logs go. */
  async forget(sandboxId: string): Promise<void> {
    this.db.prepare('DELETE FROM processes WHERE sandbox_id = ?').run(sandboxId);
    await this.logs.remove(sandboxId);
  }

  /** Compute up: processes started with restart on-resume start again. */
  async restartOnResume(sandboxId: string): Promise<void> {
    const rows = this.db.prepare("SELECT * FROM processes WHERE sandbox_id = ? AND restart = 'on-resume' AND state != 'running'").all(sandboxId) as ProcessRow[];
    for (const r of rows) {
      this.db.prepare("UPDATE processes SET state = 'running', exit_code = NULL, signal = NULL, ended_at = NULL, started_at = ?, runs = runs + 1 WHERE id = ?").run(Date.now(), r.id);
      await this.launch(sandboxId, r.id).catch((e: Error) => log('process restart failed', { id: r.id, error: e.message }));
    }
  }

  /** Startup: processes a previous daemon held are gone (the agent killed them when it left). */
  reconcile(): void {
    this.db.prepare("UPDATE processes SET state = 'lost', ended_at = ? WHERE state = 'running'").run(Date.now());
  }

  /** Sessions are hung up on, which ends the processes (daemon shutdown). */
  detachAll(): void {
    for (const s of this.sessions.values()) s.kill();
  }
}

/** The records holding the last `n` lines (the first one cut to where its line begins). */
export function lastLines<R extends { d: string }>(records: R[], n: number): R[] {
  if (n <= 0) return [];
  const kept: R[] = [];
  let breaks = 0;
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i] as R;
    const buf = Buffer.from(r.d, 'base64');
    // A newline that ends the output closes the last line; it does not start one.
    const end = i === records.length - 1 && buf[buf.length - 1] === 10 ? buf.length - 1 : buf.length;
    for (let j = end - 1; j >= 0; j--) {
      if (buf[j] === 10 && ++breaks === n) {
        kept.unshift({ ...r, d: buf.subarray(j + 1).toString('base64') });
        return kept;
      }
    }
    kept.unshift(r);
  }
  return kept;
}
