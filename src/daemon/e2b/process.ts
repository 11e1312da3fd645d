/**
 * envd's process.Process service over nook's exec agent: every command is a live command of
 * core (timeouts, bounded output, tree kill, one audit record each). Pids are nook's own
 * numbers (the agent does not hand out in-sandbox pids); they name a process in List,
 * Connect, SendInput, SendSignal, CloseStdin and Update.
 */
import type { Context } from 'hono';
import type { Nook } from '../../core/nook.js';
import type { LiveCommand } from '../../core/commands.js';
import { ConnectError, MAX_MESSAGE_BYTES, obj, parseEnvelopedRequest, parseUnary, readBounded, str, timeoutOf, uint, unaryError, unaryResponse } from './connect.js';
import { identity, userOf, type E2bSandbox } from './sandboxes.js';
import { keepaliveMs, ServerStream } from './stream.js';

interface ProcessConfig {
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd?: string;
}

interface Proc {
  pid: number;
  tag?: string;
  config: ProcessConfig;
  live: LiveCommand;
  pty: boolean;
  watchers: Set<ServerStream>;
}

/** Processes listed per sandbox at most (each holds an agent session). */
const MAX_PROCESSES_PER_SANDBOX = 256;
const KEEPALIVE = { event: { keepalive: {} } };

function readConfig(msg: Record<string, unknown>): ProcessConfig {
  const p = obj(msg, 'process');
  if (!p) throw new ConnectError('invalid_argument', 'process is required');
  const cmd = str(p, 'cmd');
  if (!cmd) throw new ConnectError('invalid_argument', 'process.cmd is required');
  const args = p.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new ConnectError('invalid_argument', 'process.args must be strings');
  const envs = obj(p, 'envs') ?? {};
  for (const [k, v] of Object.entries(envs)) {
    if (typeof v !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new ConnectError('invalid_argument', `process.envs: ${k.slice(0, 64)} must be a NAME with a string value`);
  }
  const cwd = str(p, 'cwd');
  return { cmd, args: args as string[], envs: envs as Record<string, string>, ...(cwd ? { cwd } : {}) };
}

function ptySize(msg: Record<string, unknown>): { cols: number; rows: number } | undefined {
  const size = obj(obj(msg, 'pty') ?? {}, 'size');
  if (!size) return undefined;
  const cols = uint(size, 'cols') ?? 80;
  const rows = uint(size, 'rows') ?? 24;
  if (cols < 1 || cols > 1000 || rows < 1 || rows > 1000) throw new ConnectError('invalid_argument', 'pty size must be 1-1000 columns and rows');
  return { cols, rows };
}

function endEvent(end: { exitCode: number; signal: string | null }): object {
  if (end.signal) {
    const status = `signal: ${end.signal === 'SIGKILL' ? 'killed' : end.signal.toLowerCase()}`;
    return { event: { end: { exitCode: -1, exited: false, status, error: status } } };
  }
  const status = `exit status ${end.exitCode}`;
  return { event: { end: { exitCode: end.exitCode, exited: true, status, ...(end.exitCode !== 0 ? { error: status } : {}) } } };
}

export class ProcessService {
  private readonly bySandbox = new Map<string, Map<number, Proc>>();
  private nextPid = 1000;

  constructor(private readonly nook: Nook) {}

  private table(sandboxId: string): Map<number, Proc> {
    let t = this.bySandbox.get(sandboxId);
    if (!t) this.bySandbox.set(sandboxId, (t = new Map()));
    return t;
  }

  private select(sb: E2bSandbox, msg: Record<string, unknown>): Proc {
    const sel = obj(msg, 'process') ?? {};
    const pid = uint(sel, 'pid');
    const tag = str(sel, 'tag');
    for (const p of this.table(sb.record.id).values()) {
      if ((pid !== undefined && p.pid === pid) || (tag && p.tag === tag)) return p;
    }
    throw new ConnectError('not_found', `process ${pid ?? tag ?? '(none given)'} not found`);
  }

  async handle(c: Context, sb: E2bSandbox, method: string): Promise<Response> {
    if (method === 'Start' || method === 'Connect') {
      // A streaming call: errors before the stream starts are still Connect errors (HTTP status + JSON).
      try {
        const msg = parseEnvelopedRequest(await readBounded(c.req.raw.body, MAX_MESSAGE_BYTES + 5));
        return method === 'Start' ? await this.start(c, sb, msg) : this.connect(c, sb, msg);
      } catch (e) {
        return unaryError(e);
      }
    }
    try {
      const msg = parseUnary(await readBounded(c.req.raw.body, MAX_MESSAGE_BYTES));
      switch (method) {
        case 'List':
          return unaryResponse({ processes: [...this.table(sb.record.id).values()].map((p) => ({ config: p.config, pid: p.pid, ...(p.tag ? { tag: p.tag } : {}) })) });
        case 'SendInput': {
          const p = this.select(sb, msg);
          const input = obj(msg, 'input') ?? {};
          const data = str(input, p.pty ? 'pty' : 'stdin') || str(input, 'stdin') || str(input, 'pty');
          p.live.session.write(Buffer.from(data, 'base64'));
          return unaryResponse({});
        }
        case 'SendSignal': {
          const p = this.select(sb, msg);
          const signal = msg.signal;
          if (signal === 'SIGNAL_SIGTERM' || signal === 15) p.live.session.signal(15);
          else p.live.session.kill();
          return unaryResponse({});
        }
        case 'CloseStdin':
          this.select(sb, msg).live.session.endStdin();
          return unaryResponse({});
        case 'Update': {
          const p = this.select(sb, msg);
          const size = ptySize(msg);
          if (size) p.live.session.resize(size.cols, size.rows);
          return unaryResponse({});
        }
        default:
          throw new ConnectError('unimplemented', `process.Process/${method.slice(0, 64)} is not supported by nook`);
      }
    } catch (e) {
      return unaryError(e);
    }
  }

  private async start(c: Context, sb: E2bSandbox, msg: Record<string, unknown>): Promise<Response> {
    const config = readConfig(msg);
    const table = this.table(sb.record.id);
    if (table.size >= MAX_PROCESSES_PER_SANDBOX) throw new ConnectError('resource_exhausted', `${MAX_PROCESSES_PER_SANDBOX} processes are running in this sandbox already`);
    const tty = ptySize(msg);
    const tag = str(msg, 'tag') || undefined;
    const deadlineMs = timeoutOf(c.req.header('connect-timeout-ms'));
    const who = identity(sb, userOf(c.req.header('authorization')));
    const stream = new ServerStream(c.req.raw.signal, KEEPALIVE, keepaliveMs(c.req.header('keepalive-ping-interval')));
    let proc: Proc | undefined;
    const early: object[] = [];
    const emit = (message: object): void => {
      if (!proc) {
        early.push(message);
        return;
      }
      for (const w of proc.watchers) {
        if (w.send(message)) continue;
        // The client is behind: stop reading the command until it catches up.
        const session = proc.live.session;
        session.pause();
        w.whenDrained(() => session.resume());
      }
    };
    const data = (key: 'stdout' | 'stderr' | 'pty') => (b: Buffer): void => emit({ event: { data: { [key]: b.toString('base64') } } });
    const live = await this.nook.commands.startLive(
      sb.record.id,
      {
        argv: [config.cmd, ...config.args],
        env: { ...who.env, ...(tty ? { TERM: 'xterm-256color' } : {}), ...config.envs },
        cwd: config.cwd ?? who.home,
        ...(who.user ? { user: who.user } : {}),
        ...(tty ? { tty } : {}),
        ...(deadlineMs ? { timeoutMs: deadlineMs } : {}),
        actor: 'e2b:process.Start',
      },
      { onStdout: data(tty ? 'pty' : 'stdout'), onStderr: data(tty ? 'pty' : 'stderr') },
    );
    if (msg.stdin !== true && !tty) live.session.endStdin();
    const pid = this.nextPid++;
    proc = { pid, ...(tag ? { tag } : {}), config, live, pty: !!tty, watchers: new Set([stream]) };
    table.set(pid, proc);
    stream.send({ event: { start: { pid } } });
    for (const m of early.splice(0)) emit(m);
    // A command with a deadline belongs to its stream: a client that goes away takes it along.
    // One without (timeoutMs: 0, or tagged) is a background process and keeps running.
    const background = !deadlineMs || !!tag;
    stream.onGone(() => {
      proc?.watchers.delete(stream);
      if (!background) live.session.kill();
    });
    void live.ended.then((end) => {
      table.delete(pid);
      const state = this.nook.sandboxes.find(sb.record.id)?.state;
      for (const w of proc?.watchers ?? []) {
        if (state !== 'running') w.end(new ConnectError('unavailable', 'the sandbox was stopped or killed while the command ran'));
        else if (end.timedOut) w.end(new ConnectError('deadline_exceeded', `the command ran past its ${deadlineMs} ms deadline and was killed`));
        else {
          w.send(endEvent(end));
          w.end();
        }
      }
    });
    return stream.response;
  }

  private connect(c: Context, sb: E2bSandbox, msg: Record<string, unknown>): Response {
    const proc = this.select(sb, msg);
    const stream = new ServerStream(c.req.raw.signal, KEEPALIVE, keepaliveMs(c.req.header('keepalive-ping-interval')));
    stream.send({ event: { start: { pid: proc.pid } } });
    proc.watchers.add(stream);
    stream.onGone(() => proc.watchers.delete(stream));
    const deadlineMs = timeoutOf(c.req.header('connect-timeout-ms'));
    if (deadlineMs) {
      const timer = setTimeout(() => {
        proc.watchers.delete(stream);
        stream.end(new ConnectError('deadline_exceeded', `no end within ${deadlineMs} ms`));
      }, deadlineMs);
      void proc.live.ended.finally(() => clearTimeout(timer));
    }
    return stream.response;
  }

  /** A sandbox that stops loses its processes (its commands died with compute). */
  forget(sandboxId: string): void {
    this.bySandbox.delete(sandboxId);
  }
}
