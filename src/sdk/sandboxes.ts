import { routeRefs as routes } from '../api/route-refs.js';
import type { CreateSandboxRequest, ExecResult, ProgressEvent, SandboxState } from '../api/schemas.js';
import { consumeExec, execBody, toArgv, type Command, type ExecOptions } from './exec.js';
import type { Images } from './images.js';
import type { Api } from './routes.js';
import { Files } from './sandbox/files.js';
import { Sandbox } from './sandbox/sandbox.js';

export interface CreateOptions extends CreateSandboxRequest {
  /** Called while a missing image is being built (or pulled) on first use. */
  onProgress?: (event: ProgressEvent) => void;
}

/** The sandboxes on this host. `client.sandboxes`. */
export class Sandboxes {
  constructor(
    private readonly api: Api,
    private readonly images: Images,
  ) {}

  async create(options: CreateOptions = {}): Promise<Sandbox> {
    const { onProgress, ...body } = options;
    if (onProgress && !body.snapshot) {
      await this.images.ensure(body.image ?? body.template ?? 'python', onProgress, body.pull);
      // Pulled (or built) just now, with progress: the create need not ask the registry again.
      if (body.pull === 'always') body.pull = 'missing';
    }
    return new Sandbox(this.api, await this.api.json(routes.createSandbox, {}, { body }));
  }

  /** By name or id. */
  async get(ref: string): Promise<Sandbox> {
    return new Sandbox(this.api, await this.api.json(routes.getSandbox, { ref }));
  }

  /**
   * Runs a command in the sandbox `ref` (name or id) without fetching it first: one round
   * trip, as `nook exec` does. Otherwise as `(await get(ref)).exec(cmd, options)`.
   */
  exec(ref: string, cmd: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const events = this.api.stream(routes.exec, { ref }, { body: execBody(toArgv(cmd), options), ...(options.signal ? { signal: options.signal } : {}) });
    return consumeExec(events, options);
  }

  /** The files of the sandbox `ref` (name or id) without fetching it first, as exec above. */
  files(ref: string): Files {
    return new Files(this.api, () => ref);
  }

  async list(filter: { labels?: Record<string, string>; state?: SandboxState } = {}): Promise<Sandbox[]> {
    const label = Object.entries(filter.labels ?? {}).map(([k, v]) => `${k}=${v}`);
    const r = await this.api.json(routes.listSandboxes, {}, { query: { label, state: filter.state } });
    return r.sandboxes.map((s) => new Sandbox(this.api, s));
  }
}
