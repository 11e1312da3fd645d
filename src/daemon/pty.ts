/**
 * Interactive terminals over WebSocket, on the same listeners as the HTTP API. The first
 * text message starts the session ({type:'start', cols, rows, argv?}); binary messages are
 * terminal bytes both ways; {type:'resize'} changes the window; the server sends
 * {type:'exit', exitCode, signal} and closes. Closing the socket kills the session's tree.
 * Opening, admission and the audit records are core's (core/terminals.ts); this is transport,
 * with back-pressure on output and a bound on unread input, so neither a stalled client nor a
 * command that never reads makes the daemon buffer without bound.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { parseUntrustedJson } from '../util/json.js';
import { NookError } from '../api/errors.js';
import { PtyClientMessage, type PtyServerMessage } from '../api/schemas.js';
import type { Nook } from '../core/nook.js';
import type { Terminal } from '../core/terminals.js';
import { log } from '../util/log.js';
import { upgradeAllowed, type ConsoleAuth } from './http/console-auth.js';

const PTY_PATH = /^\/v1\/sandboxes\/([^/?]+)\/pty(?:\?|$)/;

function send(ws: WebSocket, msg: PtyServerMessage): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
}

function reject(socket: Duplex, status: number, error: NookError): void {
  const body = JSON.stringify(error.toJSON());
  socket.end(`HTTP/1.1 ${status} Error\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export function ptyUpgradeHandler(nook: Nook, token?: string, consoleAuth?: ConsoleAuth): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  return (req, socket, head) => {
    const m = PTY_PATH.exec(req.url ?? '');
    if (!m) return reject(socket, 404, new NookError('NOT_FOUND', `no WebSocket endpoint ${req.url}`));
    // The bearer token, or a console session from the console's own page (no cross-site WebSocket hijacking).
    if (token !== undefined && !upgradeAllowed(req.headers, req.url, token, consoleAuth)) {
      return reject(socket, 401, new NookError('UNAUTHORIZED', 'a valid bearer token (or a console session from the console page) is required on the TCP listener'));
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
    // Who, for the audit records: the same as the HTTP API's (listener kind and the client's name).
    const actor = `${token !== undefined ? 'tcp' : 'unix'}:${String(req.headers['x-nook-actor'] ?? 'unknown').slice(0, 200)}`;
    wss.handleUpgrade(req, socket, head, (ws) => serve(nook, ws, sandboxId, actor));
  };
}

/**
 * Output waits while the client is behind: past this many bytes queued on the socket the
 * session is paused (the agent then stops reading the terminal, and the command blocks on
 * its writes), and it resumes once the queue is down to LOW_WATER_BYTES.
 */
const HIGH_WATER_BYTES = 1 << 20;
const LOW_WATER_BYTES = 256 << 10;
/** Terminal input the daemon holds for a command that is not reading it, at most. */
const INPUT_BACKLOG_MAX_BYTES = 8 << 20;

function serve(nook: Nook, ws: WebSocket, sandboxId: string, actor: string): void {
  let terminal: Terminal | undefined;
  let paused = false;
  const output = (b: Buffer): void => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(b, () => {
      if (paused && ws.bufferedAmount <= LOW_WATER_BYTES) {
        paused = false;
        terminal?.session.resume();
      }
    });
    if (!paused && ws.bufferedAmount > HIGH_WATER_BYTES) {
      paused = true;
      terminal?.session.pause();
    }
  };
  // Terminal input the command does not read piles up in the daemon: bounded, and past the
  // bound the session ends with an error. (Pausing the socket instead would also hold back
  // a kill or a hang-up queued behind the input, leaving the session to run forever.)
  let inputPendingBytes = 0;
  const input = async (data: Buffer): Promise<void> => {
    if (!terminal) return;
    terminal.countInput(data.length);
    if (inputPendingBytes + data.length > INPUT_BACKLOG_MAX_BYTES) {
      const err = new NookError('PAYLOAD_TOO_LARGE', `more than ${INPUT_BACKLOG_MAX_BYTES >> 20} MiB of terminal input is waiting: the command is not reading its input`, {
        hint: 'send input as the command reads it (or copy large data in with nook cp)',
      });
      terminal.session.kill();
      send(ws, { type: 'error', error: err.toJSON() });
      ws.close(1009);
      // Do not read (and drop) whatever else it sends while waiting for its close frame.
      setTimeout(() => ws.terminate(), 500).unref();
      return;
    }
    inputPendingBytes += data.length;
    try {
      await terminal.session.writeAsync(data);
    } finally {
      inputPendingBytes -= data.length;
    }
  };
  ws.on('message', (data: RawData, isBinary: boolean) => {
    void (async () => {
      if (isBinary) return input(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer));
      let raw: unknown;
      try {
        raw = parseUntrustedJson(data.toString());
      } catch (e) {
        send(ws, { type: 'error', error: (e as NookError).toJSON() });
        return;
      }
      const parsed = PtyClientMessage.safeParse(raw);
      if (!parsed.success) {
        send(ws, { type: 'error', error: new NookError('INVALID_ARGUMENT', `bad terminal message: ${parsed.error.issues[0]?.message ?? ''}`).toJSON() });
        return;
      }
      const msg = parsed.data;
      if (msg.type === 'resize') terminal?.session.resize(msg.cols, msg.rows);
      else if (msg.type === 'kill') terminal?.session.kill();
      else if (msg.type === 'start' && !terminal) {
        try {
          const { type: _type, ...req } = msg;
          terminal = await nook.terminals.open(sandboxId, req, actor, output);
          // The client may have gone while the terminal was opening.
          if (ws.readyState !== ws.OPEN) terminal.session.kill();
          if (paused) terminal.session.pause();
          const end = await terminal.ended;
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
  ws.on('close', () => terminal?.session.kill());
  ws.on('error', () => terminal?.session.kill());
}
