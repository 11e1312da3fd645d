/**
 * The egress proxy of one sandbox: HTTP absolute-URI requests and CONNECT tunnels (no TLS
 * interception), on a host unix socket that a bridge inside the sandbox's network
 * namespace forwards 127.0.0.1:3128 to. It resolves names itself (the sandbox has no DNS),
 * checks the live policy on every request, and reports every decision.
 */
import { promises as dns } from 'node:dns';
import { promises as fsp } from 'node:fs';
import { connect, createServer, isIP, type Server, type Socket } from 'node:net';
import { decide, type NetworkPolicy } from './policy.js';

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

/**
 * Name resolution for the proxy. NOOK_PROXY_HOSTS ("name=address,...") is the operator's
 * own map, trusted like an explicit listing (tests map names to loopback servers with it);
 * everything else goes to the host's resolver.
 */
export class Resolver {
  private readonly fixed = new Map<string, string>();

  constructor(hostsSpec = process.env.NOOK_PROXY_HOSTS ?? '') {
    for (const pair of hostsSpec.split(',').filter(Boolean)) {
      const [name, address] = pair.split('=');
      if (name && address && isIP(address)) this.fixed.set(name.toLowerCase(), address);
    }
  }

  async resolve(host: string): Promise<{ address: string; trusted: boolean }> {
    if (isIP(host)) return { address: host, trusted: false };
    const fixed = this.fixed.get(host.toLowerCase());
    if (fixed) return { address: fixed, trusted: true };
    const r = await dns.lookup(host);
    return { address: r.address, trusted: false };
  }
}

function denyText(reason: string, host: string): string {
  return `nook: connection to ${host} refused: ${reason}\nask for access: nook network allow <sandbox> ${host}\n`;
}

/** At most this much request head (request line + headers) is read before refusing. */
const MAX_HEAD_BYTES = 64 * 1024;

/**
 * Speaks the proxy protocol on raw sockets: it reads one request head, decides, and then
 * only pipes bytes (a CONNECT tunnel, or a plain request rewritten to origin form with
 * `Connection: close`). No HTTP parsing of responses, so a download runs at pipe speed.
 */
export class EgressProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly socketPath: string,
    private readonly hooks: ProxyHooks,
    private readonly resolver: Resolver,
  ) {}

  async start(): Promise<void> {
    await fsp.rm(this.socketPath, { force: true });
    // Half-open: a client that finished sending (nc, curl --data) still gets the whole answer.
    const server = createServer({ allowHalfOpen: true }, (client) => this.onClient(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    await fsp.chmod(this.socketPath, 0o600);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await fsp.rm(this.socketPath, { force: true });
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
  }

  private async check(host: string, port: number): Promise<{ allowed: boolean; reason: string; address: string; learn: boolean }> {
    const policy = this.hooks.policy();
    let resolved: { address: string; trusted: boolean };
    try {
      resolved = await this.resolver.resolve(host);
    } catch {
      return { allowed: false, reason: `${host} does not resolve`, address: '', learn: policy.mode === 'learn' };
    }
    if (policy.mode === 'none') return { allowed: false, reason: 'this sandbox has no network', address: resolved.address, learn: false };
    const v = decide(policy, host, port, resolved.address, resolved.trusted);
    return { ...v, address: resolved.address, learn: policy.mode === 'learn' };
  }

  private onClient(client: Socket): void {
    this.track(client);
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_HEAD_BYTES) reply(client, 431, 'request head too large');
        return;
      }
      client.off('data', onData);
      client.pause();
      void this.route(client, buf.subarray(0, end).toString('latin1'), buf.subarray(end + 4));
    };
    client.on('data', onData);
  }

  private async route(client: Socket, head: string, rest: Buffer): Promise<void> {
    const started = Date.now();
    const [requestLine = '', ...headerLines] = head.split('\r\n');
    const [method = '', target = '', version = 'HTTP/1.1'] = requestLine.split(' ');
    let host: string;
    let port: number;
    let upstreamHead: Buffer | null = null;
    if (method === 'CONNECT') {
      const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(target);
      if (!m) return reply(client, 400, 'CONNECT needs host:port');
      host = m[1] ?? '';
      port = Number(m[2]);
    } else {
      let url: URL;
      try {
        url = new URL(target);
      } catch {
        return reply(client, 400, 'this is an HTTP proxy: send absolute URLs, or CONNECT for https');
      }
      if (url.protocol !== 'http:') return reply(client, 400, 'only http:// URLs go as plain requests; https uses CONNECT');
      host = url.hostname.replace(/^\[|\]$/g, '');
      port = Number(url.port || 80);
      // Origin form, hop-by-hop proxy headers dropped, one request per connection.
      const headers = headerLines.filter((l) => !/^(proxy-connection|proxy-authorization|connection|keep-alive):/i.test(l));
      upstreamHead = Buffer.from(`${method} ${url.pathname}${url.search} ${version}\r\n${[...headers, 'Connection: close'].join('\r\n')}\r\n\r\n`, 'latin1');
    }
    const verdict = await this.check(host, port);
    const base = { host, port, method: method === 'CONNECT' ? 'CONNECT' : 'HTTP', allowed: verdict.allowed, reason: verdict.reason, learn: verdict.learn };
    if (!verdict.allowed) {
      this.hooks.record({ ...base, bytesUp: 0, bytesDown: 0, durationMs: Date.now() - started });
      return reply(client, 403, denyText(verdict.reason, host), verdict.reason);
    }
    const upstream = connect({ port, host: verdict.address, allowHalfOpen: true });
    this.track(upstream);
    let up = rest.length;
    let down = 0;
    let connected = false;
    upstream.on('connect', () => {
      connected = true;
      if (upstreamHead) upstream.write(upstreamHead);
      else client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (rest.length) upstream.write(rest);
      client.on('data', (b: Buffer) => (up += b.length));
      upstream.on('data', (b: Buffer) => (down += b.length));
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    let recorded = false;
    const finish = (error?: string): void => {
      if (recorded) return;
      recorded = true;
      this.hooks.record({ ...base, reason: error ? `${verdict.reason}; upstream failed: ${error}` : verdict.reason, bytesUp: up, bytesDown: down, durationMs: Date.now() - started });
    };
    upstream.on('error', (e) => {
      if (!connected) reply(client, 502, `${host}:${port} failed: ${e.message}`);
      else client.destroy();
      finish(e.message);
    });
    upstream.on('close', () => finish());
    client.on('close', () => upstream.destroy());
  }
}

function reply(client: Socket, status: number, text: string, denied?: string): void {
  const reason = { 400: 'Bad Request', 403: 'Forbidden', 431: 'Request Header Fields Too Large', 502: 'Bad Gateway' }[status] ?? 'Error';
  const body = text.endsWith('\n') ? text : `nook: ${text}\n`;
  client.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\n${denied ? `X-Nook-Denied: ${denied}\r\n` : ''}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
