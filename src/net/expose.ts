/**
 * An exposed sandbox port: a listener on the host's loopback that lets a connection through
 * to the sandbox only when its first request carries the exposure's token (`?token=`,
 * `Authorization: Bearer`, or `X-Nook-Token`). After that the connection is a plain byte
 * pipe, so HTTP keep-alive and WebSocket upgrades pass unchanged.
 */
import { timingSafeEqual } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';

const MAX_HEAD_BYTES = 16 * 1024;

function tokenOf(head: string): string | null {
  const [requestLine = '', ...lines] = head.split('\r\n');
  const target = requestLine.split(' ')[1] ?? '';
  const q = /[?&]token=([^&\s#]+)/.exec(target);
  if (q?.[1]) return decodeURIComponent(q[1]);
  for (const line of lines) {
    const m = /^(authorization|x-nook-token):\s*(?:bearer\s+)?(.+)$/i.exec(line);
    if (m?.[2]) return m[2].trim();
  }
  return null;
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class ExposureListener {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly token: string,
    /** Host unix socket a bridge forwards to the sandbox's port. */
    private readonly targetSocket: string,
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
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 && head.length < MAX_HEAD_BYTES) return;
      client.off('data', onData);
      client.pause();
      const token = tokenOf(head.subarray(0, end < 0 ? head.length : end).toString('latin1'));
      if (!token || !sameToken(token, this.token)) {
        const body = 'nook: this port needs its token: add ?token=... or send Authorization: Bearer ...\n';
        client.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
        return;
      }
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
    };
    client.on('data', onData);
  }
}
