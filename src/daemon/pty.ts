/**
 * Interactive terminals over WebSocket, on the same listeners as the HTTP API. The first
 * text message starts the session ({type:'start', cols, rows, argv?}); binary messages are
 * terminal bytes both ways; {type:'resize'} changes the window; the server sends
 * {type:'exit', exitCode, signal} and closes. Closing the socket kills the session's tree.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { NookError } from '../api/errors.js';
import { PtyClientMessage, type PtyServerMessage } from '../api/schemas.js';
import type { Nook } from '../core/nook.js';
import type { SessionHandle } from '../runtime/driver.js';
import { log } from '../util/log.js';

const PTY_PATH = /^\/v1\/sandboxes\/([^/?]+)\/pty(?:\?|$)/;
/** The shell a terminal runs unless told otherwise: bash where the image has it. */
const DEFAULT_SHELL = ['/bin/sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi'];

function send(ws: WebSocket, msg: PtyServerMessage): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
}

function reject(socket: Duplex, status: number, error: NookError): void {
  const body = JSON.stringify(error.toJSON());
  socket.end(`HTTP/1.1 ${status} Error\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export function ptyUpgradeHandler(nook: Nook, token?: string): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  return (req, socket, head) => {
    const m = PTY_PATH.exec(req.url ?? '');
    if (!m) return reject(socket, 404, new NookError('NOT_FOUND', `no WebSocket endpoint ${req.url}`));
    const given = Buffer.from(req.headers.authorization ?? '');
    const expected = Buffer.from(`Bearer ${token ?? ''}`);
    if (token !== undefined && (given.length !== expected.length || !timingSafeEqual(given, expected))) {
      return reject(socket, 401, new NookError('UNAUTHORIZED', 'a valid bearer token is required on the TCP listener'));
    }
    let sandbox;
    try {
      sandbox = nook.sandboxes.record(decodeURIComponent(m[1] ?? ''));
    } catch (e) {
      // decodeURIComponent throws a URIError on bad percent-encoding: that is the client's 400.
      if (e instanceof NookError) return reject(socket, 404, e);
      return reject(socket, 400, new NookError('INVALID_ARGUMENT', 'malformed sandbox name in the path (bad percent-encoding)', { hint: 'percent-encode the name with encodeURIComponent' }));
    }
    const sandboxId = sandbox.id;
    wss.handleUpgrade(req, socket, head, (ws) => serve(nook, ws, sandboxId));
  };
}

function serve(nook: Nook, ws: WebSocket, sandboxId: string): void {
  let session: SessionHandle | undefined;
  ws.on('message', (data: RawData, isBinary: boolean) => {
    void (async () => {
      if (isBinary) {
        session?.write(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer));
        return;
      }
      const parsed = PtyClientMessage.safeParse(JSON.parse(data.toString()));
      if (!parsed.success) {
        send(ws, { type: 'error', error: new NookError('INVALID_ARGUMENT', `bad terminal message: ${parsed.error.issues[0]?.message ?? ''}`).toJSON() });
        return;
      }
      const msg = parsed.data;
      if (msg.type === 'resize') session?.resize(msg.cols, msg.rows);
      else if (msg.type === 'kill') session?.kill();
      else if (msg.type === 'start' && !session) {
        try {
          const sb = await nook.sandboxes.ensureRunning(sandboxId);
          const env = { TERM: 'xterm-256color', ...nook.sandboxes.commandEnv(sb, msg.env) };
          const s = nook.runtime.openSession(
            sandboxId,
            { argv: msg.argv ?? DEFAULT_SHELL, env, cwd: msg.cwd ?? sb.spec.cwd, ...nook.sandboxes.commandUser(sb, msg.user), tty: { cols: msg.cols, rows: msg.rows } },
            { onStdout: (b) => ws.readyState === ws.OPEN && ws.send(b), onStderr: (b) => ws.readyState === ws.OPEN && ws.send(b) },
          );
          session = s;
          const end = await s.exited.catch(() => ({ exitCode: 137, signal: 'SIGKILL' }));
          send(ws, { type: 'exit', exitCode: end.exitCode, signal: end.signal });
          ws.close(1000);
        } catch (e) {
          const err = e instanceof NookError ? e : new NookError('INTERNAL', (e as Error).message);
          send(ws, { type: 'error', error: err.toJSON() });
          ws.close(1011);
        }
      }
    })().catch((e: Error) => log('pty message failed', { error: e.message }));
  });
  ws.on('close', () => session?.kill());
  ws.on('error', () => session?.kill());
}
