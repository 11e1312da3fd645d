import { routeRefs as routes } from '../api/route-refs.js';
import type { ConsoleLogin, ExecResult, Health, HostConfig, NookEvent, PoolInfo, RetainedItem, RunRequest } from '../api/schemas.js';
import { Audit } from './audit.js';
import { Builds } from './builds.js';
import { consumeExec, execBody, toArgv, type Command, type RunOptions } from './exec.js';
import { Images, Templates } from './images.js';
import { Profiles } from './profiles.js';
import { Api } from './routes.js';
import { Sandboxes } from './sandboxes.js';
import { Snapshots } from './snapshots.js';
import { Transport, type TransportOptions } from './transport.js';
import { Volumes } from './volumes.js';

// Where these lived before the SDK was split up; `import { Sandbox } from 'nook/sdk/client'` keeps working.
export { Sandbox } from './sandbox/sandbox.js';
export type { Command, ExecOptions, RunOptions } from './exec.js';
export type { CreateOptions } from './sandboxes.js';
export type { PtyOptions, PtySession } from './sandbox/terminal.js';

/** A host setting's name (`network.allowed`...). */
export type HostSettingName = HostConfig extends { settings: Record<infer K, boolean> } ? K & string : string;

/**
 * The nook SDK. Talks to nookd over its unix socket (or TCP with a token).
 *
 * ```ts
 * const client = new NookClient();
 * const sandbox = await client.sandboxes.create({ name: 'agent', ttlMs: 3_600_000 });
 * const { stdout } = await sandbox.exec(['python3', '-c', 'print(2 + 2)']);
 * ```
 */
export class NookClient {
  readonly transport: Transport;
  readonly images: Images;
  readonly templates: Templates;
  readonly builds: Builds;
  readonly sandboxes: Sandboxes;
  readonly snapshots: Snapshots;
  readonly audit: Audit;
  readonly profiles: Profiles;
  readonly volumes: Volumes;
  private readonly api: Api;

  constructor(options: TransportOptions = {}) {
    this.transport = new Transport(options);
    this.api = new Api(this.transport);
    this.images = new Images(this.api);
    this.templates = new Templates(this.api);
    this.builds = new Builds(this.api);
    this.sandboxes = new Sandboxes(this.api, this.images);
    this.snapshots = new Snapshots(this.api);
    this.audit = new Audit(this.api);
    this.profiles = new Profiles(this.api);
    this.volumes = new Volumes(this.api);
  }

  /** All state that still exists (of one sandbox, or everything), with size and age. */
  async retained(options: { sandbox?: string } = {}): Promise<RetainedItem[]> {
    return (await this.api.json(routes.retained, {}, { query: { sandbox: options.sandbox } })).items;
  }

  /** Deletes state older than olderThanMs, by kind; dryRun only lists it. */
  gc(options: { olderThanMs: number; kinds?: Exclude<RetainedItem['kind'], 'volume' | 'audit'>[]; dryRun?: boolean }): Promise<{ dryRun: boolean; deleted: RetainedItem[]; receipt?: string }> {
    return this.api.json(routes.gc, {}, { body: options });
  }

  /** Host settings no profile can loosen. */
  config(): Promise<HostConfig> {
    return this.api.json(routes.getConfig, {});
  }

  /** A host setting (true/false), or a warm pool's size as `pool.IMAGE` (0 to 32; see setPoolSize). */
  setConfig(key: HostSettingName | `pool.${string}`, value: boolean | number): Promise<HostConfig> {
    return this.api.json(routes.setConfig, {}, { body: { key, value } });
  }

  /** Keeps `size` started sandboxes of `image` ready for creates and runs that fit (0 drains the pool). */
  setPoolSize(image: string, size: number): Promise<HostConfig> {
    return this.setConfig(`pool.${image}`, size);
  }

  /** Warm pools: sizes, ready members, counters and idle cost. */
  async pools(): Promise<PoolInfo[]> {
    return (await this.health()).pools ?? [];
  }

  /** A one-time link that opens the web console logged in (the daemon needs its TCP listener). */
  consoleLogin(): Promise<ConsoleLogin> {
    return this.api.json(routes.consoleLogin, {});
  }

  health(): Promise<Health> {
    return this.api.json(routes.health, {});
  }

  /** One-shot: runs a command in a fresh non-persistent sandbox that is destroyed afterwards. */
  run(cmd: Command, options: RunOptions = {}): Promise<ExecResult> {
    const { onSandbox, image, memoryMiB, cpus, pids, labels, ...exec } = options;
    const body: RunRequest = {
      ...execBody(toArgv(cmd), exec),
      ...(image ? { image } : {}),
      ...(memoryMiB ? { memoryMiB } : {}),
      ...(cpus ? { cpus } : {}),
      ...(pids ? { pids } : {}),
      ...(labels ? { labels } : {}),
    };
    const events = this.api.stream(routes.run, {}, { body, ...(exec.signal ? { signal: exec.signal } : {}) });
    return consumeExec(events, exec, onSandbox);
  }

  /** Stops the daemon; with release, stops all compute and unmounts storage first. */
  shutdown(options: { release?: boolean } = {}): Promise<Health> {
    return this.api.json(routes.shutdown, {}, { body: options });
  }

  /** Lifecycle events as they happen (created, stopped by TTL, snapshot taken, process exited...). */
  events(options: { signal?: AbortSignal } = {}): AsyncGenerator<NookEvent> {
    return this.api.stream(routes.events, {}, options.signal ? { signal: options.signal } : {});
  }

  /** The daemon's OpenAPI document. */
  openapi(): Promise<Record<string, unknown>> {
    return this.api.json(routes.openapi, {});
  }
}
