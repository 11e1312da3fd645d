import type { Command } from 'commander';
import { NookError } from '../../api/errors.js';
import type { LogEvent, Process } from '../../api/schemas.js';
import type { Sandbox } from '../../sdk/client.js';
import { parseDurationMs } from '../../util/duration.js';
import { connect } from '../connect.js';
import { positiveInt } from '../parse.js';
import { age, printJson, table } from '../render.js';

function processRows(list: Process[]): string {
  return table(
    ['ID', 'NAME', 'STATE', 'EXIT', 'STARTED', 'RESTART', 'COMMAND'],
    list.map((p) => [p.id, p.name ?? '-', p.state, p.exitCode === null ? '-' : String(p.exitCode), `${age(p.startedAt)} ago`, p.restart, p.argv.join(' ')]),
  );
}

/** Prints a logs stream; returns the process's final record when the stream says it ended. */
async function printLogs(events: AsyncGenerator<LogEvent>, json: boolean): Promise<Process | undefined> {
  let end: Process | undefined;
  for await (const e of events) {
    if (json) process.stdout.write(JSON.stringify(e) + '\n');
    else if (e.type === 'stdout') process.stdout.write(Buffer.from(e.data, 'base64'));
    else if (e.type === 'stderr') process.stderr.write(Buffer.from(e.data, 'base64'));
    if (e.type === 'exit') end = e.process;
    if (e.type === 'error') throw new NookError('RUNTIME_ERROR', e.error.message);
  }
  return end;
}

function abortOnInterrupt(): AbortSignal {
  const c = new AbortController();
  process.once('SIGINT', () => c.abort());
  process.once('SIGTERM', () => c.abort());
  return c.signal;
}

/** `nook shell`: the local terminal in raw mode, wired to a PTY in the sandbox; restored on every exit path. */
async function shell(sb: Sandbox, argv: string[]): Promise<number> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const raw = stdin.isTTY === true;
  const size = (): { cols: number; rows: number } => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 });
  const session = await sb.pty.create({ ...size(), ...(argv.length ? { cmd: argv } : {}), onData: (b) => stdout.write(b) });
  const onInput = (b: Buffer): void => session.write(b);
  const onResize = (): void => session.resize(size().cols, size().rows);
  const restore = (): void => {
    if (raw) stdin.setRawMode(false);
    stdin.off('data', onInput);
    stdin.pause();
    stdout.off('resize', onResize);
  };
  process.once('exit', restore);
  try {
    if (raw) stdin.setRawMode(true);
    stdin.on('data', onInput);
    stdin.resume();
    stdout.on('resize', onResize);
    const end = await session.wait();
    return end.exitCode;
  } finally {
    restore();
  }
}

export function registerInteractiveCommands(program: Command): void {
  program
    .command('shell <sandbox> [command...]')
    .description('an interactive terminal in the sandbox (a login shell unless a command is given), like ssh')
    .action(async (ref: string, argv: string[]) => {
      const client = await connect();
      process.exitCode = await shell(await client.sandboxes.get(ref), argv);
    });

  program
    .command('ps <sandbox>')
    .description('processes started through nook: id, name, state, exit code')
    .option('--json', 'print JSON')
    .action(async (ref: string, flags: { json?: boolean }) => {
      const client = await connect();
      const list = await (await client.sandboxes.get(ref)).processes.list();
      if (flags.json) printJson({ processes: list });
      else process.stdout.write(processRows(list));
    });

  program
    .command('logs <sandbox> <process>')
    .description("a background process's output (kept by the daemon, bounded and rotated)")
    .option('-f, --follow', 'keep printing as it is written, until the process exits')
    .option('--tail <lines>', 'only the last N lines', positiveInt)
    .option('--since <time>', 'only output since a duration ago (10m) or an ISO time')
    .option('--json', 'print the NDJSON events')
    .action(async (ref: string, proc: string, flags: { follow?: boolean; tail?: number; since?: string; json?: boolean }) => {
      const client = await connect();
      const sb = await client.sandboxes.get(ref);
      const agoMs = flags.since ? parseDurationMs(flags.since) : null;
      const since = flags.since ? (agoMs !== null ? new Date(Date.now() - agoMs).toISOString() : flags.since) : undefined;
      await printLogs(
        sb.processes.logs(proc, { follow: flags.follow ?? false, ...(flags.tail !== undefined ? { tail: flags.tail } : {}), ...(since ? { since } : {}), signal: abortOnInterrupt() }),
        flags.json ?? false,
      ).catch((e: Error) => {
        if (e.name !== 'AbortError' && !/aborted/.test(e.message)) throw e;
      });
    });

  program
    .command('attach <sandbox> <process>')
    .description("follow a running background process's output from now until it exits; exits with its code")
    .option('--json', 'print the NDJSON events')
    .action(async (ref: string, proc: string, flags: { json?: boolean }) => {
      const client = await connect();
      const sb = await client.sandboxes.get(ref);
      const end = await printLogs(sb.processes.logs(proc, { follow: true, tail: 0, signal: abortOnInterrupt() }), flags.json ?? false).catch(() => undefined);
      if (end?.exitCode !== null && end?.exitCode !== undefined) process.exitCode = end.exitCode;
    });

  program
    .command('kill <sandbox> <process>')
    .description('signal a background process; the default (KILL) ends its whole tree')
    .option('-s, --signal <signal>', 'TERM, INT, HUP, ... (its tree is killed after 3 s if it lingers)')
    .option('--json', 'print JSON')
    .action(async (ref: string, proc: string, flags: { signal?: string; json?: boolean }) => {
      const client = await connect();
      const p = await (await client.sandboxes.get(ref)).processes.kill(proc, flags.signal ? { signal: flags.signal.toUpperCase() } : {});
      if (flags.json) printJson(p);
      else process.stdout.write(`${p.name ?? p.id} ${p.state}${p.exitCode === null ? '' : ` (exit ${p.exitCode})`}\n`);
    });

  program
    .command('events')
    .description('lifecycle events as they happen: created, stopped (and why), snapshot taken, process exited, egress denied')
    .option('--json', 'one JSON object per line')
    .action(async (flags: { json?: boolean }) => {
      const client = await connect();
      try {
        for await (const e of client.events({ signal: abortOnInterrupt() })) {
          if (flags.json) process.stdout.write(JSON.stringify(e) + '\n');
          else process.stdout.write(`${e.at} ${e.type}${e.sandbox ? ` ${e.sandbox}` : ''}${e.detail ? ` ${JSON.stringify(e.detail)}` : ''}\n`);
        }
      } catch (e) {
        if (!/aborted/i.test((e as Error).message)) throw e;
      }
    });
}
