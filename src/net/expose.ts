/**
 * An exposed sandbox port: a listener on the host's loopback that lets a connection through
 * to the sandbox only when its first request carries the exposure's token (`?token=`,
 * `Authorization: Bearer`, `X-Nook-Token`, or the first path segment `/TOKEN/...`; never a
 * cookie). After that the connection is a plain byte pipe, so HTTP keep-alive and WebSocket
 * upgrades pass unchanged.
 *
 * Anyone on the host can connect before the token is checked, so the unauthenticated part is
 * bounded: head size, time to send it, connections at once; malformed input is a 400.
 */
import { timingSafeEqual } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';

const MAX_HEAD_BYTES = 16 * 1024;

export interface ExposureLimits {
  /** Connections at once (authenticated or not); more are refused with 503. */
  maxConnections: number;
  /** Time for a client to send its first request head. */
  headTimeoutMs: number;
}

/** The token a request head carries; null when none; undefined when the head is malformed. */
export function tokenOf(head: string): string | null | undefined {
  const [requestLine = '', ...lines] = head.split('\r\n');
  const target = requestLine.split(' ')[1] ?? '';
  const q = /[?&]token=([^&\s#]+)/.exec(target);
  if (q?.[1]) {
    try {
      return decodeURIComponent(q[1]);
    } catch {
      return undefined; // bad percent-encoding (`?token=%`): a 400, not an exception
    }
  }
  for (const line of lines) {
    const m = /^(authorization|x-nook-token):\s*(?:bearer\s+)?(.+)$/i.exec(line);
    if (m?.[2]) return m[2].trim();
  }
  return null;
}

/**
 * The first segment of the request's path (`GET /TOKEN/vnc.html`), the token of links whose
 * every relative URL must carry it (the desktop viewer). Never a cookie: browsers send a host's
 * cookies to all its ports (RFC 6265 §8.5), so a cookie token would reach every other exposed port.
 */
export function pathToken(head: string): string | null {
  const target = (head.split('\r\n', 1)[0] ?? '').split(' ')[1] ?? '';
  return /^\/([A-Za-z0-9_-]{16,128})(?:[/?#]|$)/.exec(target)?.[1] ?? null;
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function answer(client: Socket, status: string, body: string): void {
  client.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  // Destroyed soon even if the client never closes its side.
  const linger = setTimeout(() => client.destroy(), 2000);
  linger.unref();
  client.once('close', () => clearTimeout(linger));
}

export class ExposureListener {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private clients = 0;

  constructor(
    private readonly token: string,
    /** Host unix socket a bridge forwards to the sandbox's port. */
    private readonly targetSocket: string,
    private readonly limits: ExposureLimits = { maxConnections: 256, headTimeoutMs: 10_000 },
  ) {}

  /** Listens on 127.0.0.1:hostPort (0 = any free port) and returns the port. */
  async start(hostPort: number): Promise<number> {
    const server = createServer((client) => this.onConnection(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(hostPort, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    return typeof address === 'object' && address ? address.port : hostPort;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private onConnection(client: Socket): void {
    client.on('error', () => undefined);
    if (this.clients >= this.limits.maxConnections) {
      answer(client, '503 Service Unavailable', 'nook: too many connections to this exposed port\n');
      return;
    }
    this.clients++;
    this.sockets.add(client);
    client.on('close', () => {
      this.clients--;
      this.sockets.delete(client);
    });
    let head = Buffer.alloc(0);
    const headTimer = setTimeout(() => {
      client.off('data', onData);
      answer(client, '408 Request Timeout', 'nook: no complete request head in time\n');
    }, this.limits.headTimeoutMs);
    headTimer.unref();
    client.on('close', () => clearTimeout(headTimer));
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 && head.length < MAX_HEAD_BYTES) return;
      clearTimeout(headTimer);
      client.off('data', onData);
      client.pause();
      const text = head.subarray(0, end < 0 ? head.length : end).toString('latin1');
      const token = tokenOf(text);
      if (token === undefined) return answer(client, '400 Bad Request', 'nook: malformed token (bad percent-encoding)\n');
      // An explicit token decides; without one, the path's first segment may be the token.
      const given = token ?? pathToken(text);
      if (!given || !sameToken(given, this.token)) {
        return answer(client, '401 Unauthorized', 'nook: this port needs its token: add ?token=..., send Authorization: Bearer ..., or start the path with /TOKEN/\n');
      }
      this.pipeToSandbox(client, head);
    };
    client.on('data', onData);
  }

  private pipeToSandbox(client: Socket, head: Buffer): void {
    const upstream = connect(this.targetSocket);
    this.sockets.add(upstream);
    upstream.on('close', () => {
      this.sockets.delete(upstream);
      client.end();
    });
    upstream.on('error', () => {
      client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nnook: nothing answers on that port in the sandbox\n');
    });
    upstream.on('connect', () => {
      upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    client.on('close', () => upstream.destroy());
  }
}
