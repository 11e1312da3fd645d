import { createReadStream, createWriteStream, renameSync, statSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { hostname, userInfo } from 'node:os';
import { DaemonUnavailableError, InvalidStateError } from '../api/error-classes.js';
import { toError } from './errors.js';
import { ndjsonValues } from './ndjson.js';

// Where toError lived before the browser transport needed it without node:http.
export { toError } from './errors.js';

export interface TransportOptions {
  /** Unix socket of the daemon (default: NOOK_SOCKET or /run/nook/nook.sock). */
  socketPath?: string;
  /** http(s)://host:port of a TCP listener (default: NOOK_URL); needs `token`. */
  baseUrl?: string;
  /** Bearer token for the TCP listener (default: NOOK_TOKEN). */
  token?: string;
  /** Who is acting, for the audit log (default: user@host). */
  actor?: string;
  /**
   * Called (once per transport) when no daemon answers (no socket, or nothing listening:
   * the request never left). Resolving true (e.g. it started one) makes the call once more;
   * false keeps the error. Calls with a streamed body are never made twice.
   */
  whenUnavailable?: () => Promise<boolean>;
}

export interface CallOptions {
  body?: unknown;
  /** A file streamed as the raw request body (application/x-tar) instead of JSON. */
  bodyFile?: string;
  /** Raw bytes as the request body (application/octet-stream). */
  bodyBytes?: Buffer;
  /** A stream sent chunked as the raw request body (application/x-tar). */
  bodyStream?: NodeJS.ReadableStream;
  /** Overrides the content type of a bodyFile or bodyStream. */
  contentType?: string;
  query?: Record<string, string | string[] | undefined>;
  signal?: AbortSignal;
}

/** The HTTP layer under the SDK: JSON in, JSON or NDJSON out, errors as NookError. */
export class Transport {
  readonly socketPath: string | undefined;
  readonly baseUrl: string | undefined;
  private readonly token: string | undefined;
  private readonly actor: string;
  private readonly whenUnavailable: (() => Promise<boolean>) | undefined;
  private unavailableHandled: Promise<boolean> | undefined;

  constructor(options: TransportOptions = {}) {
    this.whenUnavailable = options.whenUnavailable;
    this.baseUrl = options.baseUrl ?? process.env.NOOK_URL;
    this.socketPath = this.baseUrl ? undefined : (options.socketPath ?? process.env.NOOK_SOCKET ?? '/run/nook/nook.sock');
    this.token = options.token ?? process.env.NOOK_TOKEN;
    this.actor = options.actor ?? `${userInfo().username}@${hostname()}`;
  }

  /** Who is calling (the audit log's actor): sent on every request, WebSockets too. */
  actorHeaders(): Record<string, string> {
    return { 'x-nook-actor': this.actor };
  }

  /** Headers that authenticate on the TCP listener (none on the unix socket). */
  authHeaders(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private async open(method: string, path: string, options: CallOptions): Promise<IncomingMessage> {
    try {
      return await this.openOnce(method, path, options);
    } catch (e) {
      if (!(e instanceof DaemonUnavailableError) || !this.whenUnavailable || options.bodyStream) throw e;
      this.unavailableHandled ??= this.whenUnavailable();
      if (!(await this.unavailableHandled)) throw e;
      return this.openOnce(method, path, options);
    }
  }

  private async openOnce(method: string, path: string, options: CallOptions): Promise<IncomingMessage> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query ?? {})) {
      for (const item of Array.isArray(v) ? v : v === undefined ? [] : [v]) qs.append(k, item);
    }
    const fullPath = qs.size > 0 ? `${path}?${qs.toString()}` : path;
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const headers: Record<string, string> = { accept: 'application/json, application/x-ndjson, application/x-tar', 'x-nook-actor': this.actor };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    if (options.bodyFile) {
      headers['content-type'] = 'application/x-tar';
      headers['content-length'] = String(statSync(options.bodyFile).size);
    }
    if (options.bodyStream) headers['content-type'] = 'application/x-tar';
    if (options.contentType && (options.bodyFile || options.bodyStream)) headers['content-type'] = options.contentType;
    if (options.bodyBytes) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = String(options.bodyBytes.length);
    }
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    // node:https (and TLS with it) is loaded only for an https daemon: a local call starts faster.
    const requestHttps = this.baseUrl && new URL(this.baseUrl).protocol === 'https:' ? (await import('node:https')).request : undefined;
    return new Promise((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        if (options.signal?.aborted) return reject(new InvalidStateError('the request was aborted'));
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
          return reject(
            new DaemonUnavailableError(`no nook daemon answers at ${this.socketPath ?? this.baseUrl}`, {
              hint: 'start it with: nook daemon (the CLI starts it for you)',
              cause: e,
            }),
          );
        }
        reject(e);
      };
      // A fresh connection per call (agent: false): Node's default agent keeps sockets
      // alive and may reuse one the daemon has just closed, failing the call with EPIPE.
      const req = this.baseUrl
        ? (requestHttps ?? request)(new URL(fullPath, this.baseUrl), { method, headers, signal: options.signal, agent: false })
        : request({ socketPath: this.socketPath, path: fullPath, method, headers, signal: options.signal, agent: false });
      req.on('error', onError);
      req.on('response', resolve);
      // 1 MiB reads: a sixteenth of the chunks (and daemon-side frames) of the 64 KiB default.
      if (options.bodyFile) createReadStream(options.bodyFile, { highWaterMark: 1 << 20 }).on('error', (e) => req.destroy(e)).pipe(req);
      else if (options.bodyStream) options.bodyStream.on('error', (e: Error) => req.destroy(e)).pipe(req);
      else req.end(options.bodyBytes ?? payload);
    });
  }

  /** One JSON request; throws NookError for an error answer. */
  async json<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const res = await this.open(method, path, options);
    const text = await readAll(res);
    const parsed = parseJson(text);
    if ((res.statusCode ?? 500) >= 400) throw toError(parsed, res.statusCode ?? 500);
    return parsed as T;
  }

  /** A request answered with raw bytes. */
  async bytes(path: string, options: CallOptions = {}): Promise<Buffer> {
    const res = await this.open('GET', path, options);
    const chunks: Buffer[] = [];
    for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
    const body = Buffer.concat(chunks);
    if ((res.statusCode ?? 500) >= 400) throw toError(parseJson(body.toString('utf8')), res.statusCode ?? 500);
    return body;
  }

  /** A request whose answer (a tar archive) is written to `dest`; returns its size in bytes. */
  async download(path: string, dest: string, options: CallOptions = {}): Promise<number> {
    const res = await this.open('GET', path, options);
    if ((res.statusCode ?? 500) >= 400) throw toError(parseJson(await readAll(res)), res.statusCode ?? 500);
    const tmp = `${dest}.part`;
    await pipeline(res, createWriteStream(tmp, { mode: 0o644 }));
    renameSync(tmp, dest);
    return statSync(dest).size;
  }

  /** A request answered with a raw stream (a tar archive), after the status was checked. */
  async rawStream(path: string, options: CallOptions = {}): Promise<IncomingMessage> {
    const res = await this.open('GET', path, options);
    if ((res.statusCode ?? 500) >= 400) throw toError(parseJson(await readAll(res)), res.statusCode ?? 500);
    return res;
  }

  /** A request answered with NDJSON: yields each event as it arrives. */
  async *stream<T>(method: string, path: string, options: CallOptions = {}): AsyncGenerator<T> {
    const res = await this.open(method, path, options);
    if ((res.statusCode ?? 500) >= 400) throw toError(parseJson(await readAll(res)), res.statusCode ?? 500);
    res.setEncoding('utf8');
    yield* ndjsonValues<T>(res as AsyncIterable<string>);
  }
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return { code: 'INTERNAL', message: `the daemon sent something that is not JSON: ${text.slice(0, 200)}` };
  }
}
