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
 * A client for the daemon. No health probe first (a round trip on every command): when
 * nothing answers on the local socket, the first call starts the daemon in the background
 * (its log goes to <state dir>/nookd.log) and is made again. A TCP daemon (NOOK_URL) is
 * never started here: its error stands.
 */
export async function connect(): Promise<NookClient> {
  const client: NookClient = new NookClient({
    whenUnavailable: async () => {
      if (client.transport.baseUrl) return false;
      await startDaemon(client.transport.socketPath ?? '');
      return true;
    },
  });
  return client;
}

/** Starts nookd detached and waits until it answers on `socketPath`; root only. */
async function startDaemon(socketPath: string): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new NookError('DAEMON_UNAVAILABLE', `no nook daemon answers at ${socketPath}, and only root can start one`, {
      hint: 'run nook with sudo, or start the daemon: sudo nook daemon',
    });
  }
  // node:child_process only when a daemon is started: every other call starts faster.
  const { spawn } = await import('node:child_process');
  const stateDir = process.env.NOOK_STATE_DIR || '/var/lib/nook';
  mkdirSync(stateDir, { recursive: true, mode: 0o711 });
  const logFd = openSync(join(stateDir, 'nookd.log'), 'a', 0o600);
  const child = spawn(process.execPath, [daemonEntry()], { detached: true, stdio: ['ignore', logFd, logFd], env: process.env });
  child.unref();
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? 1));
  // A probe of its own: the caller's client would come back here while nothing answers.
  const probe = new NookClient({ socketPath });
  const deadline = Date.now() + STARTUP_WAIT_MS;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    if (exited !== null) {
      throw new NookError('DAEMON_UNAVAILABLE', `the nook daemon failed to start (exit ${exited})`, { hint: `see ${join(stateDir, 'nookd.log')}` });
    }
    try {
      await probe.health();
      return;
    } catch {
      // not up yet
    }
  }
  throw new NookError('DAEMON_UNAVAILABLE', 'the nook daemon did not answer in time', { hint: `see ${join(stateDir, 'nookd.log')}` });
}
