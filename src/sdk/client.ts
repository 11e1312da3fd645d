import { NookError } from '../api/errors.js';
import { Preset } from '../api/schemas.js';
import type {
  Volume,
  FileInfo,
  TarResult,
  BuildEvent,
  BuildResult,
  Template,
  DoneReport,
  HostConfig,
  Profile,
  ProfileSpec,
  RetainedItem,
  Usage,
  AuditRecord,
  AuditVerify,
  CreateSandboxRequest,
  CreateSnapshotRequest,
  Exposure,
  ForkRequest,
  LogEvent,
  NetworkShow,
  NookEvent,
  Process,
  PtyServerMessage,
  StartProcessRequest,
  Snapshot,
  DestroyResult,
  ExecEvent,
  ExecRequest,
  ExecResult,
  Health,
  Image,
  ProgressEvent,
  PullPolicy,
  RunRequest,
  Sandbox as SandboxInfo,
  SandboxState,
} from '../api/schemas.js';
import type { Readable } from 'node:stream';
import { create } from 'tar';
import WebSocket from 'ws';
import { packDir, saveFile, unpackTo, type Unpacked } from './dir-transfer.js';
import { toError, Transport, type TransportOptions } from './transport.js';

export interface ExecOptions extends Omit<ExecRequest, 'argv' | 'stdin' | 'stream'> {
  /** Bytes (or text) written to the command's standard input. */
  stdin?: Buffer | string;
  /** Called with output as it is produced (the result still carries it, bounded). */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Aborting kills the command's whole process tree. */
  signal?: AbortSignal;
}

export type Command = string | string[];

/** A string runs through `sh -c`, an array runs as is. */
function toArgv(cmd: Command): string[] {
  return typeof cmd === 'string' ? ['sh', '-c', cmd] : cmd;
}

function execBody(argv: string[], options: ExecOptions): ExecRequest {
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
async function consumeExec(events: AsyncGenerator<ExecEvent>, options: ExecOptions, onSandbox?: (s: SandboxInfo) => void): Promise<ExecResult> {
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
  throw new NookError('INTERNAL', 'the exec stream ended without a result', { hint: 'see the daemon log' });
}

/** One sandbox: its last known state plus the calls that act on it. */
export class Sandbox {
  constructor(
    private readonly transport: Transport,
    private info: SandboxInfo,
  ) {}

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

  private path(suffix = ''): string {
    return `/v1/sandboxes/${encodeURIComponent(this.info.id)}${suffix}`;
  }

  /** Runs a command and waits for it (bounded by timeoutMs, default 30 s). A paused sandbox is resumed first. */
  async exec(cmd: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const events = this.transport.stream<ExecEvent>('POST', this.path('/exec'), {
      body: execBody(toArgv(cmd), options),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return consumeExec(events, options);
  }

  async refresh(): Promise<this> {
    this.info = await this.transport.json<SandboxInfo>('GET', this.path());
    return this;
  }

  /** Stops compute; files are kept (a non-persistent sandbox is destroyed). */
  async stop(): Promise<this> {
    this.info = await this.transport.json<SandboxInfo>('POST', this.path('/stop'));
    return this;
  }

  async resume(): Promise<this> {
    this.info = await this.transport.json<SandboxInfo>('POST', this.path('/resume'));
    return this;
  }

  /** Destroys the sandbox and its files; its snapshots are kept unless withSnapshots. */
  async destroy(options: { withSnapshots?: boolean } = {}): Promise<DestroyResult> {
    return this.transport.json<DestroyResult>('DELETE', this.path(), { query: { withSnapshots: options.withSnapshots ? 'true' : undefined } });
  }

  /** New compute from the image plus the persisted paths (for sandboxes created with persist). */
  async recycle(): Promise<this> {
    this.info = await this.transport.json<SandboxInfo>('POST', this.path('/recycle'));
    return this;
  }

  /** New running sandboxes from this one's current files; this one goes on running. */
  async fork(options: ForkRequest = {}): Promise<Sandbox[]> {
    const r = await this.transport.json<{ sandboxes: SandboxInfo[] }>('POST', this.path('/fork'), { body: options });
    return r.sandboxes.map((s) => new Sandbox(this.transport, s));
  }

  /** A new image from this sandbox's files (persisted paths included). */
  commit(options: { image: string }): Promise<Image> {
    return this.transport.json<Image>('POST', this.path('/commit'), { body: options });
  }

  /** Files inside the sandbox (resolved in its own root; a paused sandbox is resumed). */
  get files(): {
    read: (path: string, options?: { maxBytes?: number }) => Promise<Buffer>;
    write: (path: string, data: string | Buffer, options?: { mode?: number }) => Promise<FileInfo>;
    stat: (path: string) => Promise<FileInfo>;
    list: (path: string) => Promise<FileInfo[]>;
    mkdir: (path: string, options?: { parents?: boolean }) => Promise<FileInfo>;
    remove: (path: string, options?: { recursive?: boolean }) => Promise<void>;
    /** Unpacks a tar stream into `dir` (made with its parents); tar runs inside the sandbox. */
    writeTar: (dir: string, archive: NodeJS.ReadableStream) => Promise<TarResult>;
    /** `path` as a tar stream (one top entry); the stream breaks off past maxBytes (default 1 GiB). */
    readTar: (path: string, options?: { maxBytes?: number }) => Promise<Readable>;
    /** Streams a host file into the sandbox (no size held in memory; bounded by the daemon). */
    uploadFile: (hostFile: string, path: string, options?: { mode?: number }) => Promise<FileInfo>;
    /** Streams a regular file out to a host path (replaced atomically; refused past maxBytes, default 16 MiB). */
    downloadFile: (path: string, hostDest: string, options?: { maxBytes?: number }) => Promise<{ path: string; bytes: number }>;
    /** Copies a host directory's contents into `dir` in the sandbox. */
    uploadDir: (hostDir: string, dir: string) => Promise<TarResult>;
    /** Copies a file or directory out to the host (into `hostDest` when that is a directory). */
    download: (path: string, hostDest: string, options?: { maxBytes?: number }) => Promise<Unpacked>;
  } {
    const q = (path: string, extra: Record<string, string | undefined> = {}) => ({ query: { path, ...extra } });
    return {
      read: (path, options = {}) => this.transport.bytes(this.path('/files/content'), q(path, { maxBytes: options.maxBytes === undefined ? undefined : String(options.maxBytes) })),
      write: (path, data, options = {}) =>
        this.transport.json<FileInfo>('POST', this.path('/files/content'), { ...q(path, { mode: options.mode === undefined ? undefined : options.mode.toString(8) }), bodyBytes: Buffer.from(data) }),
      stat: (path) => this.transport.json<FileInfo>('GET', this.path('/files/stat'), q(path)),
      list: async (path) => (await this.transport.json<{ files: FileInfo[] }>('GET', this.path('/files/list'), q(path))).files,
      mkdir: (path, options = {}) => this.transport.json<FileInfo>('POST', this.path('/files/mkdir'), { body: { path, ...(options.parents ? { parents: true } : {}) } }),
      remove: async (path, options = {}) => void (await this.transport.json('DELETE', this.path('/files'), q(path, { recursive: options.recursive ? 'true' : undefined }))),
      writeTar: (dir, archive) => this.transport.json<TarResult>('POST', this.path('/files/tar'), { ...q(dir), bodyStream: archive }),
      readTar: (path, options = {}) => this.transport.rawStream(this.path('/files/tar'), q(path, { maxBytes: options.maxBytes === undefined ? undefined : String(options.maxBytes) })),
      uploadFile: (hostFile, path, options = {}) =>
        this.transport.json<FileInfo>('POST', this.path('/files/content'), {
          ...q(path, { mode: options.mode === undefined ? undefined : options.mode.toString(8) }),
          bodyFile: hostFile,
          contentType: 'application/octet-stream',
        }),
      downloadFile: async (path, hostDest, options = {}) => {
        const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
        const info = await this.transport.json<FileInfo>('GET', this.path('/files/stat'), q(path));
        return saveFile(await this.transport.rawStream(this.path('/files/content'), q(path, { maxBytes: String(maxBytes) })), hostDest, info.mode, maxBytes);
      },
      uploadDir: (hostDir, dir) => this.transport.json<TarResult>('POST', this.path('/files/tar'), { ...q(dir), bodyStream: packDir(hostDir) }),
      download: async (path, hostDest, options = {}) => {
        const maxBytes = options.maxBytes ?? 1024 ** 3;
        const top = path.replace(/\/+$/, '').split('/').pop() || 'root';
        return unpackTo(await this.transport.rawStream(this.path('/files/tar'), q(path, { maxBytes: String(maxBytes) })), top, hostDest, maxBytes);
      },
    };
  }

  /** Managed volumes mounted into this (running) sandbox. */
  get volumes(): {
    mount: (volume: string, guest: string, options?: { rw?: boolean; host?: string }) => Promise<Volume>;
    /** Refused (VOLUME_BUSY, naming them) while processes reach it; `force` kills them first. */
    unmount: (guest: string, options?: { force?: boolean }) => Promise<Volume>;
    list: () => Promise<Volume[]>;
  } {
    return {
      mount: (volume, guest, options = {}) =>
        this.transport.json<Volume>('POST', this.path('/volumes'), { body: { volume, guest, rw: options.rw ?? false, ...(options.host ? { host: options.host } : {}) } }),
      unmount: (guest, options = {}) => this.transport.json<Volume>('DELETE', this.path('/volumes'), { query: { guest, ...(options.force ? { force: 'true' } : {}) } }),
      list: async () => (await this.transport.json<{ volumes: Volume[] }>('GET', this.path('/volumes'))).volumes,
    };
  }

  /** Compute seconds and stored bytes. */
  usage(): Promise<Usage> {
    return this.transport.json<Usage>('GET', this.path('/usage'));
  }

  /** The end-of-job checklist: stop compute, remove exposures, report what remains and the receipts. */
  done(): Promise<DoneReport> {
    return this.transport.json<DoneReport>('POST', this.path('/done'));
  }

  /** Background processes: they outlive the call that starts them; the daemon keeps their output. */
  get processes(): {
    start: (cmd: Command, options?: Omit<StartProcessRequest, 'argv'>) => Promise<Process>;
    list: () => Promise<Process[]>;
    get: (proc: string) => Promise<Process>;
    kill: (proc: string, options?: { signal?: string }) => Promise<Process>;
    logs: (proc: string, options?: { follow?: boolean; tail?: number; since?: string; signal?: AbortSignal }) => AsyncGenerator<LogEvent>;
  } {
    const p = (proc: string, suffix = ''): string => this.path(`/processes/${encodeURIComponent(proc)}${suffix}`);
    return {
      start: (cmd, options = {}) => this.transport.json<Process>('POST', this.path('/processes'), { body: { ...options, argv: toArgv(cmd) } }),
      list: async () => (await this.transport.json<{ processes: Process[] }>('GET', this.path('/processes'))).processes,
      get: (proc) => this.transport.json<Process>('GET', p(proc)),
      kill: (proc, options = {}) => this.transport.json<Process>('POST', p(proc, '/kill'), { body: options }),
      logs: (proc, options = {}) =>
        this.transport.stream<LogEvent>('GET', p(proc, '/logs'), {
          query: { follow: options.follow ? 'true' : undefined, tail: options.tail === undefined ? undefined : String(options.tail), since: options.since },
          ...(options.signal ? { signal: options.signal } : {}),
        }),
    };
  }

  /** Interactive terminals (a PTY over a WebSocket). */
  get pty(): { create: (options: PtyOptions) => Promise<PtySession> } {
    return { create: (options) => openPty(this.transport, this.info.id, options) };
  }

  /** Egress policy: changes apply to a running sandbox at once. */
  get network(): {
    allow: (...hosts: string[]) => Promise<NetworkShow>;
    deny: (...hosts: string[]) => Promise<NetworkShow>;
    set: (policy: { mode?: 'none' | 'allowlist' | 'learn'; allow?: string[] }) => Promise<NetworkShow>;
    show: (options?: { limit?: number }) => Promise<NetworkShow>;
    suggest: () => Promise<string[]>;
  } {
    return {
      allow: (...hosts) => this.transport.json<NetworkShow>('POST', this.path('/network/allow'), { body: { hosts } }),
      deny: (...hosts) => this.transport.json<NetworkShow>('POST', this.path('/network/deny'), { body: { hosts } }),
      set: (policy) => this.transport.json<NetworkShow>('POST', this.path('/network'), { body: policy }),
      show: (options = {}) => this.transport.json<NetworkShow>('GET', this.path('/network'), { query: { limit: options.limit ? String(options.limit) : undefined } }),
      suggest: async () => (await this.transport.json<{ allow: string[] }>('GET', this.path('/network/suggest'))).allow,
    };
  }

  /** Exposes a port on the host's loopback behind a token; returns the URL with it. */
  expose(port: number, options: { hostPort?: number } = {}): Promise<Exposure> {
    return this.transport.json<Exposure>('POST', this.path('/expose'), { body: { port, ...options } });
  }

  get exposures(): { list: () => Promise<Exposure[]>; remove: (port: number) => Promise<Exposure> } {
    return {
      list: async () => (await this.transport.json<{ exposures: Exposure[] }>('GET', this.path('/expose'))).exposures,
      remove: (port) => this.transport.json<Exposure>('DELETE', this.path(`/expose/${port}`)),
    };
  }

  /** Named, read-only checkpoints of this sandbox's files. */
  get snapshots(): {
    create: (options: CreateSnapshotRequest) => Promise<Snapshot>;
    list: () => Promise<Snapshot[]>;
    delete: (name: string) => Promise<Snapshot>;
  } {
    return {
      create: (options) => this.transport.json<Snapshot>('POST', this.path('/snapshots'), { body: options }),
      list: async () => (await this.transport.json<{ snapshots: Snapshot[] }>('GET', this.path('/snapshots'))).snapshots,
      delete: (name) => this.transport.json<Snapshot>('DELETE', this.path(`/snapshots/${encodeURIComponent(name)}`)),
    };
  }
}

export interface PtyOptions {
  cols: number;
  rows: number;
  /** Default: a login shell (bash where the image has it). */
  cmd?: Command;
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  onData: (data: Buffer) => void;
}

export interface PtySession {
  write(data: string | Buffer): void;
  resize(cols: number, rows: number): void;
  /** Kills the terminal's process tree. */
  kill(): void;
  /** Resolves when the session ends, with the shell's exit code. */
  wait(): Promise<{ exitCode: number; signal: string | null }>;
}

function openPty(transport: Transport, sandboxId: string, options: PtyOptions): Promise<PtySession> {
  const path = `/v1/sandboxes/${encodeURIComponent(sandboxId)}/pty`;
  const ws = transport.baseUrl
    ? new WebSocket(new URL(path, transport.baseUrl.replace(/^http/, 'ws')), { headers: { ...transport.authHeaders(), ...transport.actorHeaders() } })
    : new WebSocket(`ws+unix://${transport.socketPath}:${path}`, { headers: transport.actorHeaders() });
  let ended: (r: { exitCode: number; signal: string | null }) => void = () => undefined;
  let failed: (e: Error) => void = () => undefined;
  const done = new Promise<{ exitCode: number; signal: string | null }>((resolve, reject) => {
    ended = resolve;
    failed = reject;
  });
  void done.catch(() => undefined);
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          type: 'start',
          cols: options.cols,
          rows: options.rows,
          ...(options.cmd ? { argv: toArgv(options.cmd) } : {}),
          ...(options.env ? { env: options.env } : {}),
          ...(options.cwd ? { cwd: options.cwd } : {}),
          ...(options.user ? { user: options.user } : {}),
        }),
      );
      resolve({
        write: (data) => ws.readyState === ws.OPEN && ws.send(Buffer.from(data)),
        resize: (cols, rows) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ type: 'resize', cols, rows })),
        kill: () => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ type: 'kill' })),
        wait: () => done,
      });
    });
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (isBinary) {
        options.onData(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer));
        return;
      }
      const msg = JSON.parse(data.toString()) as PtyServerMessage;
      if (msg.type === 'exit') ended({ exitCode: msg.exitCode, signal: msg.signal });
      else failed(toError(msg.error, 500));
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => {
        const err = toError((() => { try { return JSON.parse(body) as unknown; } catch { return {}; } })(), res.statusCode ?? 500);
        reject(err);
        failed(err);
      });
    });
    ws.on('error', (e) => {
      reject(e);
      failed(e);
    });
    ws.on('close', () => failed(new NookError('RUNTIME_ERROR', 'the terminal connection closed without an exit status')));
  });
}

export interface CreateOptions extends CreateSandboxRequest {
  /** Called while a missing image is being built on first use. */
  onProgress?: (event: ProgressEvent) => void;
}

class Sandboxes {
  constructor(
    private readonly transport: Transport,
    private readonly images: Images,
  ) {}

  async create(options: CreateOptions = {}): Promise<Sandbox> {
    const { onProgress, ...body } = options;
    if (onProgress && !body.snapshot) {
      await this.images.ensure(body.image ?? body.template ?? 'python', onProgress, body.pull);
      // Pulled (or built) just now, with progress: the create need not ask the registry again.
      if (body.pull === 'always') body.pull = 'missing';
    }
    return new Sandbox(this.transport, await this.transport.json<SandboxInfo>('POST', '/v1/sandboxes', { body }));
  }

  async get(ref: string): Promise<Sandbox> {
    return new Sandbox(this.transport, await this.transport.json<SandboxInfo>('GET', `/v1/sandboxes/${encodeURIComponent(ref)}`));
  }

  async list(filter: { labels?: Record<string, string>; state?: SandboxState } = {}): Promise<Sandbox[]> {
    const label = Object.entries(filter.labels ?? {}).map(([k, v]) => `${k}=${v}`);
    const r = await this.transport.json<{ sandboxes: SandboxInfo[] }>('GET', '/v1/sandboxes', { query: { label, state: filter.state } });
    return r.sandboxes.map((s) => new Sandbox(this.transport, s));
  }
}

class Volumes {
  constructor(private readonly transport: Transport) {}

  create(name: string, options: { sizeMiB: number }): Promise<Volume> {
    return this.transport.json<Volume>('POST', '/v1/volumes', { body: { name, sizeMiB: options.sizeMiB } });
  }

  async list(): Promise<Volume[]> {
    return (await this.transport.json<{ volumes: Volume[] }>('GET', '/v1/volumes')).volumes;
  }

  get(name: string): Promise<Volume> {
    return this.transport.json<Volume>('GET', `/v1/volumes/${encodeURIComponent(name)}`);
  }

  /** The key goes into the kernel: plaintext becomes reachable. */
  unlock(name: string): Promise<Volume> {
    return this.transport.json<Volume>('POST', `/v1/volumes/${encodeURIComponent(name)}/unlock`);
  }

  /** The key leaves the kernel and the volume is unmounted: only ciphertext remains. */
  lock(name: string, options: { force?: boolean } = {}): Promise<Volume> {
    return this.transport.json<Volume>('POST', `/v1/volumes/${encodeURIComponent(name)}/lock`, { body: options });
  }

  remove(name: string): Promise<Volume> {
    return this.transport.json<Volume>('DELETE', `/v1/volumes/${encodeURIComponent(name)}`);
  }
}

class Profiles {
  constructor(private readonly transport: Transport) {}

  list(): Promise<Profile[]> {
    return this.transport.json<{ profiles: Profile[] }>('GET', '/v1/profiles').then((r) => r.profiles);
  }

  get(name: string): Promise<Profile> {
    return this.transport.json<Profile>('GET', `/v1/profiles/${encodeURIComponent(name)}`);
  }

  /** Creates or replaces the draft. */
  save(name: string, spec: ProfileSpec): Promise<Profile> {
    return this.transport.json<Profile>('POST', `/v1/profiles/${encodeURIComponent(name)}`, { body: spec });
  }

  /** The draft becomes the next published version. */
  publish(name: string): Promise<Profile> {
    return this.transport.json<Profile>('POST', `/v1/profiles/${encodeURIComponent(name)}/publish`);
  }
}

class Audit {
  constructor(private readonly transport: Transport) {}

  async list(filter: { sandbox?: string; action?: string; limit?: number } = {}): Promise<AuditRecord[]> {
    const query = { sandbox: filter.sandbox, action: filter.action, limit: filter.limit === undefined ? undefined : String(filter.limit) };
    return (await this.transport.json<{ records: AuditRecord[] }>('GET', '/v1/audit', { query })).records;
  }

  get(receipt: string): Promise<AuditRecord> {
    return this.transport.json<AuditRecord>('GET', `/v1/audit/${encodeURIComponent(receipt)}`);
  }

  /** Checks the hash chain end to end; names the first bad record. */
  verify(): Promise<AuditVerify> {
    return this.transport.json<AuditVerify>('GET', '/v1/audit/verify');
  }

  /** Every record, oldest first. */
  export(): AsyncGenerator<AuditRecord> {
    return this.transport.stream<AuditRecord>('GET', '/v1/audit/export');
  }
}

class Snapshots {
  constructor(private readonly transport: Transport) {}

  /** Every snapshot, or those of one sandbox (also a destroyed one, by its name). */
  async list(sandbox?: string): Promise<Snapshot[]> {
    const path = sandbox === undefined ? '/v1/snapshots' : `/v1/sandboxes/${encodeURIComponent(sandbox)}/snapshots`;
    return (await this.transport.json<{ snapshots: Snapshot[] }>('GET', path)).snapshots;
  }

  delete(sandbox: string, name: string): Promise<Snapshot> {
    return this.transport.json<Snapshot>('DELETE', `/v1/sandboxes/${encodeURIComponent(sandbox)}/snapshots/${encodeURIComponent(name)}`);
  }
}

class Builds {
  constructor(private readonly transport: Transport) {}

  /**
   * Builds the image a build context describes (a directory holding `nook.json`):
   * `await client.builds.run('./worker', { onLog: (e) => process.stdout.write(e.text) })`.
   * The directory is sent as a tar (without .git); steps run in an isolated builder sandbox.
   */
  async run(dir: string, options: { spec?: string; onProgress?: (e: BuildEvent & { type: 'progress' }) => void; onLog?: (e: BuildEvent & { type: 'log' }) => void } = {}): Promise<BuildResult> {
    const context = create({ cwd: dir, portable: true, filter: (path: string) => !/(^|\/)\.git(\/|$)/.test(path) }, ['.']) as unknown as NodeJS.ReadableStream;
    const query = { stream: 'true', ...(options.spec ? { spec: options.spec } : {}) };
    for await (const event of this.transport.stream<BuildEvent>('POST', '/v1/builds', { query, bodyStream: context })) {
      if (event.type === 'done') return event.result;
      if (event.type === 'error') throw toError(event.error, 500);
      if (event.type === 'progress') options.onProgress?.(event);
      else options.onLog?.(event);
    }
    throw new NookError('INTERNAL', 'the build stream ended without a result');
  }
}

class Templates {
  constructor(private readonly transport: Transport) {}

  /** Named templates: `client.sandboxes.create({ template: 'node' })`. */
  async list(): Promise<Template[]> {
    return (await this.transport.json<{ templates: Template[] }>('GET', '/v1/templates')).templates;
  }
}

class Images {
  constructor(private readonly transport: Transport) {}

  /** Images; `all` includes the build step cache. */
  async list(options: { all?: boolean } = {}): Promise<Image[]> {
    return (await this.transport.json<{ images: Image[] }>('GET', '/v1/images', options.all ? { query: { all: 'true' } } : {})).images;
  }

  get(name: string): Promise<Image> {
    return this.transport.json<Image>('GET', `/v1/images/${encodeURIComponent(name)}`);
  }

  /** Builds an image from a preset, reporting progress as it goes. */
  build(options: { preset: Preset; name?: string; rebuild?: boolean; onProgress?: (e: ProgressEvent) => void }): Promise<Image> {
    const { onProgress, ...body } = options;
    return this.progressStream('/v1/images', body, onProgress);
  }

  /**
   * Pulls an image from an OCI registry: `client.images.pull('127.0.0.1:5000/library/python:3.12')`.
   * The local name defaults to the repository's last part and tag (`python:3.12`).
   */
  pull(
    reference: string,
    options: { name?: string; auth?: { username: string; password: string }; replace?: boolean; policy?: PullPolicy; onProgress?: (e: ProgressEvent) => void } = {},
  ): Promise<Image> {
    const { onProgress, ...rest } = options;
    return this.progressStream('/v1/images/pull', { reference, ...rest }, onProgress);
  }

  private async progressStream(path: string, body: object, onProgress: ((e: ProgressEvent) => void) | undefined): Promise<Image> {
    for await (const event of this.transport.stream<ProgressEvent>('POST', path, { body: { ...body, stream: true } })) {
      if (event.type === 'done') return event.image;
      if (event.type === 'error') throw toError(event.error, 500);
      onProgress?.(event);
    }
    throw new NookError('INTERNAL', 'the image stream ended without a result');
  }

  /**
   * The image, built first when it is a preset that was never built, or pulled when `name` is a
   * registry reference (`127.0.0.1:5000/team/tool:1`), as the pull policy says.
   */
  async ensure(name: string, onProgress?: (e: ProgressEvent) => void, pull: PullPolicy = 'missing'): Promise<Image> {
    if (name.includes('/')) return this.pull(name, { policy: pull, ...(onProgress ? { onProgress } : {}) });
    try {
      return await this.get(name);
    } catch (e) {
      const preset = Preset.safeParse(name);
      if (!(e instanceof NookError) || e.code !== 'IMAGE_NOT_FOUND' || !preset.success || pull === 'never') throw e;
      return this.build({ preset: preset.data, ...(onProgress ? { onProgress } : {}) });
    }
  }

  /** Writes the image to `file` as an OCI image layout tar (importable by other OCI tools). */
  async export(name: string, file: string): Promise<{ file: string; sizeBytes: number }> {
    const sizeBytes = await this.transport.download(`/v1/images/${encodeURIComponent(name)}/export`, file);
    return { file, sizeBytes };
  }

  /** A new image from an OCI image layout tar or a `docker save` archive. */
  import(file: string, options: { name: string }): Promise<Image> {
    return this.transport.json<Image>('POST', '/v1/images/import', { bodyFile: file, query: { name: options.name } });
  }

  remove(name: string): Promise<Image> {
    return this.transport.json<Image>('DELETE', `/v1/images/${encodeURIComponent(name)}`);
  }
}

export interface RunOptions extends ExecOptions, Omit<RunRequest, 'argv' | 'stdin' | 'stream' | keyof ExecRequest> {
  onSandbox?: (sandbox: SandboxInfo) => void;
}

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

  constructor(options: TransportOptions = {}) {
    this.transport = new Transport(options);
    this.images = new Images(this.transport);
    this.templates = new Templates(this.transport);
    this.builds = new Builds(this.transport);
    this.sandboxes = new Sandboxes(this.transport, this.images);
    this.snapshots = new Snapshots(this.transport);
    this.audit = new Audit(this.transport);
    this.profiles = new Profiles(this.transport);
    this.volumes = new Volumes(this.transport);
  }

  /** All state that still exists (of one sandbox, or everything), with size and age. */
  async retained(options: { sandbox?: string } = {}): Promise<RetainedItem[]> {
    return (await this.transport.json<{ items: RetainedItem[] }>('GET', '/v1/retained', { query: { sandbox: options.sandbox } })).items;
  }

  /** Deletes state older than olderThanMs, by kind; dryRun only lists it. */
  gc(options: { olderThanMs: number; kinds?: Exclude<RetainedItem['kind'], 'volume' | 'audit'>[]; dryRun?: boolean }): Promise<{ dryRun: boolean; deleted: RetainedItem[]; receipt?: string }> {
    return this.transport.json('POST', '/v1/gc', { body: options });
  }

  /** Host settings no profile can loosen. */
  config(): Promise<HostConfig> {
    return this.transport.json<HostConfig>('GET', '/v1/config');
  }

  setConfig(key: HostConfig extends { settings: Record<infer K, boolean> } ? K & string : string, value: boolean): Promise<HostConfig> {
    return this.transport.json<HostConfig>('POST', '/v1/config', { body: { key, value } });
  }

  health(): Promise<Health> {
    return this.transport.json<Health>('GET', '/v1/health');
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
    const events = this.transport.stream<ExecEvent>('POST', '/v1/run', { body, ...(exec.signal ? { signal: exec.signal } : {}) });
    return consumeExec(events, exec, onSandbox);
  }

  /** Stops the daemon; with release, stops all compute and unmounts storage first. */
  shutdown(options: { release?: boolean } = {}): Promise<Health> {
    return this.transport.json<Health>('POST', '/v1/system/shutdown', { body: options });
  }

  /** Lifecycle events as they happen (created, stopped by TTL, snapshot taken, process exited...). */
  events(options: { signal?: AbortSignal } = {}): AsyncGenerator<NookEvent> {
    return this.transport.stream<NookEvent>('GET', '/v1/events', options.signal ? { signal: options.signal } : {});
  }

  /** The daemon's OpenAPI document. */
  openapi(): Promise<Record<string, unknown>> {
    return this.transport.json<Record<string, unknown>>('GET', '/v1/openapi.json');
  }
}
