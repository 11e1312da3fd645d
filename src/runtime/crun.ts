import { spawn } from 'node:child_process';
import { openSync, closeSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { NookError } from '../api/errors.js';
import { newId } from '../util/ids.js';
import { run } from '../util/proc.js';
import { CgroupV1, sleep } from './cgroups.js';
import type { ContainerStatus, ExecOutcome, ExecSpec, RuntimeDriver, RuntimeInfo, StartSpec } from './driver.js';
import { buildOciSpec, INIT_PATH_IN_SANDBOX } from './oci-config.js';

export interface OciRuntimeOptions {
  binary: 'crun' | 'runc';
  path: string;
  version: string;
  /** The runtime's own state (`--root`): one per state dir, so daemons never see each other's. */
  stateRoot: string;
  bundlesDir: string;
  initDir: string;
  cgroups: CgroupV1;
  /**
   * crun 1.8 refuses hybrid cgroup hosts (a cgroup2 mount holding a controller). Run its
   * create/delete in a private mount namespace without that mount (platform notes).
   */
  hideUnifiedCgroup: boolean;
}

const HIDE_UNIFIED = 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"';

/** The crun driver (runc, same CLI, as fallback): thin and stateless. */
export class OciRuntimeDriver implements RuntimeDriver {
  constructor(private readonly o: OciRuntimeOptions) {}

  info(): RuntimeInfo {
    return { name: this.o.binary, version: this.o.version, memorySnapshots: false, freeze: true };
  }

  private argv(args: string[], wrap = false): string[] {
    const base = [this.o.path, '--root', this.o.stateRoot, ...args];
    return wrap && this.o.hideUnifiedCgroup ? ['unshare', '-m', '--propagation', 'unchanged', 'sh', '-c', HIDE_UNIFIED, 'sh', ...base] : base;
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
      initDir: this.o.initDir,
    });
    await fsp.writeFile(join(bundle, 'config.json'), JSON.stringify(config));
    // `run -d` hands its stdio to the container: give it a log file, never our pipes,
    // or the daemon would wait on them for the sandbox's whole life.
    const logPath = join(bundle, 'runtime.log');
    const logFd = openSync(logPath, 'w', 0o600);
    const code = await new Promise<number>((resolve, reject) => {
      const [cmd, ...args] = this.argv(['run', '-d', '--bundle', bundle, spec.sandboxId], true);
      const child = spawn(cmd ?? '', args, { stdio: ['ignore', logFd, logFd] });
      child.on('error', reject);
      child.on('exit', (c) => resolve(c ?? 1));
    }).finally(() => closeSync(logFd));
    if (code !== 0) {
      const detail = (await fsp.readFile(logPath, 'utf8').catch(() => '')).trim();
      await this.stop(spec.sandboxId, 0).catch(() => undefined);
      throw new NookError('RUNTIME_ERROR', `${this.o.binary} could not start sandbox ${spec.sandboxId}: ${detail || `exit ${code}`}`);
    }
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

  async list(): Promise<{ id: string; status: ContainerStatus }[]> {
    const r = await run(this.argv(['list', '-f', 'json']), { allowFail: true });
    if (r.code !== 0 || r.stdout.trim() === '') return [];
    const parsed = JSON.parse(r.stdout) as { id: string; status: string }[] | null;
    return (parsed ?? []).map((c) => ({ id: c.id, status: mapStatus(c.status) }));
  }

  async stop(sandboxId: string, graceMs: number): Promise<void> {
    let st = await this.status(sandboxId);
    if (st !== 'missing') {
      await this.o.cgroups.killExecGroups(sandboxId);
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

  async exec(sandboxId: string, spec: ExecSpec): Promise<ExecOutcome> {
    const started = Date.now();
    const execId = newId('x', 8).slice(2);
    const group = await this.o.cgroups.createExecGroup(sandboxId, execId);
    const pidFile = join(this.bundleDir(sandboxId), `exec-${execId}.pid`);
    const shim = [INIT_PATH_IN_SANDBOX, 'exec', '--wait-fd', '3', ...(spec.user ? ['--user', spec.user] : []), '--', ...spec.argv];
    const envArgs = Object.entries(spec.env).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
    const [cmd, ...args] = this.argv(['exec', '--no-new-privs', '--preserve-fds', '1', '--pid-file', pidFile, '--cwd', spec.cwd, ...envArgs, sandboxId, ...shim]);
    const child = spawn(cmd ?? '', args, { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    let timedOut = false;
    let aborted = false;
    let placed = false;
    const killTree = async (): Promise<void> => {
      await this.o.cgroups.killGroup(group);
      // Not yet placed: the shim is still waiting for our go and will never run the command.
      if (!placed) child.kill('SIGKILL');
    };

    const control = child.stdio[3] as Duplex;
    control.on('error', () => undefined);
    control.once('data', () => {
      void (async () => {
        try {
          const pid = await readPidFile(pidFile);
          await this.o.cgroups.addProcess(group, pid);
          placed = true;
          control.end('g');
        } catch {
          // Refuse to run anything we could not confine: the shim exits 125 on EOF.
          control.destroy();
        }
      })();
    });
    child.stdout.on('data', spec.onStdout);
    child.stderr.on('data', spec.onStderr);
    child.stdin.on('error', () => undefined);
    child.stdin.end(spec.stdin ?? Buffer.alloc(0));

    const timer = setTimeout(() => {
      timedOut = true;
      void killTree();
    }, spec.timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      void killTree();
    };
    spec.signal?.addEventListener('abort', onAbort, { once: true });
    if (spec.signal?.aborted) onAbort();

    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', () => resolve({ code: 125, signal: null }));
    });
    clearTimeout(timer);
    spec.signal?.removeEventListener('abort', onAbort);
    // The command has ended: nothing it started may outlive it (background work is a
    // separate, explicit feature). Killing the group also closes pipes held by children.
    await this.o.cgroups.killGroup(group);
    await Promise.race([Promise.all([closed(child.stdout), closed(child.stderr)]), sleep(2000)]);
    await this.o.cgroups.removeGroup(group);
    await fsp.rm(pidFile, { force: true });

    const exitCode = exit.code ?? 128 + 9;
    const signal = timedOut || aborted ? 'SIGKILL' : exitCode > 128 && exitCode < 128 + 65 ? signalName(exitCode - 128) : null;
    return { exitCode: timedOut ? 124 : exitCode, signal, timedOut, aborted, durationMs: Date.now() - started };
  }

  async killStrayExecs(sandboxId: string): Promise<void> {
    await this.o.cgroups.killExecGroups(sandboxId);
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

  memoryUsageBytes(sandboxId: string): Promise<number> {
    return this.o.cgroups.memoryUsageBytes(sandboxId);
  }
}

function mapStatus(s: string | undefined): ContainerStatus {
  if (s === 'running') return 'running';
  if (s === 'paused') return 'paused';
  // 'created' means start never happened (a crash between the two): treat as stopped.
  return 'stopped';
}

async function readPidFile(path: string): Promise<number> {
  for (let i = 0; i < 400; i++) {
    try {
      const pid = Number((await fsp.readFile(path, 'utf8')).trim());
      if (pid > 0) return pid;
    } catch {
      // not written yet
    }
    await sleep(i < 50 ? 1 : 5);
  }
  throw new NookError('RUNTIME_ERROR', 'the runtime did not report the pid of the exec');
}

function closed(stream: Readable): Promise<void> {
  return finished(stream).catch(() => undefined);
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 15: 'SIGTERM' };
function signalName(n: number): string {
  return SIGNALS[n] ?? `SIG${n}`;
}
