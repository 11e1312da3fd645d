import { spawn } from 'node:child_process';
import { closeSync, constants as fsc, fstatSync, openSync, promises as fsp } from 'node:fs';
import { Socket, connect } from 'node:net';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { ID_MAP } from '../util/id-map.js';
import { run } from '../util/proc.js';
import { AgentSession, agentExec } from './agent-client.js';
import { sleep, type CgroupHost } from './cgroups.js';
import type { ContainerStatus, ExecOutcome, ExecSpec, Holder, ListenHandle, RuntimeDriver, RuntimeInfo, SessionHandle, SessionSpec, StartSpec, UnmountOutcome } from './driver.js';
import { buildOciSpec, INIT_PATH_IN_SANDBOX } from './oci-config.js';

export interface RunscOptions {
  path: string;
  version: string;
  /** runsc's own state (`--root`), apart from crun's. */
  stateRoot: string;
  /** Bundles apart from crun's: a stop routed to both drivers never removes the other's. */
  bundlesDir: string;
  initDir: string;
  cgroups: CgroupHost;
}

/** Where the agent socket's directory is mounted inside (shared with the host through the gofer). */
const AGENT_DIR_IN_SANDBOX = '/.nook-run';
/** Linux x86-64/arm64 open flags Node does not name. */
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
const AGENT_WAIT_MS = 10_000;
/**
 * runsc puts its own threads (the sentry, the gofer, one ptrace stub per guest process) in
 * the sandbox's pids cgroup: the host bound is the guest's limit with room for them.
 */
const pidsOnHost = (pids: number): number => pids * 2 + 256;

/**
 * The gVisor driver: every sandbox runs on its own user-space kernel (runsc, ptrace
 * platform), so the host kernel sees only the sentry's narrow syscall set. nook-init is
 * still PID 1; runsc cannot hand it a host fd, so it binds the agent socket itself in a
 * directory the gofer shares with the host (--host-uds=create) and the daemon connects
 * there. Process memory can be saved (runsc checkpoint) and restored, in place or as
 * copies.
 */
export class RunscDriver implements RuntimeDriver {
  /** Agent connections open per sandbox: a checkpoint cannot save a sandbox holding one. */
  private readonly open = new Map<string, number>();

  constructor(private readonly o: RunscOptions) {}

  info(): RuntimeInfo {
    return {
      name: 'runsc', kind: 'gvisor', version: this.o.version, available: ['gvisor'],
      memorySnapshots: true, freeze: true, hotMounts: false, egress: false, exposePorts: false, holders: false, perProcessLimits: false,
      cgroup: this.o.cgroups.kind,
    };
  }

  /** The sandbox's cgroup (runsc's sentry and gofer are in it): what it uses now. */
  stats(sandboxId: string): ReturnType<RuntimeDriver['stats']> {
    return this.o.cgroups.stats(sandboxId);
  }

  private argv(args: string[]): string[] {
    return [this.o.path, '--root', this.o.stateRoot, '--network=none', '--host-uds=create', ...args];
  }

  private bundleDir(id: string): string {
    return join(this.o.bundlesDir, id);
  }

  private agentPath(id: string): string {
    const path = join(this.bundleDir(id), 'run', 'agent.sock');
    if (Buffer.byteLength(path) >= 108) {
      throw new NookError('INVALID_ARGUMENT', `the state dir path is too long for a unix socket (${path})`, { hint: 'use a shorter NOOK_STATE_DIR' });
    }
    return path;
  }

  /**
   * Connects to the agent without following anything the sandbox put there: the socket is
   * opened O_PATH|O_NOFOLLOW and must be a socket, then reached through /proc/self/fd, so
   * a symlink planted in the shared directory can never steer the daemon to a host socket.
   */
  private connectAgent(id: string): Socket {
    let fd: number;
    try {
      fd = openSync(this.agentPath(id), O_PATH | fsc.O_NOFOLLOW | O_CLOEXEC);
    } catch (e) {
      return failedSocket(`the sandbox's exec agent is not listening (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (!fstatSync(fd).isSocket()) {
      closeSync(fd);
      return failedSocket('the agent socket was replaced by something that is not a socket');
    }
    const sock = connect(`/proc/self/fd/${fd}`);
    const done = (): void => {
      sock.off('connect', done);
      sock.off('error', done);
      closeSync(fd);
    };
    sock.once('connect', done);
    sock.once('error', done);
    return sock;
  }

  /** Counts a connection while it lives, for checkpoint's check. */
  private track<T>(id: string, ended: Promise<unknown>, value: T): T {
    this.open.set(id, (this.open.get(id) ?? 0) + 1);
    const drop = (): void => {
      const n = (this.open.get(id) ?? 1) - 1;
      if (n <= 0) this.open.delete(id);
      else this.open.set(id, n);
    };
    ended.then(drop, drop);
    return value;
  }

  async start(spec: StartSpec): Promise<void> {
    const bundle = this.bundleDir(spec.sandboxId);
    const runDir = join(bundle, 'run');
    await fsp.rm(bundle, { recursive: true, force: true });
    // The gofer runs as the sandbox's mapped root: it must traverse (never list) the way to the run dir.
    await fsp.mkdir(this.o.bundlesDir, { recursive: true, mode: 0o711 });
    await fsp.chmod(this.o.bundlesDir, 0o711);
    await fsp.mkdir(bundle, { mode: 0o711 });
    await fsp.mkdir(runDir, { mode: 0o700 });
    // The sandbox's root is ID_MAP.hostId on the host: it must be able to bind there.
    await fsp.chown(runDir, ID_MAP.hostId, ID_MAP.hostId);
    const config = buildOciSpec({
      rootfs: spec.rootfs,
      hostname: spec.hostname,
      env: spec.env,
      limits: { ...spec.limits, pids: pidsOnHost(spec.limits.pids) },
      cgroupsPath: this.o.cgroups.sandboxPath(spec.sandboxId),
      swapLimit: this.o.cgroups.swapLimit(),
      initDir: this.o.initDir,
      mounts: spec.mounts,
    });
    adaptForGvisor(config, runDir);
    await fsp.writeFile(join(bundle, 'config.json'), JSON.stringify(config), { mode: 0o600 });
    const logPath = join(bundle, 'runtime.log');
    const args = spec.memoryImage
      ? ['restore', '-detach', '--image-path', spec.memoryImage, '--bundle', bundle, spec.sandboxId]
      : ['run', '-detach', '--bundle', bundle, spec.sandboxId];
    const code = await spawnLogged(this.argv(args), logPath);
    try {
      if (code !== 0) {
        const detail = (await fsp.readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' ');
        throw new NookError('RUNTIME_ERROR', spec.memoryImage
          ? `the memory image could not be restored: ${detail || `exit ${code}`}`
          : `runsc could not start sandbox ${spec.sandboxId}: ${detail || `exit ${code}`}`);
      }
      // A restored init closed its socket for the checkpoint: it binds it again on SIGUSR2.
      if (spec.memoryImage) await this.signal(spec.sandboxId, 'USR2');
      await this.waitAgent(spec.sandboxId, true);
    } catch (e) {
      await this.stop(spec.sandboxId, 0).catch(() => undefined);
      throw e;
    }
  }

  /**
   * Makes init close the agent socket (SIGUSR1) and waits for its word (`agent.sock.closed`,
   * a regular file, never followed): the host side cannot see the close itself.
   */
  private async closeAgent(id: string): Promise<void> {
    const marker = `${this.agentPath(id)}.closed`;
    await fsp.rm(marker, { force: true });
    await this.signal(id, 'USR1');
    const deadline = Date.now() + AGENT_WAIT_MS;
    while (!(await fsp.lstat(marker).then((st) => st.isFile(), () => false))) {
      if (Date.now() > deadline) throw new NookError('RUNTIME_ERROR', `the exec agent of sandbox ${id} did not close its socket within ${AGENT_WAIT_MS} ms`);
      await sleep(5);
    }
  }

  /** Waits until the agent accepts (up) or refuses (down) connections. */
  private async waitAgent(id: string, up: boolean): Promise<void> {
    const deadline = Date.now() + AGENT_WAIT_MS;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = this.connectAgent(id);
        s.once('connect', () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      });
      if (ok === up) return;
      if (Date.now() > deadline) {
        throw new NookError('RUNTIME_ERROR', `the exec agent of sandbox ${id} did not ${up ? 'come up' : 'close its socket'} within ${AGENT_WAIT_MS} ms`);
      }
      await sleep(5);
    }
  }

  private async signal(id: string, sig: string): Promise<void> {
    const r = await run(this.argv(['kill', id, sig]), { allowFail: true });
    if (r.code !== 0) throw new NookError('RUNTIME_ERROR', `runsc could not signal sandbox ${id}: ${r.stderr.trim()}`);
  }

  async status(id: string): Promise<ContainerStatus> {
    const r = await run(this.argv(['state', id]), { allowFail: true });
    if (r.code !== 0) return 'missing';
    try {
      return mapStatus((JSON.parse(r.stdout) as { status?: string }).status);
    } catch {
      return 'missing';
    }
  }

  async list(): Promise<{ id: string; status: ContainerStatus }[]> {
    const r = await run(this.argv(['list', '-format', 'json']), { allowFail: true });
    if (r.code !== 0 || r.stdout.trim() === '') return [];
    const parsed = JSON.parse(r.stdout) as { id: string; status: string }[] | null;
    return (parsed ?? []).map((c) => ({ id: c.id, status: mapStatus(c.status) }));
  }

  async freeze(id: string): Promise<void> {
    const r = await run(this.argv(['pause', id]), { allowFail: true });
    if (r.code !== 0) throw new NookError('RUNTIME_ERROR', `runsc could not pause sandbox ${id}: ${r.stderr.trim()}`);
  }

  async thaw(id: string): Promise<void> {
    if ((await this.status(id)) !== 'paused') return;
    const r = await run(this.argv(['resume', id]), { allowFail: true });
    if (r.code !== 0) throw new NookError('RUNTIME_ERROR', `runsc could not resume sandbox ${id}: ${r.stderr.trim()}`);
  }

  async stop(id: string, graceMs: number): Promise<void> {
    let st = await this.status(id);
    if (st !== 'missing') {
      if (st === 'paused') await run(this.argv(['resume', id]), { allowFail: true });
      if (st !== 'stopped' && graceMs > 0) {
        await run(this.argv(['kill', id, 'TERM']), { allowFail: true });
        st = await this.waitStopped(id, graceMs);
      }
      const del = await run(this.argv(['delete', '-force', id]), { allowFail: true });
      if (del.code !== 0 && (await this.status(id)) !== 'missing') {
        throw new NookError('RUNTIME_ERROR', `runsc could not delete sandbox ${id}: ${del.stderr.trim()}`);
      }
    }
    await this.removeGroupsWhenEmpty(id);
    await fsp.rm(this.bundleDir(id), { recursive: true, force: true });
  }

  /** runsc's sandbox and gofer processes leave their cgroups a moment after delete returns. */
  private async removeGroupsWhenEmpty(id: string): Promise<void> {
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        await this.o.cgroups.removeSandboxGroups(id);
        return;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(20);
      }
    }
  }

  private async waitStopped(id: string, waitMs: number): Promise<ContainerStatus> {
    const deadline = Date.now() + waitMs;
    let st = await this.status(id);
    while (st !== 'stopped' && st !== 'missing' && Date.now() < deadline) {
      await sleep(10);
      st = await this.status(id);
    }
    return st;
  }

  /**
   * Saves the sandbox's whole kernel state (every process, its memory, tmpfs) into
   * imageDir; compute is down afterwards (start with memoryImage brings it back). gVisor
   * cannot save a sandbox holding a host socket, so the agent closes its own first and no
   * command may be open; a failed checkpoint ends the sandbox's compute (runsc does).
   */
  async checkpoint(id: string, imageDir: string): Promise<void> {
    const busy = this.open.get(id) ?? 0;
    if (busy > 0) {
      throw new NookError('INVALID_STATE', `sandbox ${id} has ${busy} command(s), terminal(s) or background process(es) attached; their connections to the daemon cannot be saved`, {
        hint: 'wait for running commands, close terminals and stop background processes (nook ps), then try again',
      });
    }
    await this.closeAgent(id);
    const r = await run(this.argv(['checkpoint', '--image-path', imageDir, id]), { allowFail: true });
    await run(this.argv(['delete', '-force', id]), { allowFail: true });
    if (r.code !== 0) {
      await this.stop(id, 0).catch(() => undefined);
      throw new NookError('RUNTIME_ERROR', `runsc could not checkpoint sandbox ${id}: ${r.stderr.trim().split('\n')[0] ?? ''}`);
    }
  }

  exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    const p = agentExec(() => this.connectAgent(id), spec);
    return this.track(id, p, p);
  }

  openSession(id: string, spec: SessionSpec, handlers: { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void }): SessionHandle {
    const s = new AgentSession(() => this.connectAgent(id), spec, handlers);
    return this.track(id, s.exited, s);
  }

  mountInto(): Promise<void> {
    return Promise.reject(notOnGvisor('mounting into a running sandbox (volumes, attachments)'));
  }

  unmountFrom(): Promise<UnmountOutcome> {
    return Promise.reject(notOnGvisor('unmounting from a running sandbox'));
  }

  holdersOf(): Promise<Holder[]> {
    return Promise.reject(notOnGvisor('naming the processes that hold a mount'));
  }

  listenInSandbox(): Promise<ListenHandle> {
    return Promise.reject(notOnGvisor('the egress proxy (gVisor has its own network stack)'));
  }

  exposePort(): Promise<string> {
    return Promise.reject(notOnGvisor('exposing a port (gVisor has its own network stack)'));
  }

  async unexposePort(): Promise<void> {
    // Nothing is ever exposed.
  }

  async forget(id: string): Promise<void> {
    this.open.delete(id);
  }

  async setHostname(): Promise<void> {
    // The warm pool holds crun sandboxes only (core/pool.ts): nothing renames a gVisor one.
    throw new NookError('NOT_SUPPORTED', 'the gVisor runtime cannot rename a running sandbox', { hint: 'pooled sandboxes run on crun' });
  }

  async sweepStrays(): Promise<void> {
    // No helpers outlive the daemon.
  }

  listCgroups(): Promise<string[]> {
    return this.o.cgroups.listSandboxGroups();
  }

  removeCgroups(id: string): Promise<void> {
    return this.o.cgroups.removeSandboxGroups(id);
  }

  async release(): Promise<void> {
    await this.o.cgroups.removeParent();
  }
}

export function notOnGvisor(what: string): NookError {
  return new NookError('NOT_SUPPORTED', `${what} is not available on the gVisor runtime`, { hint: 'create the sandbox with --runtime crun for it' });
}

/**
 * The crun config, adapted: init binds the agent socket itself (runsc cannot pass it a
 * host fd), in a directory shared with the host; gVisor has no cgroupfs to mount read-only
 * and enforces its own syscall surface (the bundle's seccomp filter is not used by runsc).
 */
function adaptForGvisor(config: Record<string, unknown>, runDir: string): void {
  const proc = config.process as { args: string[] };
  proc.args = [INIT_PATH_IN_SANDBOX, 'init', '--listen', `${AGENT_DIR_IN_SANDBOX}/agent.sock`];
  const mounts = config.mounts as { destination: string }[];
  config.mounts = [
    ...mounts.filter((m) => m.destination !== '/sys/fs/cgroup'),
    { destination: AGENT_DIR_IN_SANDBOX, type: 'bind', source: runDir, options: ['bind', 'rw', 'nosuid', 'nodev', 'noexec'] },
  ];
  const linux = config.linux as Record<string, unknown>;
  delete linux.seccomp;
}

function failedSocket(message: string): Socket {
  const s = new Socket();
  process.nextTick(() => s.destroy(new Error(message)));
  return s;
}

/** Runs runsc with its output in a log file (never our pipes: a detached sandbox keeps them). */
async function spawnLogged(argv: string[], logPath: string): Promise<number> {
  const logFd = openSync(logPath, 'w', 0o600);
  try {
    return await new Promise<number>((resolve, reject) => {
      const [cmd, ...args] = argv;
      const child = spawn(cmd ?? '', args, { stdio: ['ignore', logFd, logFd] });
      child.on('error', reject);
      child.on('exit', (c) => resolve(c ?? 1));
    });
  } finally {
    closeSync(logFd);
  }
}

function mapStatus(s: string | undefined): ContainerStatus {
  if (s === 'running') return 'running';
  if (s === 'paused') return 'paused';
  return 'stopped';
}
