import { routeRefs as routes } from '../../api/route-refs.js';
import type { DestroyResult, DoneReport, Exposure, ExecResult, ForkRequest, Image, Sandbox as SandboxInfo, SandboxState, StopRequest, Usage } from '../../api/schemas.js';
import { consumeExec, execBody, toArgv, type Command, type ExecOptions } from '../exec.js';
import type { Api } from '../routes.js';
import { Desktop } from './desktop.js';
import { Files } from './files.js';
import { Exposures, Network } from './network.js';
import { Processes } from './processes.js';
import { SandboxSnapshots } from './snapshots.js';
import { Terminals } from './terminal.js';
import { SandboxVolumes } from './volumes.js';

/**
 * One sandbox: its last known state plus the calls that act on it. Its resources
 * (files, processes, network, exposures, snapshots, volumes, pty) are made once, here.
 */
export class Sandbox {
  /** Files inside the sandbox (resolved in its own root; a paused sandbox is resumed). */
  readonly files: Files;
  /** Background processes: they outlive the call that starts them; the daemon keeps their output. */
  readonly processes: Processes;
  /** Egress policy: changes apply to a running sandbox at once. */
  readonly network: Network;
  /** Ports exposed on the host's loopback behind a token. */
  readonly exposures: Exposures;
  /** Named, read-only checkpoints of this sandbox's files. */
  readonly snapshots: SandboxSnapshots;
  /** Managed volumes mounted into this (running) sandbox. */
  readonly volumes: SandboxVolumes;
  /** Interactive terminals (a PTY over a WebSocket). */
  readonly pty: Terminals;
  /** The screen of a desktop sandbox (template desktop): screenshots and input. */
  readonly desktop: Desktop;

  constructor(
    private readonly api: Api,
    private info: SandboxInfo,
  ) {
    const ref = (): string => this.info.id;
    this.files = new Files(api, ref);
    this.processes = new Processes(api, ref);
    this.network = new Network(api, ref);
    this.exposures = new Exposures(api, ref);
    this.snapshots = new SandboxSnapshots(api, ref);
    this.volumes = new SandboxVolumes(api, ref);
    this.pty = new Terminals(api.transport, ref);
    this.desktop = new Desktop(api, ref);
  }

  get id(): string {
    return this.info.id;
  }
  get name(): string {
    return this.info.name;
  }
  get state(): SandboxState {
    return this.info.state;
  }
  /** Everything the daemon reported the last time this object was refreshed. */
  get data(): SandboxInfo {
    return this.info;
  }

  private get ref(): { ref: string } {
    return { ref: this.info.id };
  }

  /** Runs a command and waits for it (bounded by timeoutMs, default 30 s). A paused sandbox is resumed first. */
  exec(cmd: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const events = this.api.stream(routes.exec, this.ref, { body: execBody(toArgv(cmd), options), ...(options.signal ? { signal: options.signal } : {}) });
    return consumeExec(events, options);
  }

  async refresh(): Promise<this> {
    this.info = await this.api.json(routes.getSandbox, this.ref);
    return this;
  }

  /** Stops compute; files are kept (a non-persistent sandbox is destroyed). memory: keep process memory too (gVisor), resume continues it. */
  async stop(options: StopRequest = {}): Promise<this> {
    this.info = await this.api.json(routes.stopSandbox, this.ref, { body: options });
    return this;
  }

  async resume(): Promise<this> {
    this.info = await this.api.json(routes.resumeSandbox, this.ref);
    return this;
  }

  /** Destroys the sandbox and its files; its snapshots are kept unless withSnapshots. */
  destroy(options: { withSnapshots?: boolean } = {}): Promise<DestroyResult> {
    return this.api.json(routes.destroySandbox, this.ref, { query: { withSnapshots: options.withSnapshots ? 'true' : undefined } });
  }

  /** New compute from the image plus the persisted paths (for sandboxes created with persist). */
  async recycle(): Promise<this> {
    this.info = await this.api.json(routes.recycleSandbox, this.ref);
    return this;
  }

  /** New running sandboxes from this one's current files; this one goes on running. */
  async fork(options: ForkRequest = {}): Promise<Sandbox[]> {
    const r = await this.api.json(routes.fork, this.ref, { body: options });
    return r.sandboxes.map((s) => new Sandbox(this.api, s));
  }

  /** A new image from this sandbox's files (persisted paths included). */
  commit(options: { image: string }): Promise<Image> {
    return this.api.json(routes.commit, this.ref, { body: options });
  }

  /** Compute seconds and stored bytes. */
  usage(): Promise<Usage> {
    return this.api.json(routes.usage, this.ref);
  }

  /** The end-of-job checklist: stop compute, remove exposures, report what remains and the receipts. */
  done(): Promise<DoneReport> {
    return this.api.json(routes.done, this.ref);
  }

  /** Exposes a port on the host's loopback behind a token; returns the URL with it. */
  expose(port: number, options: { hostPort?: number } = {}): Promise<Exposure> {
    return this.exposures.add(port, options);
  }
}
