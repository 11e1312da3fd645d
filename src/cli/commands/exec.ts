import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { NookError } from '../../api/errors.js';
import { LIMITS } from '../../api/constants.js';
import type { ExecResult, PullPolicy } from '../../api/schemas.js';
import type { ExecOptions } from '../../sdk/client.js';
import { connect } from '../connect.js';
import { readStdin } from '../stdin.js';
import { durationMs, imageWork, keyValue, positiveInt, pullPolicy } from '../parse.js';
import { progressBar } from '../progress.js';
import { writeHostFile } from '../host-files.js';
import { printJson } from '../render.js';

interface ExecFlags {
  timeout?: number;
  maxOutput?: number;
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  interactive?: boolean;
  redact?: boolean;
  output?: string[];
  outputDir?: string;
  json?: boolean;
}

function addExecOptions(cmd: Command): Command {
  return cmd
    .option('--timeout <duration>', 'kill the command (and everything it started) after this long; default 30s', durationMs)
    .option('--max-output <bytes>', 'keep at most this many bytes of stdout and of stderr; default 1 MiB', positiveInt)
    .option('--env <K=V>', 'environment variable (repeatable)', keyValue)
    .option('--cwd <dir>', 'working directory inside the sandbox')
    .option('--user <user>', 'run as NAME, UID, NAME:GROUP or UID:GID')
    .option('-i, --interactive', 'pass this terminal\'s standard input to the command')
    .option('--redact', 'replace env values and credential patterns in the output before it is shown')
    .option('--output <path>', 'a file to collect from the sandbox when the command ends (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--output-dir <dir>', 'where collected outputs go (default: .)')
    .option('--json', 'print {exitCode, stdout, stderr, truncated, timedOut, durationMs} instead of streaming');
}

async function execOptions(flags: ExecFlags): Promise<ExecOptions> {
  const live = !flags.json;
  return {
    ...(flags.timeout ? { timeoutMs: flags.timeout } : {}),
    ...(flags.maxOutput !== undefined ? { maxOutputBytes: flags.maxOutput } : {}),
    ...(flags.env ? { env: flags.env } : {}),
    ...(flags.cwd ? { cwd: flags.cwd } : {}),
    ...(flags.user ? { user: flags.user } : {}),
    ...(flags.interactive ? { stdin: await readStdin(LIMITS.maxStdinBytes) } : {}),
    ...(flags.redact ? { redact: true } : {}),
    ...(flags.output ? { outputs: flags.output } : {}),
    ...(live ? { onStdout: (b: Buffer) => process.stdout.write(b), onStderr: (b: Buffer) => process.stderr.write(b) } : {}),
    signal: interruptSignal(),
  };
}

/** Ctrl-C aborts the request, which kills the command's process tree in the sandbox. */
function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  return controller.signal;
}

async function finish(result: ExecResult, flags: ExecFlags): Promise<void> {
  for (const o of result.outputs ?? []) {
    if (o.data === undefined) {
      process.stderr.write(`nook: output ${o.path} not collected: ${o.error ?? 'unknown error'}\n`);
      continue;
    }
    const written = await writeHostFile(join(flags.outputDir ?? '.', basename(o.path)), Buffer.from(o.data, 'base64'), 0o644);
    if (!flags.json) process.stderr.write(`nook: collected ${o.path} -> ${written} (${o.bytes} bytes)\n`);
  }
  if (flags.json) printJson(result);
  else {
    if (result.truncated) process.stderr.write('nook: output was truncated (raise it with --max-output)\n');
    if (result.timedOut) process.stderr.write('nook: the command timed out and was killed with everything it started (raise it with --timeout)\n');
  }
  process.exitCode = result.exitCode;
}

function requireCommand(argv: string[]): void {
  if (argv.length === 0) throw new NookError('INVALID_ARGUMENT', 'no command given', { hint: "put it after --, e.g. nook exec agent -- echo hi" });
}

export function registerExecCommands(program: Command): void {
  addExecOptions(
    program
      .command('exec <sandbox> [command...]')
      .description('run a command in a sandbox (resumes it when paused); exits with the command\'s code, 124 on timeout'),
  )
    .option('-d, --detach', 'start it as a background process and return (see nook ps, logs, attach, kill)')
    .option('--name <name>', 'with --detach: a name to refer to the process by')
    .option('--restart <policy>', 'with --detach: never (default) or on-resume')
    .action(async (ref: string, argv: string[], flags: ExecFlags & { detach?: boolean; name?: string; restart?: 'never' | 'on-resume' }) => {
      requireCommand(argv);
      const client = await connect();
      if (flags.detach) {
        const sandbox = await client.sandboxes.get(ref);
        const p = await sandbox.processes.start(argv, {
          ...(flags.name ? { name: flags.name } : {}),
          ...(flags.restart ? { restart: flags.restart } : {}),
          ...(flags.env ? { env: flags.env } : {}),
          ...(flags.cwd ? { cwd: flags.cwd } : {}),
          ...(flags.user ? { user: flags.user } : {}),
        });
        if (flags.json) printJson(p);
        else process.stdout.write(`${p.name ?? p.id}\n`);
        return;
      }
      // By ref, no lookup first: one round trip (the daemon answers SANDBOX_NOT_FOUND the same).
      await finish(await client.sandboxes.exec(ref, argv, await execOptions(flags)), flags);
    });

  addExecOptions(
    program
      .command('run [command...]')
      .description('one-shot: run a command in a fresh non-persistent sandbox, then destroy it')
      .option('--image <image>', 'image to run in: a local name, or a registry reference (HOST[:PORT]/REPO[:TAG]) pulled as --pull says', 'python')
      .option('--pull <policy>', 'missing (default): pull a registry image unless pulled before; always; never', pullPolicy)
      .option('--memory-mib <MiB>', 'memory limit', positiveInt),
  ).action(async (argv: string[], flags: ExecFlags & { image: string; pull?: PullPolicy; memoryMib?: number }) => {
    requireCommand(argv);
    const client = await connect();
    const bar = progressBar(imageWork(flags.image), !flags.json);
    await client.images.ensure(flags.image, bar.onProgress, flags.pull);
    bar.done();
    // Made ready just now: the run itself never asks the registry again.
    const pull = flags.pull === 'always' ? 'missing' : flags.pull;
    const result = await client.run(argv, { ...(await execOptions(flags)), image: flags.image, ...(pull ? { pull } : {}), ...(flags.memoryMib ? { memoryMiB: flags.memoryMib } : {}) });
    await finish(result, flags);
  });
}
