/**
 * The crun driver's network primitives: bridges between a sandbox's network namespace
 * (loopback only, entered through its PID 1) and the daemon. The sandbox
 * gets no interface and no route; the daemon stays the only way out or in.
 *
 * Egress: `nook-init netns-listen` creates the proxy's listener inside the namespace and
 * hands the descriptor to the daemon, which accepts the sandbox's connections itself, so no
 * host process exists per connection (nor per sandbox) and the listener dies with the daemon.
 *
 * Exposures (host to sandbox, token-checked first): socat started by nsenter in the
 * sandbox's netns, keeping the host's mount namespace, listening on a root-only host socket.
 */
import { spawn } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import type { ListenHandle } from './driver.js';

function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('socat');
  } catch {
    return false;
  }
}

/**
 * Whether `pid` listens on the unix socket `path` (listening, not only bound: socat binds
 * before it listens). Read in the netns the process is in.
 */
async function unixListening(pid: number, path: string): Promise<boolean> {
  const table = await fsp.readFile(`/proc/${pid}/net/unix`, 'utf8').catch(() => '');
  // "Num RefCount Protocol Flags Type St Inode Path"; flag __SO_ACCEPTCON (0x10000) is a listener.
  return table.split('\n').some((l) => l.endsWith(` ${path}`) && l.trim().split(/\s+/)[3] === '00010000');
}

/** Stops the bridge whose pid is in pidFile (checking it still is a socat, never by name). */
async function stopBridge(pidFile: string): Promise<void> {
  let pid: number;
  try {
    pid = Number((await fsp.readFile(pidFile, 'utf8')).trim());
  } catch {
    return;
  }
  if (pid > 0 && alive(pid)) {
    try {
      // Its whole group: the socat that listens and the ones it forked per connection.
      process.kill(-pid, 'SIGTERM');
    } catch {
      // already gone
    }
    // Closed means closed when this returns: nothing answers on its socket any more.
    for (const deadline = Date.now() + 2000; alive(pid) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 5));
  }
  await fsp.rm(pidFile, { force: true });
}

/**
 * Starts `socat <listen> <connect>` inside the network namespace of process `netnsPid`
 * and waits until `ready()` says it listens.
 */
async function startBridge(netnsPid: number, listen: string, target: string, pidFile: string, ready: (pid: number) => Promise<boolean>): Promise<void> {
  await stopBridge(pidFile);
  // -b: 128 KiB transfers instead of socat's 8 KiB, a large part of the bridge's cost on bulk downloads.
  const child = spawn('nsenter', ['-t', String(netnsPid), '-n', 'socat', '-b', '131072', listen, target], { detached: true, stdio: 'ignore' });
  if (!child.pid) throw new NookError('RUNTIME_ERROR', 'cannot start the network bridge (is socat installed?)', { hint: 'apt-get install socat' });
  child.unref();
  await fsp.writeFile(pidFile, String(child.pid));
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (await ready(child.pid)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  await stopBridge(pidFile);
  throw new NookError('RUNTIME_ERROR', `the network bridge did not come up (${listen})`, { hint: 'is socat installed? apt-get install socat' });
}

/**
 * A listening TCP socket on 127.0.0.1:`port` inside the network namespace of `netnsPid`,
 * created by nook-init and received over an IPC channel: a handle for `server.listen()`.
 */
function listenInNetns(initBinary: string, netnsPid: number, port: number): Promise<ListenHandle> {
  const child = spawn(initBinary, ['netns-listen', String(netnsPid), String(port)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      reject(new NookError('RUNTIME_ERROR', `cannot listen inside the sandbox on 127.0.0.1:${port}: ${why}`, { hint: 'is native/build/nook-init built (npm run build)?' }));
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail('nook-init did not answer');
    }, 5000);
    child.once('message', (_msg, handle) => {
      clearTimeout(timer);
      if (handle) resolve(handle);
      else fail('no descriptor received');
    });
    child.once('error', (e) => fail(e.message));
    child.once('exit', (code) => fail(stderr.trim() || `nook-init exited ${code}`));
  });
}

export interface CrunNetDeps {
  /** nook-init on the host (its netns-listen mode). */
  helper: string;
  /** Host pid of the sandbox's PID 1, or null without compute. */
  initPid(sandboxId: string): Promise<number | null>;
  /** The driver's root-only per-sandbox directory (sockets, pid files). */
  runDir(sandboxId: string): string;
  /** Where every sandbox's runDir lives (for strays of a dead daemon). */
  bundlesDir: string;
}

const EGRESS_PID_FILE = 'egress.bridge.pid';

export class CrunNet {
  constructor(private readonly d: CrunNetDeps) {}

  private async pid(sandboxId: string): Promise<number> {
    const pid = await this.d.initPid(sandboxId);
    if (!pid) throw new NookError('INVALID_STATE', `sandbox ${sandboxId} has no running compute`);
    return pid;
  }

  async listenInSandbox(sandboxId: string, port: number): Promise<ListenHandle> {
    const pid = await this.pid(sandboxId);
    // A socat bridge left by an older daemon would hold the port.
    await stopBridge(join(this.d.runDir(sandboxId), EGRESS_PID_FILE));
    return listenInNetns(this.d.helper, pid, port);
  }

  /** socat in the sandbox's netns, listening on a root-only host socket in the run dir. */
  async exposePort(sandboxId: string, port: number, opts: { maxConnections: number }): Promise<string> {
    const pid = await this.pid(sandboxId);
    const dir = this.d.runDir(sandboxId);
    const sock = join(dir, `expose-${port}.sock`);
    const listen = `UNIX-LISTEN:${sock},fork,max-children=${opts.maxConnections},mode=600,unlink-early`;
    await startBridge(pid, listen, `TCP:127.0.0.1:${port}`, join(dir, `expose-${port}.bridge.pid`), (socat) => unixListening(socat, sock));
    return sock;
  }

  async unexposePort(sandboxId: string, port: number | 'all'): Promise<void> {
    const dir = this.d.runDir(sandboxId);
    const files = port === 'all' ? await fsp.readdir(dir).catch(() => [] as string[]) : [`expose-${port}.bridge.pid`];
    for (const f of files.filter((n) => n.endsWith('.bridge.pid'))) {
      await stopBridge(join(dir, f));
      await fsp.rm(join(dir, f.replace(/\.bridge\.pid$/, '.sock')), { force: true });
    }
  }

  /** Bridges left by a daemon that died: stopped before anything else looks at run dirs. */
  async sweepStrays(): Promise<void> {
    for (const sb of await fsp.readdir(this.d.bundlesDir).catch(() => [] as string[])) await this.unexposePort(sb, 'all');
  }
}
