import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NookError } from '../api/errors.js';
import { NookClient } from '../sdk/client.js';

const STARTUP_WAIT_MS = 20_000;

/** The installed nookd entry: dist/src/daemon/main.js, beside this CLI's directory. */
export function daemonEntry(): string {
  return join(dirname(dirname(fileURLToPath(import.meta.url))), 'daemon', 'main.js');
}

/**
 * A client for the daemon, starting the daemon in the background when the local socket
 * does not answer (its log goes to <state dir>/nookd.log).
 */
export async function connect(): Promise<NookClient> {
  const client = new NookClient();
  try {
    await client.health();
    return client;
  } catch (e) {
    if (!(e instanceof NookError) || e.code !== 'DAEMON_UNAVAILABLE' || client.transport.baseUrl) throw e;
  }
  if (process.getuid?.() !== 0) {
    throw new NookError('DAEMON_UNAVAILABLE', `no nook daemon answers at ${client.transport.socketPath}, and only root can start one`, {
      hint: 'run nook with sudo, or start the daemon: sudo nook daemon',
    });
  }
  const stateDir = process.env.NOOK_STATE_DIR || '/var/lib/nook';
  mkdirSync(stateDir, { recursive: true, mode: 0o711 });
  const logFd = openSync(join(stateDir, 'nookd.log'), 'a', 0o600);
  const child = spawn(process.execPath, [daemonEntry()], { detached: true, stdio: ['ignore', logFd, logFd], env: process.env });
  child.unref();
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? 1));
  const deadline = Date.now() + STARTUP_WAIT_MS;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    if (exited !== null) {
      throw new NookError('DAEMON_UNAVAILABLE', `the nook daemon failed to start (exit ${exited})`, { hint: `see ${join(stateDir, 'nookd.log')}` });
    }
    try {
      await client.health();
      return client;
    } catch {
      // not up yet
    }
  }
  throw new NookError('DAEMON_UNAVAILABLE', 'the nook daemon did not answer in time', { hint: `see ${join(stateDir, 'nookd.log')}` });
}
