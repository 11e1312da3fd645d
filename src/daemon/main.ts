#!/usr/bin/env node
import { createAdaptorServer } from '@hono/node-server';
import { promises as fsp, readFileSync, realpathSync } from 'node:fs';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NookError } from '../api/errors.js';
import { Nook } from '../core/nook.js';
import { resolvePaths } from '../core/paths.js';
import { log } from '../util/log.js';
import { ConsoleAuth } from './http/console-auth.js';
import { ptyUpgradeHandler } from './pty.js';
import { buildApp } from './server.js';
import { buildE2bApp } from './e2b/server.js';

/** True when something already answers on the socket. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A client must send its whole request head within this (slowloris). */
const HEADERS_TIMEOUT_MS = Number(process.env.NOOK_HEADERS_TIMEOUT_MS ?? 10_000);
/** Connections at once on the TCP listener, before authentication can refuse them. */
const TCP_MAX_CONNECTIONS = Number(process.env.NOOK_TCP_MAX_CONNECTIONS ?? 512);

/**
 * Bounds what a client that never finishes its request head can hold: it is dropped after
 * HEADERS_TIMEOUT_MS (Node checks on connectionsCheckingInterval, so that is kept shorter).
 */
const SERVER_OPTIONS = {
  headersTimeout: HEADERS_TIMEOUT_MS,
  requestTimeout: Math.max(300_000, HEADERS_TIMEOUT_MS + 1000),
  connectionsCheckingInterval: Math.min(1000, HEADERS_TIMEOUT_MS),
};

/** Requests Node's HTTP parser rejects still get an answer in the API's error shape. */
function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const error = timedOut
      ? new NookError('INVALID_ARGUMENT', `the request head did not arrive within ${HEADERS_TIMEOUT_MS} ms`, { hint: 'send the whole request head at once' })
      : new NookError('INVALID_ARGUMENT', `malformed HTTP request: ${err.code ?? err.message}`, { hint: 'send a well-formed HTTP/1.1 request' });
    const body = JSON.stringify(error.toJSON());
    const status = timedOut ? '408 Request Timeout' : '400 Bad Request';
    // Then close both ways: the server allows half-open sockets, and a client that never
    // closes its side would otherwise keep the descriptor.
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`, () => socket.destroy());
  });
}

/**
 * Connections the kernel queues while the daemon is busy: agents open many at once (the
 * load test's 1000 concurrent execs), and past Node's default of 511 a unix-socket client
 * gets EAGAIN. The kernel caps it at net.core.somaxconn.
 */
const LISTEN_BACKLOG = 4096;

function listen(server: Server, target: string | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    if (typeof target === 'string') server.listen({ path: target, backlog: LISTEN_BACKLOG }, () => resolve());
    else server.listen({ port: target.port, host: target.host, backlog: LISTEN_BACKLOG }, () => resolve());
  });
}

export interface DaemonOptions {
  /** host:port for an extra TCP listener (NOOK_TCP); needs a token (NOOK_TOKEN or NOOK_TOKEN_FILE). */
  tcp?: string;
}

/**
 * The last line of defence: an exception that escapes a request or connection handler is
 * logged and the daemon keeps serving. Exiting would kill every running command on the host,
 * so a crash must never be the answer to input. (Each such fault is a bug: the log names it.)
 */
export function guardProcess(): void {
  process.on('uncaughtException', (e: Error) => log('fault caught (uncaught exception); still serving', { error: e.stack ?? String(e) }));
  process.on('unhandledRejection', (e: unknown) => log('fault caught (unhandled rejection); still serving', { error: (e as Error)?.stack ?? String(e) }));
}

function daemonToken(): string {
  const token = process.env.NOOK_TOKEN ?? (process.env.NOOK_TOKEN_FILE ? readFileSync(process.env.NOOK_TOKEN_FILE, 'utf8').trim() : '');
  if (token.length < 16) {
    throw new NookError('INVALID_ARGUMENT', 'the TCP listeners need a bearer token of at least 16 characters', { hint: 'set NOOK_TOKEN or NOOK_TOKEN_FILE' });
  }
  return token;
}

function parseAddress(value: string, what: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(value);
  if (!m) throw new NookError('INVALID_ARGUMENT', `${what}${value}: expected HOST:PORT`);
  return { host: m[1] ?? '127.0.0.1', port: Number(m[2]) };
}

/** Where a browser reaches the console: NOOK_CONSOLE_URL (behind a proxy), else the TCP listener (a wildcard address as loopback). */
function consoleBaseUrl(address: { host: string; port: number }): string {
  if (process.env.NOOK_CONSOLE_URL) return process.env.NOOK_CONSOLE_URL.replace(/\/+$/, '');
  const host = address.host === '0.0.0.0' || address.host === '::' ? '127.0.0.1' : address.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

export async function runDaemon(options: DaemonOptions = {}): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new NookError('NOT_SUPPORTED', 'nookd must run as root (it creates namespaces, cgroups and mounts)', { hint: 'run it with sudo' });
  }
  const paths = resolvePaths();
  await fsp.mkdir(dirname(paths.socketPath), { recursive: true, mode: 0o755 });
  if (await socketAnswers(paths.socketPath)) {
    throw new NookError('BUSY', `a daemon already answers on ${paths.socketPath}`, { hint: 'use it, or stop it first: nook daemon stop' });
  }
  await fsp.rm(paths.socketPath, { force: true });

  const nook = await Nook.open(paths);
  const servers: Server[] = [];
  let closing = false;
  const shutdown = (release: boolean): void => {
    if (closing) return;
    closing = true;
    log('daemon stopping', { release });
    for (const s of servers) s.close();
    // Streams (exec, logs) may keep connections open: give answers in flight a moment, then go.
    const force = setTimeout(() => process.exit(0), 3000);
    force.unref();
    void (async () => {
      try {
        if (release) await nook.release();
      } catch (e) {
        log('release failed', { error: (e as Error).message });
      }
      await nook.close();
      await fsp.rm(paths.socketPath, { force: true });
      process.exit(0);
    })();
  };

  const tcp = options.tcp ?? process.env.NOOK_TCP;
  const tcpAddress = tcp ? parseAddress(tcp, '--tcp ') : undefined;
  // The web console lives on the TCP listener; the unix socket only hands out its login links.
  const consoleAuth = tcpAddress ? new ConsoleAuth(daemonToken()) : undefined;
  const unix = createAdaptorServer({ fetch: buildApp(nook, { onShutdown: shutdown, ...(consoleAuth ? { console: consoleAuth } : {}) }).fetch, serverOptions: SERVER_OPTIONS }) as Server;
  unix.on('upgrade', ptyUpgradeHandler(nook));
  answerClientErrors(unix);
  const oldMask = process.umask(0o177);
  await listen(unix, paths.socketPath);
  process.umask(oldMask);
  await fsp.chmod(paths.socketPath, 0o600);
  servers.push(unix);

  if (tcpAddress && consoleAuth) {
    const token = daemonToken();
    const server = createAdaptorServer({ fetch: buildApp(nook, { token, onShutdown: shutdown, console: consoleAuth }).fetch, serverOptions: SERVER_OPTIONS }) as Server;
    server.on('upgrade', ptyUpgradeHandler(nook, token, consoleAuth));
    answerClientErrors(server);
    server.maxConnections = TCP_MAX_CONNECTIONS;
    await listen(server, tcpAddress);
    // The port the listener got (NOOK_TCP may ask for port 0).
    const bound = server.address();
    consoleAuth.baseUrl = consoleBaseUrl({ host: tcpAddress.host, port: typeof bound === 'object' && bound ? bound.port : tcpAddress.port });
    servers.push(server);
    log('listening on tcp', { address: tcp });
  }

  // The E2B-compatible front: E2B's SDKs, unmodified, with E2B_API_URL and E2B_SANDBOX_URL here.
  const e2b = process.env.NOOK_E2B_LISTEN;
  if (e2b) {
    const token = daemonToken();
    const address = parseAddress(e2b, 'NOOK_E2B_LISTEN=');
    const server = createAdaptorServer({ fetch: buildE2bApp(nook, token).fetch, serverOptions: SERVER_OPTIONS }) as Server;
    answerClientErrors(server);
    server.maxConnections = TCP_MAX_CONNECTIONS;
    await listen(server, address);
    servers.push(server);
    log('listening for E2B clients', { address: e2b });
  }

  process.on('SIGTERM', () => shutdown(false));
  process.on('SIGINT', () => shutdown(false));
  log('nookd ready', { socket: paths.socketPath, stateDir: paths.stateDir, pid: process.pid });
}

const invokedDirectly = !!process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (invokedDirectly) {
  const tcpIndex = process.argv.indexOf('--tcp');
  guardProcess();
  runDaemon(tcpIndex > 0 ? { tcp: process.argv[tcpIndex + 1] ?? '' } : {}).catch((e: unknown) => {
    const err = e instanceof NookError ? e : new NookError('INTERNAL', (e as Error).message);
    process.stderr.write(`nookd: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ''}\n`);
    process.exit(1);
  });
}
