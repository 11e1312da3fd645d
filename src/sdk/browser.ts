/**
 * The SDK in a browser: the same routes, addressed the same way, over fetch with the web
 * console's session cookie (same origin) instead of node:http and a bearer token. Nothing
 * here (or in what it imports) loads a Node module: the console's bundle is built with
 * esbuild's browser platform, which refuses one.
 */
import { ndjsonValues } from './ndjson.js';
import { DaemonUnavailableError, InvalidArgumentError, NotSupportedError } from '../api/error-classes.js';
import { routeRefs as routes } from '../api/route-refs.js';
import type { CreateSandboxRequest, FileInfo, ForkRequest, Health, NookEvent, Sandbox as SandboxInfo, SandboxState, Usage } from '../api/schemas.js';
import { Audit } from './audit.js';
import { toError } from './errors.js';
import { Images, Templates } from './images.js';
import { Api, pathOf, type ApiTransport } from './routes.js';
import { Exposures, Network } from './sandbox/network.js';
import { Processes } from './sandbox/processes.js';
import { SandboxSnapshots } from './sandbox/snapshots.js';
import { SandboxVolumes } from './sandbox/volumes.js';
import { Snapshots } from './snapshots.js';
import type { CallOptions } from './transport.js';
import { Volumes } from './volumes.js';

export interface FetchTransportOptions {
  /** The daemon's origin; default: the page's own ('' = relative URLs). */
  baseUrl?: string;
  /** Called on every 401: the session expired or was never there (the console shows its login page). */
  onUnauthorized?: () => void;
  /** Called when the daemon stops or starts answering (a restart while the page is open). */
  onReachable?: (reachable: boolean) => void;
  /**
   * The session's proof the login answered (kept by the page in its origin's storage). The
   * cookie alone is refused: a browser sends it to every port of the host, exposed sandbox
   * ports included; the proof stays with this origin.
   */
  sessionProof?: string;
  /** Called when a login gives a new proof (to store it) or a logout ends it (undefined). */
  onSessionProof?: (proof: string | undefined) => void;
}

function unsupported(what: string): never {
  throw new NotSupportedError(`${what} is not available in a browser`, { hint: 'use a download link (BrowserFiles.downloadUrl) or the Node SDK' });
}

/** fetch, JSON and NDJSON, errors as the daemon's typed errors. */
export class FetchTransport implements ApiTransport {
  readonly baseUrl: string | undefined;
  readonly socketPath = undefined;

  /** Sent as X-Nook-Session, and as ?session= where no header can go (download links, the terminal's WebSocket). */
  sessionProof: string | undefined;

  constructor(private readonly options: FetchTransportOptions = {}) {
    this.baseUrl = options.baseUrl ?? '';
    this.sessionProof = options.sessionProof;
  }

  setSessionProof(proof: string | undefined): void {
    this.sessionProof = proof;
    this.options.onSessionProof?.(proof);
  }

  /** A URL that authenticates with the cookie plus the proof in its query. */
  withProof(url: string): string {
    if (!this.sessionProof) return url;
    return `${url}${url.includes('?') ? '&' : '?'}${new URLSearchParams({ session: this.sessionProof }).toString()}`;
  }

  authHeaders(): Record<string, string> {
    return {};
  }

  actorHeaders(): Record<string, string> {
    return { 'x-nook-actor': 'console' };
  }

  /** One request; the session cookie goes along (same origin), never a token. */
  async send(method: string, path: string, options: CallOptions & { rawBody?: Blob } = {}): Promise<Response> {
    if (options.bodyFile || options.bodyStream || options.bodyBytes) unsupported('a Node body (file, stream or Buffer)');
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query ?? {})) for (const item of Array.isArray(v) ? v : v === undefined ? [] : [v]) qs.append(k, item);
    const url = `${this.baseUrl ?? ''}${path}${qs.size > 0 ? `?${qs.toString()}` : ''}`;
    const headers: Record<string, string> = { accept: 'application/json, application/x-ndjson', ...this.actorHeaders() };
    if (this.sessionProof) headers['x-nook-session'] = this.sessionProof;
    let body: BodyInit | undefined;
    if (options.rawBody) {
      headers['content-type'] = 'application/octet-stream';
      body = options.rawBody;
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body: body ?? null, credentials: 'same-origin', ...(options.signal ? { signal: options.signal } : {}) });
    } catch (e) {
      if (options.signal?.aborted) throw e;
      this.options.onReachable?.(false);
      throw new DaemonUnavailableError('the nook daemon does not answer', { hint: 'the page reconnects when it is back', cause: e });
    }
    this.options.onReachable?.(true);
    if (res.status === 401) this.options.onUnauthorized?.();
    return res;
  }

  private async failure(res: Response): Promise<never> {
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = { code: 'INTERNAL', message: `HTTP ${res.status}: ${text.slice(0, 200)}` };
    }
    throw toError(body, res.status);
  }

  async json<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const res = await this.send(method, path, options);
    if (!res.ok) return this.failure(res);
    return (await res.json()) as T;
  }

  async *stream<T>(method: string, path: string, options: CallOptions = {}): AsyncGenerator<T> {
    const res = await this.send(method, path, options);
    if (!res.ok) await this.failure(res);
    if (!res.body) return;
    yield* ndjsonValues<T>(textChunks(res.body));
  }

  bytes(): never {
    return unsupported('bytes()');
  }
  rawStream(): never {
    return unsupported('rawStream()');
  }
  download(): never {
    return unsupported('download() to a path');
  }
}

/** Files inside one sandbox, from a browser: a page of a listing, an upload from a File, a download link. */
export class BrowserFiles {
  constructor(
    private readonly transport: FetchTransport,
    private readonly api: Api,
    private readonly ref: string,
  ) {}

  /** One page of a directory, with the directory's total entry count. */
  async list(path: string, page: { offset: number; limit: number }): Promise<{ files: FileInfo[]; total: number }> {
    const r = await this.api.json(routes.listFiles, { ref: this.ref }, { query: { path, offset: String(page.offset), limit: String(page.limit) } });
    return { files: r.files, total: r.total ?? r.files.length };
  }

  /** Writes `file` to `path`; refused before a byte is sent when it is larger than `maxBytes` (the daemon's copy-in bound). */
  async upload(path: string, file: Blob, maxBytes: number): Promise<FileInfo> {
    if (file.size > maxBytes) {
      throw toError({ code: 'PAYLOAD_TOO_LARGE', message: `${file.size} bytes is more than the copy-in limit of ${maxBytes}`, hint: 'copy a smaller file, or raise NOOK_MAX_COPY_IN_BYTES on the daemon' }, 413);
    }
    const res = await this.transport.send('POST', pathOf(routes.writeFile, { ref: this.ref }), { query: { path }, rawBody: file });
    if (!res.ok) {
      const body: unknown = await res.json().catch(() => undefined);
      throw toError(body, res.status);
    }
    return (await res.json()) as FileInfo;
  }

  /** A same-origin link that downloads the file (the session cookie authenticates it). */
  downloadUrl(path: string): string {
    return this.transport.withProof(`${this.transport.baseUrl ?? ''}${pathOf(routes.readFile, { ref: this.ref })}?${new URLSearchParams({ path }).toString()}`);
  }
}

/** One sandbox's resources, addressed by name or id (no fetch until a call). */
export class BrowserSandbox {
  readonly processes: Processes;
  readonly network: Network;
  readonly exposures: Exposures;
  readonly snapshots: SandboxSnapshots;
  readonly volumes: SandboxVolumes;
  readonly files: BrowserFiles;

  constructor(
    private readonly api: Api,
    private readonly transport: FetchTransport,
    readonly ref: string,
  ) {
    const id = (): string => ref;
    this.processes = new Processes(api, id);
    this.network = new Network(api, id);
    this.exposures = new Exposures(api, id);
    this.snapshots = new SandboxSnapshots(api, id);
    this.volumes = new SandboxVolumes(api, id);
    this.files = new BrowserFiles(transport, api, ref);
  }

  info(): Promise<SandboxInfo> {
    return this.api.json(routes.getSandbox, { ref: this.ref });
  }
  usage(): Promise<Usage> {
    return this.api.json(routes.usage, { ref: this.ref });
  }
  stop(): Promise<SandboxInfo> {
    return this.api.json(routes.stopSandbox, { ref: this.ref }, { body: {} });
  }
  resume(): Promise<SandboxInfo> {
    return this.api.json(routes.resumeSandbox, { ref: this.ref });
  }
  destroy(): Promise<unknown> {
    return this.api.json(routes.destroySandbox, { ref: this.ref });
  }
  fork(options: ForkRequest = {}): Promise<{ sandboxes: SandboxInfo[] }> {
    return this.api.json(routes.fork, { ref: this.ref }, { body: options });
  }
  /** The terminal's WebSocket URL (same origin; the cookie authenticates it). */
  ptyUrl(base: string): string {
    return this.transport.withProof(new URL(pathOf(routes.pty, { ref: this.ref }), base.replace(/^http/, 'ws')).toString());
  }
}

/** The browser's NookClient: what the web console uses, and only this. */
export class BrowserClient {
  readonly transport: FetchTransport;
  readonly api: Api;
  readonly audit: Audit;
  readonly volumes: Volumes;
  readonly snapshots: Snapshots;
  readonly images: Images;
  readonly templates: Templates;

  constructor(options: FetchTransportOptions = {}) {
    this.transport = new FetchTransport(options);
    this.api = new Api(this.transport);
    this.audit = new Audit(this.api);
    this.volumes = new Volumes(this.api);
    this.snapshots = new Snapshots(this.api);
    this.images = new Images(this.api);
    this.templates = new Templates(this.api);
  }

  /** Trades the one-time token of a `nook console` link for the session cookie. */
  async login(token: string): Promise<void> {
    if (!token) throw new InvalidArgumentError('no login token', { hint: 'open the link `nook console` prints' });
    const res = await this.transport.send('POST', '/console/session', { body: { token } });
    if (!res.ok) throw toError(await res.json().catch(() => undefined), res.status);
    const { proof } = (await res.json()) as { proof?: unknown };
    this.transport.setSessionProof(typeof proof === 'string' ? proof : undefined);
  }

  async logout(): Promise<void> {
    await this.transport.send('DELETE', '/console/session');
    this.transport.setSessionProof(undefined);
  }

  health(): Promise<Health> {
    return this.api.json(routes.health, {});
  }

  async listSandboxes(filter: { labels?: Record<string, string>; state?: SandboxState } = {}): Promise<SandboxInfo[]> {
    const label = Object.entries(filter.labels ?? {}).map(([k, v]) => `${k}=${v}`);
    return (await this.api.json(routes.listSandboxes, {}, { query: { label, state: filter.state } })).sandboxes;
  }

  createSandbox(body: CreateSandboxRequest): Promise<SandboxInfo> {
    return this.api.json(routes.createSandbox, {}, { body });
  }

  sandbox(ref: string): BrowserSandbox {
    return new BrowserSandbox(this.api, this.transport, ref);
  }

  /** Lifecycle events as they happen; ends when the signal aborts or the daemon goes away. */
  events(signal: AbortSignal): AsyncGenerator<NookEvent> {
    return this.api.stream(routes.events, {}, { signal });
  }
}

/** A fetch body as text chunks (a ReadableStream is not async-iterable in every browser). */
async function* textChunks(body: NonNullable<Response['body']>): AsyncGenerator<string> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    yield value;
  }
}
