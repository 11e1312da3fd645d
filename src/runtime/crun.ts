import { spawn } from 'node:child_process';
import { openSync, closeSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { log } from '../util/log.js';
import { run } from '../util/proc.js';
import { sleep, type CgroupHost, type CgroupStats } from './cgroups.js';
import type { ContainerStatus, ExecOutcome, ExecSpec, Holder, ListenHandle, RuntimeDriver, RuntimeInfo, SessionHandle, SessionSpec, StartSpec, UnmountOutcome } from './driver.js';
import { AgentSession, agentExec } from './agent-client.js';
import { CrunMounts } from './crun-mounts.js';
import { CrunNet } from './crun-net.js';
import { buildOciSpec } from './oci-config.js';

export interface OciRuntimeOptions {
  binary: 'crun' | 'runc';
  path: string;
  version: string;
  /** The runtime's own state (`--root`): one per state dir, so daemons never see each other's. */
  stateRoot: string;
  bundlesDir: string;
  initDir: string;
  /** v1/hybrid or v2: crun writes the limits either way; freeze, stats and cleanup go through it. */
  cgroups: CgroupHost;
  /**
   * crun 1.8 refuses hybrid cgroup hosts (a cgroup2 mount holding a controller). Run its
   * create/delete in a private mount namespace without that mount (platform notes), via
   * `nook-init hide-cgroup2`. Only on hybrid hosts: pure v1 and pure v2 need nothing.
   */
  hideUnifiedCgroup: boolean;
}

/** The crun driver (runc, same CLI, as fallback): thin and stateless. */
export class OciRuntimeDriver implements RuntimeDriver {
  /** Hot mounts and the network go through the sandbox's PID 1, which only this driver knows. */
  private readonly mounts: CrunMounts;
  private readonly net: CrunNet;
  /** PID 1 of each sandbox this daemon started, with its kernel start time: read from crun's pid file, no `crun state` needed. */
  private readonly inits = new Map<string, InitProcess>();

  constructor(private readonly o: OciRuntimeOptions) {
    const helper = join(o.initDir, 'nook-init');
    const initPid = (id: string): Promise<number | null> => this.initPid(id);
    this.mounts = new CrunMounts({ helper, initPid, canFreeze: true, freeze: (id) => this.freeze(id), thaw: (id) => this.thaw(id) });
    this.net = new CrunNet({ helper, initPid, runDir: (id) => this.bundleDir(id), bundlesDir: o.bundlesDir });
  }

  info(): RuntimeInfo {
    return {
      name: this.o.binary, kind: 'crun', version: this.o.version, available: ['crun'],
      memorySnapshots: false, freeze: true, hotMounts: true, egress: true, exposePorts: true, holders: true, perProcessLimits: true,
      cgroup: this.o.cgroups.kind,
    };
  }

  /** The runtime command line; `wrap` for create/delete on hybrid hosts, `listen` to hand over the agent socket. */
  private argv(args: string[], wrap = false, listen?: string[]): string[] {
    const init = join(this.o.initDir, 'nook-init');
    const base = [...(listen ? [init, ...listen] : []), this.o.path, '--root', this.o.stateRoot, ...args];
    // One static helper instead of unshare + sh: two fewer dynamic programs to start.
    return wrap && this.o.hideUnifiedCgroup ? [init, 'hide-cgroup2', '--', ...base] : base;
  }

  agentSocketPath(sandboxId: string): string {
    return this.agentSocket(sandboxId);
  }

  private agentSocket(sandboxId: string): string {
    const path = join(this.bundleDir(sandboxId), 'agent.sock');
    if (Buffer.byteLength(path) >= 108) {
      throw new NookError('INVALID_ARGUMENT', `the state dir path is too long for a unix socket (${path})`, { hint: 'use a shorter NOOK_STATE_DIR' });
    }
    return path;
  }

  private bundleDir(sandboxId: string): string {
    return join(this.o.bundlesDir, sandboxId);
  }

  async start(spec: StartSpec): Promise<void> {
    const bundle = this.bundleDir(spec.sandboxId);
    await fsp.mkdir(bundle, { recursive: true, mode: 0o700 });
    const config = buildOciSpec({
      rootfs: spec.rootfs,
      hostname: spec.hostname,
      env: spec.env,
      limits: spec.limits,
      cgroupsPath: this.o.cgroups.sandboxPath(spec.sandboxId),
      swapLimit: this.o.cgroups.swapLimit(),
      initDir: this.o.initDir,
      mounts: spec.mounts,
    });
    await fsp.writeFile(join(bundle, 'config.json'), JSON.stringify(config));
    // `run -d` hands its stdio to the container: give it a log file, never our pipes,
    // or the daemon would wait on them for the sandbox's whole life.
    const logPath = join(bundle, 'runtime.log');
    const logFd = openSync(logPath, 'w', 0o600);
    const code = await new Promise<number>((resolve, reject) => {
      const socket = this.agentSocket(spec.sandboxId);
      const runArgs = ['run', '-d', '--preserve-fds', '1', '--pid-file', join(bundle, 'init.pid'), '--bundle', bundle, spec.sandboxId];
      // nook-init binds the agent socket on the host and hands it to the sandbox's PID 1 as fd 3.
      const [cmd, ...args] = this.argv(runArgs, true, ['listen', socket, '--']);
      const child = spawn(cmd ?? '', args, { stdio: ['ignore', logFd, logFd] });
      child.on('error', reject);
      child.on('exit', (c) => resolve(c ?? 1));
    }).finally(() => closeSync(logFd));
    if (code !== 0) {
      const detail = (await fsp.readFile(logPath, 'utf8').catch(() => '')).trim();
      await this.stop(spec.sandboxId, 0).catch(() => undefined);
      throw new NookError('RUNTIME_ERROR', `${this.o.binary} could not start sandbox ${spec.sandboxId}: ${detail || `exit ${code}`}`);
    }
    await this.recordInit(spec.sandboxId, join(bundle, 'init.pid'));
  }

  /**
   * Remembers PID 1 from crun's pid file, only once the process is seen in this sandbox's own
   * cgroup; with its start time, so a pid the kernel has since given to another process is
   * never trusted (initPid). Anything unexpected: nothing recorded, `crun state` answers.
   */
  private async recordInit(sandboxId: string, pidFile: string): Promise<void> {
    const pid = Number((await fsp.readFile(pidFile, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0) return;
    const cgroups = await fsp.readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
    const own = `${this.o.cgroups.sandboxPath(sandboxId)}`.replace(/^\/?/, '/');
    const startTicks = await startTicksOf(pid);
    if (startTicks === null || !cgroups.split('\n').some((l) => l.endsWith(`:${own}`) || l.includes(`:${own}/`))) {
      log('runtime: PID 1 from the pid file not in the sandbox\'s cgroup; crun state will be asked', { sandboxId, pid });
      return;
    }
    this.inits.set(sandboxId, { pid, startTicks });
  }

  async status(sandboxId: string): Promise<ContainerStatus> {
    const r = await run(this.argv(['state', sandboxId]), { allowFail: true });
    if (r.code !== 0) return 'missing';
    try {
      return mapStatus((JSON.parse(r.stdout) as { status?: string }).status);
    } catch {
      return 'missing';
    }
  }

  /** Host pid of the sandbox's PID 1 (its namespaces are entered through it): private to the driver. */
  private async initPid(sandboxId: string): Promise<number | null> {
    return (await this.initProcess(sandboxId))?.pid ?? null;
  }

  /** PID 1 as recorded at start while it still runs (same pid, same start time), else as `crun state` says. */
  private async initProcess(sandboxId: string): Promise<InitProcess | null> {
    const known = this.inits.get(sandboxId);
    if (known && (await startTicksOf(known.pid)) === known.startTicks) return known;
    this.inits.delete(sandboxId);
    const r = await run(this.argv(['state', sandboxId]), { allowFail: true });
    if (r.code !== 0) return null;
    try {
      const pid = (JSON.parse(r.stdout) as { pid?: number }).pid;
      return pid && pid > 0 ? { pid, startTicks: null } : null;
    } catch {
      return null;
    }
  }

  freeze(sandboxId: string): Promise<void> {
    return this.o.cgroups.setFrozen(sandboxId, true);
  }

  thaw(sandboxId: string): Promise<void> {
    return this.o.cgroups.setFrozen(sandboxId, false);
  }

  async list(): Promise<{ id: string; status: ContainerStatus }[]> {
    const r = await run(this.argv(['list', '-f', 'json']), { allowFail: true });
    if (r.code !== 0 || r.stdout.trim() === '') return [];
    const parsed = JSON.parse(r.stdout) as { id: string; status: string }[] | null;
    return (parsed ?? []).map((c) => ({ id: c.id, status: mapStatus(c.status) }));
  }

  async stop(sandboxId: string, graceMs: number): Promise<void> {
    this.inits.delete(sandboxId);
    let st = await this.status(sandboxId);
    if (st !== 'missing') {
      if (st === 'paused') await run(this.argv(['resume', sandboxId]), { allowFail: true });
      if (st !== 'stopped' && graceMs > 0) {
        await run(this.argv(['kill', sandboxId, 'TERM']), { allowFail: true });
        st = await this.waitStopped(sandboxId, graceMs);
      }
      if (st !== 'stopped') {
        await run(this.argv(['kill', sandboxId, 'KILL']), { allowFail: true });
        await this.waitStopped(sandboxId, 5000);
      }
      const del = await run(this.argv(['delete', '-f', sandboxId], true), { allowFail: true });
      if (del.code !== 0 && (await this.status(sandboxId)) !== 'missing') {
        throw new NookError('RUNTIME_ERROR', `${this.o.binary} could not delete sandbox ${sandboxId}: ${del.stderr.trim()}`);
      }
    }
    await this.o.cgroups.removeSandboxGroups(sandboxId);
    // Port bridges hold the sandbox's netns: they go with it, whoever forgot them.
    await this.net.unexposePort(sandboxId, 'all');
    await fsp.rm(this.bundleDir(sandboxId), { recursive: true, force: true });
  }

  private async waitStopped(sandboxId: string, waitMs: number): Promise<ContainerStatus> {
    const deadline = Date.now() + waitMs;
    let st = await this.status(sandboxId);
    while (st !== 'stopped' && st !== 'missing' && Date.now() < deadline) {
      await sleep(10);
      st = await this.status(sandboxId);
    }
    return st;
  }

  exec(sandboxId: string, spec: ExecSpec): Promise<ExecOutcome> {
    return agentExec(this.agentSocket(sandboxId), spec);
  }

  openSession(sandboxId: string, spec: SessionSpec, handlers: { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void }): SessionHandle {
    return new AgentSession(this.agentSocket(sandboxId), spec, handlers);
  }

  mountInto(sandboxId: string, hostPath: string, guestPath: string, opts: { rw: boolean }): Promise<void> {
    return this.mounts.mountInto(sandboxId, hostPath, guestPath, opts);
  }

  unmountFrom(sandboxId: string, guestPath: string, opts: { force: boolean }): Promise<UnmountOutcome> {
    return this.mounts.unmountFrom(sandboxId, guestPath, opts);
  }

  holdersOf(sandboxId: string, guestPath: string): Promise<Holder[]> {
    return this.mounts.holdersOf(sandboxId, guestPath);
  }

  listenInSandbox(sandboxId: string, port: number): Promise<ListenHandle> {
    return this.net.listenInSandbox(sandboxId, port);
  }

  exposePort(sandboxId: string, port: number, opts: { maxConnections: number }): Promise<string> {
    return this.net.exposePort(sandboxId, port, opts);
  }

  unexposePort(sandboxId: string, port: number | 'all'): Promise<void> {
    return this.net.unexposePort(sandboxId, port);
  }

  checkpoint(): Promise<void> {
    return Promise.reject(new NookError('NOT_SUPPORTED', `the ${this.o.binary} runtime cannot save process memory (CRIU does not work on this kernel)`, {
      hint: 'create the sandbox with --runtime gvisor to keep process memory, or leave out --memory',
    }));
  }

  async forget(): Promise<void> {
    // Stateless: nothing kept per sandbox once stopped.
  }

  async setHostname(sandboxId: string, hostname: string): Promise<void> {
    const init = await this.initProcess(sandboxId);
    if (init === null) throw new NookError('RUNTIME_ERROR', `sandbox ${sandboxId} has no running init to rename`);
    // With the start time, nook-init checks it enters this very process (never a recycled pid).
    const argv = [join(this.o.initDir, 'nook-init'), 'sethostname', String(init.pid), hostname, ...(init.startTicks !== null ? [init.startTicks] : [])];
    const r = await run(argv, { allowFail: true });
    if (r.code !== 0) throw new NookError('RUNTIME_ERROR', `could not set the hostname of ${sandboxId}: ${r.stderr.trim()}`);
  }

  sweepStrays(): Promise<void> {
    return this.net.sweepStrays();
  }

  stats(sandboxId: string): Promise<CgroupStats | null> {
    return this.o.cgroups.stats(sandboxId);
  }

  listCgroups(): Promise<string[]> {
    return this.o.cgroups.listSandboxGroups();
  }

  removeCgroups(sandboxId: string): Promise<void> {
    return this.o.cgroups.removeSandboxGroups(sandboxId);
  }

  async release(): Promise<void> {
    await this.o.cgroups.removeParent();
  }

}

interface InitProcess {
  pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks since boot), as a decimal string; null when not known. */
  startTicks: string | null;
}

/** A process's kernel start time, or null when it does not exist. */
async function startTicksOf(pid: number): Promise<string | null> {
  const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // The command name may hold spaces or ')': fields are counted from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = fields[19];
  return ticks !== undefined && /^[0-9]+$/.test(ticks) ? ticks : null;
}

function mapStatus(s: string | undefined): ContainerStatus {
  if (s === 'running') return 'running';
  if (s === 'paused') return 'paused';
  // 'created' means start never happened (a crash between the two): treat as stopped.
  return 'stopped';
}

