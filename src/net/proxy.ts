/**
 * The egress proxy of one sandbox: HTTP absolute-URI requests and CONNECT tunnels (no TLS
 * interception), served by the daemon on a listener inside the sandbox's network namespace
 * (127.0.0.1:3128, see listenInNetns). It resolves names itself (the sandbox has no DNS),
 * checks the live policy on every request, and reports every decision.
 *
 * Everything a sandbox sends is hostile: the head is parsed strictly (http-head.ts), names
 * the policy does not cover are refused before any lookup, and every connection is bounded
 * in number, in head size and in time, so one sandbox cannot hold the daemon's descriptors.
 */
import { promises as dns } from 'node:dns';
import { connect, createServer, isIP, type ListenOptions, type Server, type Socket } from 'node:net';
import { log } from '../util/log.js';
import { MAX_HEAD_BYTES, parseRequestHead, type ProxyRequest } from './http-head.js';
import { decide, precheck, type NetworkPolicy, type Verdict } from './policy.js';
import { SpliceRelay } from './relay.js';
import { positiveInt } from '../util/env.js';

export const PROXY_PORT_IN_SANDBOX = 3128;

export interface Decision {
  host: string;
  port: number;
  method: string;
  allowed: boolean;
  reason: string;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  learn: boolean;
}

export interface ProxyHooks {
  /** The sandbox's policy right now (changes apply to the next request). */
  policy(): NetworkPolicy;
  record(decision: Decision): void;
}

/** The lookup boundary of the proxy (a unit test can count its calls). */
export interface NameResolver {
  resolve(host: string): Promise<{ address: string; trusted: boolean }>;
}

export interface ProxyLimits {
  /** Open connections per sandbox; more are answered 503 and closed. */
  maxConnections: number;
  /** Time for a client to send its whole request head. */
  headTimeoutMs: number;
  /** A tunnel or request with no traffic either way for this long is closed. */
  idleTimeoutMs: number;
}

/** Node's stream handle under a net.Socket (internal, stable since Node 0.x; checked before use). */
interface StreamHandle {
  readStop(): number;
  reading: boolean;
}

/**
 * Stops the kernel-level reading of a socket and returns what Node already buffered. After
 * this nothing more is read here: later bytes stay in the socket for the relay. pause() alone
 * would not do (Node keeps reading into its buffer, and a handed-over socket's late reads are
 * dropped). Read and stop run in one synchronous block, so no read callback comes between.
 * Null when the handle is not what we expect (the proxy then relays in Node).
 */
function takeBuffered(s: Socket): Buffer[] | null {
  const h = (s as unknown as { _handle?: Partial<StreamHandle> | null })._handle;
  if (!h || typeof h.readStop !== 'function') return null;
  const out: Buffer[] = [];
  for (let b = s.read() as Buffer | null; b !== null; b = s.read() as Buffer | null) out.push(b);
  h.reading = false;
  h.readStop();
  return out;
}

function writeAll(s: Socket, bufs: Buffer[]): Promise<void> {
  const data = Buffer.concat(bufs);
  if (data.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => s.write(data, (e) => (e ? reject(e) : resolve())));
}

/** NOOK_PROXY_MAX_CONNECTIONS (256), NOOK_PROXY_HEAD_TIMEOUT_MS (10 s), NOOK_PROXY_IDLE_TIMEOUT_MS (10 min). */
export function proxyLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): ProxyLimits {
  return {
    maxConnections: positiveInt(env.NOOK_PROXY_MAX_CONNECTIONS, 256),
    headTimeoutMs: positiveInt(env.NOOK_PROXY_HEAD_TIMEOUT_MS, 10_000),
    idleTimeoutMs: positiveInt(env.NOOK_PROXY_IDLE_TIMEOUT_MS, 600_000),
  };
}

/**
 * Name resolution for the proxy. NOOK_PROXY_HOSTS ("name=address,...") is the operator's
 * own map, trusted like an explicit listing (tests map names to loopback servers with it).
 * NOOK_PROXY_DNS ("address[:port]") names the nameserver to ask; without it, the host's
 * resolver.
 */
export class Resolver implements NameResolver {
  private readonly fixed = new Map<string, string>();
  private readonly server: dns.Resolver | undefined;

  constructor(hostsSpec = process.env.NOOK_PROXY_HOSTS ?? '', nameserver = process.env.NOOK_PROXY_DNS ?? '') {
    for (const pair of hostsSpec.split(',').filter(Boolean)) {
      const [name, address] = pair.split('=');
      if (name && address && isIP(address)) this.fixed.set(name.toLowerCase(), address);
    }
    if (nameserver) {
      this.server = new dns.Resolver({ timeout: 3000, tries: 1 });
      this.server.setServers([nameserver]);
    }
  }

  async resolve(host: string): Promise<{ address: string; trusted: boolean }> {
    if (isIP(host)) return { address: host, trusted: false };
    const fixed = this.fixed.get(host.toLowerCase());
    if (fixed) return { address: fixed, trusted: true };
    if (this.server) {
      const [address] = await this.server.resolve4(host);
      if (!address) throw new Error(`${host} has no address`);
      return { address, trusted: false };
    }
    const r = await dns.lookup(host);
    return { address: r.address, trusted: false };
  }
}

function denyText(reason: string, host: string): string {
  return `nook: connection to ${host} refused: ${reason}\nask for access: nook network allow <sandbox> ${host}\n`;
}

/** After an error answer, the client has this long to go before its socket is destroyed. */
const REPLY_LINGER_MS = 2000;
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/**
 * Answers with an error and closes. The client's further bytes are drained (so the close is a
 * FIN, not a reset that could discard the answer) and the socket is destroyed after a
 * short linger even if the client never closes its side.
 */
function reply(client: Socket, status: number, text: string, denied?: string): void {
  if (client.destroyed) return;
  const body = text.endsWith('\n') ? text : `nook: ${text}\n`;
  client.removeAllListeners('data');
  client.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: text/plain\r\n${denied ? `X-Nook-Denied: ${denied}\r\n` : ''}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  client.resume();
  const linger = setTimeout(() => client.destroy(), REPLY_LINGER_MS);
  linger.unref();
  client.once('close', () => clearTimeout(linger));
}

/**
 * Speaks the proxy protocol on raw sockets: it reads one request head, decides, and then
 * only pipes bytes (a CONNECT tunnel, or a plain request rewritten to origin form with
 * `Connection: close`). No HTTP parsing of responses, so a download runs at pipe speed.
 */
export class EgressProxy {
  private server: Server | undefined;
  private readonly clients = new Set<Socket>();
  private readonly upstreams = new Set<Socket>();
  private readonly relay: SpliceRelay | undefined;
  /** Set by close(): a decided connection is then dropped, never handed to the relay. */
  private closing = false;

  /** `relay`: nook-init, whose splice relay carries the bytes once a connection is decided, and the sandbox's id. */
  constructor(
    private readonly hooks: ProxyHooks,
    private readonly resolver: NameResolver,
    private readonly limits: ProxyLimits = proxyLimitsFromEnv(),
    relay?: { binary: string; label: string },
  ) {
    if (relay) this.relay = new SpliceRelay(relay.binary, limits.idleTimeoutMs, relay.label);
  }

  /**
   * Serves on `target`: a listening handle handed over from the sandbox's namespace, or
   * listen options (tests). Half-open, so a client that finished sending (nc, curl --data)
   * still gets the whole answer.
   */
  async listen(target: ListenOptions | object): Promise<Server> {
    const server = createServer({ allowHalfOpen: true }, (client) => this.onClient(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(target, () => resolve());
    });
    server.on('error', (e) => log('egress proxy listener failed', { error: e.message }));
    return server;
  }

  /** Open client connections (for tests and limits). */
  get connectionCount(): number {
    return this.clients.size + (this.relay?.active ?? 0);
  }

  async close(): Promise<void> {
    // No hand-over from here on: one racing the helper's stop would start a new helper.
    this.closing = true;
    // The helper first: the server's close waits on it once it was handed sockets.
    await this.relay?.stop();
    for (const s of [...this.clients, ...this.upstreams]) s.destroy();
    await new Promise<void>((resolve) => (this.server?.listening ? this.server.close(() => resolve()) : resolve()));
  }

  private onClient(client: Socket): void {
    client.on('error', () => undefined);
    if (this.connectionCount >= this.limits.maxConnections) {
      // Past the cap nothing lingers: a flood of connections costs no descriptors beyond the cap.
      reply(client, 503, `too many open connections from this sandbox (at most ${this.limits.maxConnections}; NOOK_PROXY_MAX_CONNECTIONS)`);
      client.destroySoon();
      return;
    }
    this.clients.add(client);
    client.on('close', () => this.clients.delete(client));
    const started = Date.now();
    let buf = Buffer.alloc(0);
    const headTimer = setTimeout(() => reply(client, 408, 'no complete request head in time'), this.limits.headTimeoutMs);
    headTimer.unref();
    const stop = (): void => {
      clearTimeout(headTimer);
      client.off('data', onData);
      client.off('end', onEarlyEnd);
    };
    // The client closed before a whole head: nothing to answer, nothing to keep.
    const onEarlyEnd = (): void => {
      stop();
      client.destroy();
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_HEAD_BYTES) {
          stop();
          reply(client, 431, 'request head too large');
        }
        return;
      }
      stop();
      client.pause();
      const parsed = parseRequestHead(buf.subarray(0, end).toString('latin1'));
      if (!parsed.ok) return reply(client, parsed.status, parsed.text);
      this.route(client, parsed, buf.subarray(end + 4), started).catch((e: Error) => {
        log('egress proxy request failed', { error: e.message.slice(0, 200) });
        client.destroy();
      });
    };
    client.on('data', onData);
    client.on('end', onEarlyEnd);
    client.on('close', () => clearTimeout(headTimer));
  }

  /** The verdict for a request: names the policy does not cover are never resolved. */
  private async judge(policy: NetworkPolicy, host: string, port: number): Promise<Verdict & { address: string }> {
    const early = precheck(policy, host, port);
    if (early) return { ...early, address: '' };
    let resolved: { address: string; trusted: boolean };
    try {
      resolved = await this.resolver.resolve(host);
    } catch {
      return { allowed: false, reason: `${host} does not resolve`, address: '' };
    }
    return { ...decide(policy, host, port, resolved.address, resolved.trusted), address: resolved.address };
  }

  private async route(client: Socket, req: ProxyRequest, rest: Buffer, started: number): Promise<void> {
    const { host, port, upstreamHead } = req;
    const policy = this.hooks.policy();
    const verdict = await this.judge(policy, host, port);
    const base = { host, port, method: req.method, allowed: verdict.allowed, reason: verdict.reason, learn: policy.mode === 'learn' };
    if (!verdict.allowed) {
      this.hooks.record({ ...base, bytesUp: 0, bytesDown: 0, durationMs: Date.now() - started });
      return reply(client, 403, denyText(verdict.reason, host), verdict.reason);
    }
    if (client.destroyed) return;
    const upstream = connect({ port, host: verdict.address, allowHalfOpen: true });
    this.upstreams.add(upstream);
    upstream.on('close', () => this.upstreams.delete(upstream));
    let up = rest.length;
    let down = 0;
    let connected = false;
    const idle = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.setTimeout(this.limits.idleTimeoutMs, idle);
    upstream.setTimeout(this.limits.idleTimeoutMs, idle);
    upstream.on('connect', () => {
      connected = true;
      // Nothing of the destination's is read here: its first bytes belong to the relay.
      upstream.pause();
      const toUpstream = [...(upstreamHead ? [upstreamHead] : []), ...(rest.length ? [rest] : [])];
      const toClient = upstreamHead ? [] : [Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n')];
      const fromClient = this.relay ? takeBuffered(client) : null;
      const fromUpstream = fromClient ? takeBuffered(upstream) : null;
      if (this.relay && fromClient && fromUpstream) {
        const counted = { up: up + fromClient.reduce((n, b) => n + b.length, 0), down: fromUpstream.reduce((n, b) => n + b.length, 0) };
        const sides = { client, upstream, toClient: [...toClient, ...fromUpstream], toUpstream: [...toUpstream, ...fromClient] };
        return void this.handOff(this.relay, sides, counted, () => (handed = true), finish);
      }
      for (const b of toUpstream) upstream.write(b);
      for (const b of toClient) client.write(b);
      client.on('data', (b: Buffer) => (up += b.length));
      upstream.on('data', (b: Buffer) => (down += b.length));
      client.pipe(upstream);
      upstream.pipe(client);
      upstream.resume();
      client.resume();
    });
    let recorded = false;
    // Once handed to the relay, this process's sockets close at once; that is not the end.
    let handed = false;
    const finish = (error?: string, relayed?: { up: number; down: number }): void => {
      if (recorded) return;
      recorded = true;
      if (relayed) {
        up = relayed.up;
        down = relayed.down;
      }
      this.hooks.record({ ...base, reason: error ? `${verdict.reason}; ${relayed ? 'relay ended' : 'upstream failed'}: ${error.slice(0, 200)}` : verdict.reason, bytesUp: up, bytesDown: down, durationMs: Date.now() - started });
    };
    upstream.on('error', (e) => {
      if (handed) return;
      if (!connected) reply(client, 502, `${host}:${port} failed: ${e.message}`);
      else client.destroy();
      finish(e.message);
    });
    // The destination is done: the client gets what is buffered, then its socket goes, even
    // if it never closes its own side (half-open would otherwise hold it forever).
    upstream.on('close', () => {
      if (handed) return;
      finish();
      if (connected) client.destroySoon();
    });
    client.on('close', () => handed || upstream.destroy());
  }

  /**
   * The decided connection goes to the splice relay: what the proxy still owes each side is
   * written first (the rewritten head, bytes read past it, the tunnel's 200), then both
   * sockets leave this process. The decision is recorded when the relay reports its counts.
   */
  private async handOff(
    relay: SpliceRelay,
    { client, upstream, toClient, toUpstream }: { client: Socket; upstream: Socket; toClient: Buffer[]; toUpstream: Buffer[] },
    counted: { up: number; down: number },
    handed: () => void,
    finish: (error?: string, relayed?: { up: number; down: number }) => void,
  ): Promise<void> {
    try {
      await writeAll(client, toClient);
      await writeAll(upstream, toUpstream);
    } catch {
      // The socket's own error and close handlers record and clean up.
      return;
    }
    if (client.destroyed || upstream.destroyed) return;
    if (this.closing) {
      client.destroy();
      upstream.destroy();
      return;
    }
    handed();
    const result = await relay.hand(client, upstream);
    finish(result.error || undefined, { up: counted.up + result.up, down: counted.down + result.down });
  }
}
