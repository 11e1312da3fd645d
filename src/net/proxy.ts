/**
 * The egress proxy of one sandbox: HTTP absolute-URI requests and CONNECT tunnels (no TLS
 * interception), on a host unix socket that a bridge inside the sandbox's network
 * namespace forwards 127.0.0.1:3128 to. It resolves names itself (the sandbox has no DNS),
 * checks the live policy on every request, and reports every decision.
 */
import { promises as dns } from 'node:dns';
import { promises as fsp } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
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

export class EgressProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Duplex>();

  constructor(
    private readonly socketPath: string,
    private readonly hooks: ProxyHooks,
    private readonly resolver: Resolver,
  ) {}

  async start(): Promise<void> {
    await fsp.rm(this.socketPath, { force: true });
    const server = createServer((req, res) => void this.onRequest(req, res));
    server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.onConnect(req, socket, head));
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
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

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('nook: this is an HTTP proxy: send absolute URLs, or CONNECT for https\n');
      return;
    }
    if (url.protocol !== 'http:') {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('nook: only http:// URLs go as plain requests; https uses CONNECT\n');
      return;
    }
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || 80);
    const verdict = await this.check(host, port);
    const base = { host, port, method: 'HTTP', allowed: verdict.allowed, reason: verdict.reason, learn: verdict.learn };
    if (!verdict.allowed) {
      this.hooks.record({ ...base, bytesUp: 0, bytesDown: 0, durationMs: Date.now() - started });
      res.writeHead(403, { 'content-type': 'text/plain', 'x-nook-denied': verdict.reason }).end(denyText(verdict.reason, host));
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    let up = 0;
    let down = 0;
    const upstream = httpRequest({ host: verdict.address, port, method: req.method, path: `${url.pathname}${url.search}`, headers, setHost: false });
    upstream.on('response', (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.on('data', (b: Buffer) => (down += b.length));
      r.pipe(res);
      r.on('end', () => this.hooks.record({ ...base, bytesUp: up, bytesDown: down, durationMs: Date.now() - started }));
    });
    upstream.on('error', (e) => {
      this.hooks.record({ ...base, allowed: true, reason: `${verdict.reason}; upstream failed: ${e.message}`, bytesUp: up, bytesDown: down, durationMs: Date.now() - started });
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`nook: ${host}:${port} failed: ${e.message}\n`);
    });
    req.on('data', (b: Buffer) => (up += b.length));
    req.pipe(upstream);
  }

  private async onConnect(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    const started = Date.now();
    client.on('error', () => undefined);
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(req.url ?? '');
    if (!m) {
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nnook: CONNECT needs host:port\n');
      return;
    }
    const host = m[1] ?? '';
    const port = Number(m[2]);
    const verdict = await this.check(host, port);
    const base = { host, port, method: 'CONNECT', allowed: verdict.allowed, reason: verdict.reason, learn: verdict.learn };
    if (!verdict.allowed) {
      this.hooks.record({ ...base, bytesUp: 0, bytesDown: 0, durationMs: Date.now() - started });
      const body = denyText(verdict.reason, host);
      client.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Nook-Denied: ${verdict.reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    let up = head.length;
    let down = 0;
    const upstream = connect(port, verdict.address);
    this.sockets.add(upstream);
    upstream.on('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      client.on('data', (b: Buffer) => (up += b.length));
      upstream.on('data', (b: Buffer) => (down += b.length));
      client.pipe(upstream);
      upstream.pipe(client);
    });
    let recorded = false;
    const finish = (error?: string): void => {
      if (recorded) return;
      recorded = true;
      this.sockets.delete(upstream);
      this.hooks.record({ ...base, reason: error ? `${verdict.reason}; upstream failed: ${error}` : verdict.reason, bytesUp: up, bytesDown: down, durationMs: Date.now() - started });
    };
    upstream.on('error', (e) => {
      if (down === 0 && up === head.length) client.end(`HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nnook: ${host}:${port} failed: ${e.message}\n`);
      else client.destroy();
      finish(e.message);
    });
    upstream.on('close', () => {
      client.end();
      finish();
    });
    client.on('close', () => upstream.destroy());
  }
}
