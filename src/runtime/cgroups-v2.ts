import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { NookError } from '../api/errors.js';
import { run } from '../util/proc.js';
import { CGROUP_ROOT, readNumber, sleep, type CgroupHost, type CgroupKind, type CgroupStats } from './cgroups.js';

/** The controllers a sandbox needs: crun writes memory.max, memory.swap.max, cpu.max, pids.max. */
const CONTROLLERS = ['cpu', 'memory', 'pids'];
/** The leaf the daemon moves itself into, so its own cgroup may hand controllers down. */
const DAEMON_LEAF = 'daemon';
const UNIT_HINT =
  'run nookd as the nookd.service unit (scripts/install.sh installs it; it sets Delegate=yes), or start it with `systemd-run -p Delegate=yes --unit nookd nookd`';

/**
 * cgroup v2 (unified) hosts. The layout, for a daemon whose delegated cgroup is `<own>`:
 *
 *   <own>/daemon            nookd itself (a leaf: "no internal processes")
 *   <own>/nook-<instance>/  this daemon's parent; controllers enabled in its subtree_control
 *     <sandbox-id>          one leaf per sandbox, created by crun (cgroupfs manager)
 *
 * Under systemd, `<own>` is the unit's cgroup and must be delegated (Delegate=yes): systemd
 * then never writes below it. Without systemd, `<own>` is the root and the parent is
 * `/nook-<instance>`. Either way nook writes only into `<own>`'s subtree_control and below.
 * Exec trees need no cgroup of their own: the agent is a child subreaper and kills every
 * descendant (native/src/tree.c), on v1 and v2 alike.
 */
export class CgroupV2 implements CgroupHost {
  readonly kind: CgroupKind = 'v2';
  private swap = false;

  private constructor(readonly parent: string) {}

  /** Claims this daemon's subtree (moving the daemon into a leaf first) or says why it cannot. */
  static async claim(instance: string): Promise<CgroupV2> {
    const base = await delegatedBase();
    if (base !== '/') await moveSelfIntoLeaf(base);
    await enableControllers(base);
    const parent = posix.join(base, `nook-${instance}`);
    await fsp.mkdir(abs(parent), { recursive: true });
    await enableControllers(parent);
    const cg = new CgroupV2(parent);
    cg.swap = existsSync(join(abs(parent), 'memory.swap.max'));
    return cg;
  }

  sandboxPath(sandboxId: string): string {
    return posix.join(this.parent, sandboxId);
  }

  swapLimit(): boolean {
    return this.swap;
  }

  private dir(sandboxId: string): string {
    return abs(this.sandboxPath(sandboxId));
  }

  /** cgroup.freeze freezes the whole subtree; cgroup.events says when it is done. */
  async setFrozen(sandboxId: string, frozen: boolean, waitMs = 5000): Promise<void> {
    const dir = this.dir(sandboxId);
    await fsp.writeFile(join(dir, 'cgroup.freeze'), frozen ? '1' : '0');
    const want = frozen ? 'frozen 1' : 'frozen 0';
    const deadline = Date.now() + waitMs;
    for (;;) {
      const events = await fsp.readFile(join(dir, 'cgroup.events'), 'utf8');
      if (events.split('\n').includes(want)) return;
      if (Date.now() > deadline) throw new NookError('RUNTIME_ERROR', `sandbox ${sandboxId} did not reach ${want} (${events.replace(/\n/g, ', ')})`);
      await sleep(1);
    }
  }

  async stats(sandboxId: string): Promise<CgroupStats | null> {
    const dir = this.dir(sandboxId);
    if (!existsSync(dir)) return null;
    const cpuStat = await fsp.readFile(join(dir, 'cpu.stat'), 'utf8').catch(() => '');
    const usageUs = /^usage_usec (\d+)$/m.exec(cpuStat)?.[1];
    return {
      memoryBytes: await readNumber(join(dir, 'memory.current')),
      cpuSeconds: usageUs === undefined ? null : Number(usageUs) / 1e6,
      pids: await readNumber(join(dir, 'pids.current')),
    };
  }

  async listSandboxGroups(): Promise<string[]> {
    const entries = await fsp.readdir(abs(this.parent), { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  }

  async removeSandboxGroups(sandboxId: string): Promise<void> {
    await removeTree(this.dir(sandboxId));
  }

  async removeParent(): Promise<void> {
    await fsp.rmdir(abs(this.parent)).catch(() => undefined);
  }
}

function abs(path: string): string {
  return join(CGROUP_ROOT, path);
}

/** This process's cgroup path (the `0::` line of /proc/self/cgroup). */
function ownCgroup(): string {
  const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
  return line ? line.slice(3) : '/';
}

/**
 * The cgroup nookd may manage: under systemd its unit's cgroup, which must be delegated; without
 * systemd the root (the daemon then owns `/nook-<instance>` and nothing else).
 */
async function delegatedBase(): Promise<string> {
  const own = ownCgroup();
  if (!existsSync('/run/systemd/system')) return '/';
  // A daemon restarted inside its unit by a wrapper starts in the leaf it left.
  const unitCgroup = posix.basename(own) === DAEMON_LEAF ? posix.dirname(own) : own;
  const unit = posix.basename(unitCgroup);
  if (unitCgroup !== '/' && /\.(service|scope)$/.test(unit)) {
    const r = await run(['systemctl', 'show', '--property=Delegate', '--value', unit], { allowFail: true });
    if (r.code === 0 && r.stdout.trim() === 'yes') return unitCgroup;
  }
  throw new NookError('NOT_SUPPORTED', `this cgroup v2 host runs systemd, and nookd's cgroup (${own}) is not delegated to it`, {
    hint: UNIT_HINT,
    context: { cgroup: own },
  });
}

/** Moves every process of `base` (nookd and anything it started there) into `<base>/daemon`. */
async function moveSelfIntoLeaf(base: string): Promise<void> {
  const leaf = abs(posix.join(base, DAEMON_LEAF));
  await fsp.mkdir(leaf, { recursive: true });
  const procs = (await fsp.readFile(join(abs(base), 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean);
  for (const pid of procs) {
    await fsp.writeFile(join(leaf, 'cgroup.procs'), pid).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ESRCH') throw e;
    });
  }
}

/** Enables the sandbox controllers for `path`'s children (only those not already on). */
async function enableControllers(path: string): Promise<void> {
  const dir = abs(path);
  const available = (await fsp.readFile(join(dir, 'cgroup.controllers'), 'utf8')).trim().split(/\s+/);
  const missing = CONTROLLERS.filter((c) => !available.includes(c));
  if (missing.length > 0) {
    throw new NookError('NOT_SUPPORTED', `the cgroup v2 controllers ${missing.join(', ')} are not available in ${path}`, {
      hint: path === '/' ? 'enable them in the kernel (cgroup_enable=...) and reboot' : `delegate them to nookd: ${UNIT_HINT}`,
    });
  }
  const enabled = (await fsp.readFile(join(dir, 'cgroup.subtree_control'), 'utf8')).trim().split(/\s+/);
  const toEnable = CONTROLLERS.filter((c) => !enabled.includes(c));
  if (toEnable.length === 0) return;
  try {
    await fsp.writeFile(join(dir, 'cgroup.subtree_control'), toEnable.map((c) => `+${c}`).join(' '));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new NookError('NOT_SUPPORTED', `cannot enable the ${toEnable.join(', ')} controllers in ${path}: ${err.message}`, {
      hint: err.code === 'EBUSY' ? `processes other than nookd's sit in ${path}; ${UNIT_HINT}` : UNIT_HINT,
    });
  }
}

/**
 * Removes a cgroup and its children, killing what is still inside (a crash can leave a
 * sandbox's processes behind): cgroup.kill where the kernel has it (5.14+), else SIGKILL per pid.
 */
export async function removeTree(dir: string): Promise<void> {
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await removeTree(join(dir, e.name));
  await killAll(dir);
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await fsp.rmdir(dir);
      return;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') return;
      if (err.code !== 'EBUSY' || Date.now() > deadline) throw new NookError('RUNTIME_ERROR', `cannot remove cgroup ${dir}: ${err.message}`);
      await killAll(dir);
      await sleep(10);
    }
  }
}

async function killAll(dir: string): Promise<void> {
  const procs = (await fsp.readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
  if (procs.length === 0) return;
  if (existsSync(join(dir, 'cgroup.kill'))) {
    await fsp.writeFile(join(dir, 'cgroup.kill'), '1').catch(() => undefined);
    return;
  }
  // Thaw first: a frozen task does not die until thawed.
  await fsp.writeFile(join(dir, 'cgroup.freeze'), '0').catch(() => undefined);
  for (const pid of procs) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
}
