import { RuntimeError } from '../../api/error-classes.js';
import { routeRefs as routes } from '../../api/route-refs.js';
import type { LogEvent, Process, StartProcessRequest } from '../../api/schemas.js';
import { toArgv, type Command } from '../exec.js';
import type { Api } from '../routes.js';
import { toError } from '../errors.js';

export interface LogOptions {
  /** Keep streaming until the process exits. */
  follow?: boolean;
  /** Only the last N lines. */
  tail?: number;
  /** Only output since this ISO time or ms epoch. */
  since?: string;
  signal?: AbortSignal;
}

/** Background processes: they outlive the call that starts them; the daemon keeps their output. `sandbox.processes`. */
export class Processes {
  constructor(
    private readonly api: Api,
    private readonly ref: () => string,
  ) {}

  start(cmd: Command, options: Omit<StartProcessRequest, 'argv'> = {}): Promise<Process> {
    return this.api.json(routes.startProcess, { ref: this.ref() }, { body: { ...options, argv: toArgv(cmd) } });
  }

  /** Starts a process and answers with a handle on it. */
  async spawn(cmd: Command, options: Omit<StartProcessRequest, 'argv'> = {}): Promise<ProcessHandle> {
    return new ProcessHandle(this, await this.start(cmd, options));
  }

  /** A handle on a process started before (by id or name). */
  async handle(proc: string): Promise<ProcessHandle> {
    return new ProcessHandle(this, await this.get(proc));
  }

  async list(): Promise<Process[]> {
    return (await this.api.json(routes.listProcesses, { ref: this.ref() })).processes;
  }

  get(proc: string): Promise<Process> {
    return this.api.json(routes.getProcess, { ref: this.ref(), proc });
  }

  /** Default SIGKILL, which ends the process's whole tree. */
  kill(proc: string, options: { signal?: string } = {}): Promise<Process> {
    return this.api.json(routes.killProcess, { ref: this.ref(), proc }, { body: options });
  }

  logs(proc: string, options: LogOptions = {}): AsyncGenerator<LogEvent> {
    return this.api.stream(routes.processLogs, { ref: this.ref(), proc }, {
      query: { follow: options.follow ? 'true' : undefined, tail: options.tail === undefined ? undefined : String(options.tail), since: options.since },
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
}

/** One background process: its last known state plus the calls that act on it. */
export class ProcessHandle {
  constructor(
    private readonly processes: Processes,
    private info: Process,
  ) {}

  get id(): string {
    return this.info.id;
  }
  get name(): string | null {
    return this.info.name;
  }
  get state(): Process['state'] {
    return this.info.state;
  }
  /** Everything the daemon reported the last time this handle was refreshed. */
  get data(): Process {
    return this.info;
  }

  async refresh(): Promise<this> {
    this.info = await this.processes.get(this.info.id);
    return this;
  }

  async kill(options: { signal?: string } = {}): Promise<this> {
    this.info = await this.processes.kill(this.info.id, options);
    return this;
  }

  logs(options: LogOptions = {}): AsyncGenerator<LogEvent> {
    return this.processes.logs(this.info.id, options);
  }

  /** Follows the output (to the callbacks) until the process ends; answers with its final state. */
  async wait(options: { onStdout?: (chunk: Buffer) => void; onStderr?: (chunk: Buffer) => void; signal?: AbortSignal } = {}): Promise<Process> {
    for await (const event of this.logs({ follow: true, ...(options.signal ? { signal: options.signal } : {}) })) {
      if (event.type === 'stdout') options.onStdout?.(Buffer.from(event.data, 'base64'));
      else if (event.type === 'stderr') options.onStderr?.(Buffer.from(event.data, 'base64'));
      else if (event.type === 'error') throw toError(event.error, 500);
      else {
        this.info = event.process;
        return this.info;
      }
    }
    // The stream ended without an exit event (the daemon restarted): ask.
    await this.refresh();
    if (this.info.state === 'running') throw new RuntimeError(`the log stream of ${this.info.id} ended while it still runs`, { hint: 'call wait() again' });
    return this.info;
  }
}
