/** Command execution shared by Sandbox.exec and NookClient.run: the request body and the event stream. */
import { InternalError } from '../api/error-classes.js';
import type { ExecEvent, ExecRequest, ExecResult, RunRequest, Sandbox as SandboxInfo } from '../api/schemas.js';
import { toError } from './errors.js';

export interface ExecOptions extends Omit<ExecRequest, 'argv' | 'stdin' | 'stream'> {
  /** Bytes (or text) written to the command's standard input. */
  stdin?: Buffer | string;
  /** Called with output as it is produced (the result still carries it, bounded). */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Aborting kills the command's whole process tree. */
  signal?: AbortSignal;
}

export interface RunOptions extends ExecOptions, Omit<RunRequest, 'argv' | 'stdin' | 'stream' | keyof ExecRequest> {
  onSandbox?: (sandbox: SandboxInfo) => void;
}

/** A string runs through `sh -c`, an array runs as is. */
export type Command = string | string[];

export function toArgv(cmd: Command): string[] {
  return typeof cmd === 'string' ? ['sh', '-c', cmd] : cmd;
}

/** The wire body of an exec: the callbacks stay here, stdin goes as base64, output streams. */
export function execBody(argv: string[], options: ExecOptions): ExecRequest {
  const { onStdout, onStderr, signal, stdin, ...rest } = options;
  void onStdout;
  void onStderr;
  void signal;
  return {
    ...rest,
    argv,
    ...(stdin !== undefined ? { stdin: Buffer.from(stdin).toString('base64') } : {}),
    stream: true,
  };
}

/** Runs a streaming exec/run call: forwards output to the callbacks, returns the result. */
export async function consumeExec(events: AsyncGenerator<ExecEvent>, options: ExecOptions, onSandbox?: (s: SandboxInfo) => void): Promise<ExecResult> {
  for await (const event of events) {
    switch (event.type) {
      case 'stdout':
        options.onStdout?.(Buffer.from(event.data, 'base64'));
        break;
      case 'stderr':
        options.onStderr?.(Buffer.from(event.data, 'base64'));
        break;
      case 'sandbox':
        onSandbox?.(event.sandbox);
        break;
      case 'result':
        return event.result;
      case 'error':
        throw toError(event.error, 500);
    }
  }
  throw new InternalError('the exec stream ended without a result', { hint: 'see the daemon log' });
}
