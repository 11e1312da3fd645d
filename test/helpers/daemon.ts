/**
 * Starts a real nookd on a temporary state dir and socket, and tears it down so the host
 * is left as found: compute stopped, pool unmounted (which frees its loop device),
 * cgroups removed, state dir deleted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { NookClient } from '../../src/sdk/client.js';
import { run } from '../../src/util/proc.js';
import { mountsUnder } from '../../src/util/fs.js';
import { resolvePaths } from '../../src/core/paths.js';
import { detectCgroupKind } from '../../src/runtime/cgroups.js';
import { removeTree as removeV2Tree } from '../../src/runtime/cgroups-v2.js';

export const REPO_ROOT = join(import.meta.dirname, '..', '..', '..');
export const DAEMON_MAIN = join(REPO_ROOT, 'dist', 'src', 'daemon', 'main.js');
/** The CLI as installed (package.json bin): the esbuild bundle of scripts/bundle-cli.mjs. */
export const CLI_MAIN = join(REPO_ROOT, 'dist', 'src', 'bin', 'nook.js');
/** The CLI as tsc emits it, one file per module (the bundle is built from it). */
export const CLI_UNBUNDLED = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class TestDaemon {
  proc: ChildProcess | undefined;
  readonly client: NookClient;
  readonly socket: string;
  log = '';

  constructor(
    readonly stateDir: string,
    readonly extraEnv: Record<string, string> = {},
  ) {
    this.socket = join(stateDir, 'nook.sock');
    this.client = new NookClient({ socketPath: this.socket });
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, NOOK_STATE_DIR: this.stateDir, NOOK_SOCKET: this.socket, NOOK_POOL_SIZE_GIB: '8', ...this.extraEnv };
  }

  async start(): Promise<void> {
    const proc = spawn(process.execPath, [DAEMON_MAIN], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout?.on('data', (b: Buffer) => (this.log += b.toString()));
    proc.stderr?.on('data', (b: Buffer) => (this.log += b.toString()));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`nookd exited ${proc.exitCode}:\n${this.log}`);
      try {
        await this.client.health();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error(`nookd did not answer:\n${this.log}`);
  }

  /** Kills the daemon the hard way, as a crash would. Sandboxes keep running. */
  async kill9(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }

  async restart(): Promise<void> {
    await this.kill9();
    await this.start();
  }

  /** Runs the real CLI against this daemon. */
  cli(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
    return run([process.execPath, CLI_MAIN, ...args], { env: { ...this.env, ...(options.env ?? {}) }, allowFail: true, ...(options.input !== undefined ? { input: options.input } : {}) });
  }

  async teardown(): Promise<void> {
    const proc = this.proc;
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      try {
        for (const s of await this.client.sandboxes.list()) await s.destroy().catch(() => undefined);
        await this.client.shutdown({ release: true });
      } catch {
        proc.kill('SIGKILL');
      }
      await exited;
    }
    await forceClean(this.stateDir);
  }
}

/** Last-resort cleanup, also run after a clean shutdown to prove nothing is left. */
export async function forceClean(stateDir: string): Promise<string[]> {
  const leaks: string[] = [];
  const paths = resolvePaths({ NOOK_STATE_DIR: stateDir });
  const crunRoot = paths.runtimeStateDir;
  if (existsSync(crunRoot)) {
    for (const id of readdirSync(crunRoot)) {
      leaks.push(`container ${id}`);
      await run(['crun', '--root', crunRoot, 'delete', '-f', id], { allowFail: true });
    }
  }
  const runscRoot = `${crunRoot}-runsc`;
  if (existsSync(runscRoot)) {
    const listed = await run(['runsc', '--root', runscRoot, 'list', '-format', 'json'], { allowFail: true });
    for (const c of (JSON.parse(listed.stdout.trim() || 'null') as { id: string }[] | null) ?? []) {
      leaks.push(`gvisor container ${c.id}`);
      await run(['runsc', '--root', runscRoot, 'delete', '-force', c.id], { allowFail: true });
    }
  }
  // Network bridges (socat in a sandbox's namespace) a crashed daemon left: by pid file, never by name.
  if (existsSync(paths.bundlesDir)) {
    for (const sb of readdirSync(paths.bundlesDir)) {
      for (const f of readdirSync(join(paths.bundlesDir, sb)).filter((n) => n.endsWith('.bridge.pid'))) {
        const pid = Number(readFileSync(join(paths.bundlesDir, sb, f), 'utf8'));
        if (pid > 0 && existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('socat')) {
          leaks.push(`bridge ${pid}`);
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            // gone meanwhile
          }
        }
      }
    }
  }
  for (const m of await mountsUnder(stateDir)) {
    leaks.push(`mount ${m}`);
    await run(['umount', '-l', m], { allowFail: true });
  }
  if (detectCgroupKind() === 'v2') {
    // Wherever the daemon's subtree was (the root, or a delegated unit's cgroup): by instance name.
    const found = await run(['find', '/sys/fs/cgroup', '-mindepth', '1', '-type', 'd', '-name', `nook-${paths.instance}`, '-prune'], { allowFail: true });
    for (const dir of found.stdout.split('\n').filter(Boolean)) {
      leaks.push(`cgroup ${dir}`);
      await removeV2Tree(dir).catch(() => undefined);
    }
  } else {
    for (const ctl of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', ctl, `nook-${paths.instance}`);
      if (existsSync(dir)) {
        leaks.push(`cgroup ${dir}`);
        await run(['find', dir, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';'], { allowFail: true });
      }
    }
  }
  const loops = await run(['losetup', '-j', join(paths.storageDir, 'btrfs', 'pool.btrfs')], { allowFail: true });
  for (const line of loops.stdout.split('\n').filter(Boolean)) {
    const dev = line.split(':')[0] ?? '';
    leaks.push(`loop ${dev}`);
    await run(['losetup', '-d', dev], { allowFail: true });
  }
  rmSync(stateDir, { recursive: true, force: true });
  return leaks;
}

export async function startDaemon(extraEnv: Record<string, string> = {}): Promise<TestDaemon> {
  const d = new TestDaemon(mkdtempSync('/tmp/nookt-'), extraEnv);
  await d.start();
  return d;
}

/** Processes on the host whose command line contains `marker` (to prove nothing escaped a kill). */
export function hostProcessesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(marker)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
