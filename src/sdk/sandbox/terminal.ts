// ws is loaded when a terminal opens: the CLI's other commands start without it.
import type WebSocket from 'ws';
import { RuntimeError } from '../../api/error-classes.js';
import { routeRefs as routes } from '../../api/route-refs.js';
import type { PtyServerMessage } from '../../api/schemas.js';
import { toArgv, type Command } from '../exec.js';
import { pathOf, type ApiTransport } from '../routes.js';
import { toError } from '../errors.js';

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

/** Interactive terminals (a PTY over a WebSocket). `sandbox.pty`. */
export class Terminals {
  constructor(
    private readonly transport: ApiTransport,
    private readonly ref: () => string,
  ) {}

  async create(options: PtyOptions): Promise<PtySession> {
    const { default: WebSocketClass } = await import('ws');
    return openPty(WebSocketClass, this.transport, pathOf(routes.pty, { ref: this.ref() }), options);
  }
}

function errorFromBody(body: string, status: number): Error {
  let parsed: unknown = {};
  try {
    parsed = JSON.parse(body) as unknown;
  } catch {
    // not JSON: toError says HTTP <status>
  }
  return toError(parsed, status);
}

function openPty(WebSocket: typeof import('ws').default, transport: ApiTransport, path: string, options: PtyOptions): Promise<PtySession> {
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
        const err = errorFromBody(body, res.statusCode ?? 500);
        reject(err);
        failed(err);
      });
    });
    ws.on('error', (e) => {
      reject(e);
      failed(e);
    });
    ws.on('close', () => failed(new RuntimeError('the terminal connection closed without an exit status')));
  });
}
