/**
 * Hot mounts for OCI-runtime sandboxes (crun, runc): the sandbox's PID 1 is a host process,
 * so `nook-init mount-into <pid>` enters its mount namespace and attaches an idmapped
 * mount; unmounting scans the sandbox's processes in /proc for what still reaches it.
 * Pids never leave this module: core sees Holder descriptions and outcomes only.
 */
import { promises as fsp } from 'node:fs';
import { NookError } from '../api/errors.js';
import { findHolders, isGone, mountsOf, type DevId, type Holder } from '../util/holders.js';
import { log } from '../util/log.js';
import { run } from '../util/proc.js';
import type { UnmountOutcome } from './driver.js';

/** How long killed holders get to close their files before unmount gives up. */
const HOLDERS_EXIT_MS = 5000;

export interface CrunMountDeps {
  /** nook-init on the host. */
  helper: string;
  /** Host pid of the sandbox's PID 1, or null without compute. */
  initPid(sandboxId: string): Promise<number | null>;
  /** Whether the freezer can be used (flags of the driver). */
  canFreeze: boolean;
  freeze(sandboxId: string): Promise<void>;
  thaw(sandboxId: string): Promise<void>;
}

/** Host pids whose cgroup path names the sandbox (every process the runtime put there, and their children). */
export async function sandboxPids(sandboxId: string): Promise<number[]> {
  const out: number[] = [];
  const needle = new RegExp(`/${sandboxId.replace(/[^\w-]/g, '')}(/|$)`, 'm');
  for (const e of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cg = await fsp.readFile(`/proc/${e}/cgroup`, 'utf8').catch(() => '');
    if (needle.test(cg)) out.push(Number(e));
  }
  return out;
}

/** What is mounted at a guest path, seen from the sandbox's PID 1. */
interface Target {
  pid: number;
  dev: DevId;
  /** The sandbox's own mount namespace: processes in another one are checked for a mount copy. */
  mntNs: string | null;
}

export class CrunMounts {
  constructor(private readonly d: CrunMountDeps) {}

  async mountInto(sandboxId: string, hostPath: string, guestPath: string, opts: { rw: boolean }): Promise<void> {
    const pid = await this.d.initPid(sandboxId);
    if (!pid) throw new NookError('INVALID_STATE', `sandbox ${sandboxId} has no running compute`);
    const m = await run([this.d.helper, 'mount-into', String(pid), hostPath, guestPath, opts.rw ? 'rw' : 'ro'], { allowFail: true });
    if (m.code !== 0) {
      const detail = m.stderr.trim();
      throw new NookError('RUNTIME_ERROR', `cannot mount ${hostPath} at ${guestPath}: ${detail}`, { context: { detail } });
    }
  }

  private async target(sandboxId: string, guestPath: string): Promise<Target | null> {
    const pid = await this.d.initPid(sandboxId);
    if (!pid) return null; // no compute: nothing reaches it any more
    const mntNs = await fsp.readlink(`/proc/${pid}/ns/mnt`).catch(() => null);
    const dev = (await mountsOf(pid).catch(() => [])).find((m) => m.point === guestPath)?.dev;
    return dev ? { pid, dev, mntNs } : null;
  }

  async holdersOf(sandboxId: string, guestPath: string): Promise<Holder[]> {
    const t = await this.target(sandboxId, guestPath);
    return t ? findHolders(await sandboxPids(sandboxId), t.dev, t.mntNs) : [];
  }

  /**
   * Frozen while it is looked at, so no process opens anything between the scan and the
   * unmount, and a pid cannot be reused between being found and being killed.
   */
  async unmountFrom(sandboxId: string, guestPath: string, opts: { force: boolean }): Promise<UnmountOutcome> {
    const t = await this.target(sandboxId, guestPath);
    if (!t) return { status: 'not-mounted' };
    const scan = async (): Promise<Holder[]> => findHolders(await sandboxPids(sandboxId), t.dev, t.mntNs);
    const freeze = this.d.canFreeze;
    if (freeze) await this.d.freeze(sandboxId);
    let frozen = freeze;
    let killed: Holder[] = [];
    try {
      let holders = await scan();
      if (holders.length > 0 && !opts.force) return { status: 'busy', holders, why: 'is in use' };
      if (holders.length > 0) {
        killed = holders.filter((h) => h.pid !== t.pid);
        for (const h of killed) process.kill(h.pid, 'SIGKILL');
        if (frozen) await this.d.thaw(sandboxId);
        frozen = false;
        await waitGone(killed.map((h) => h.pid));
        if (freeze) await this.d.freeze(sandboxId);
        frozen = freeze;
        holders = await scan();
        if (holders.length > 0) return { status: 'busy', holders, why: 'still held after killing its holders' };
      }
      // Every mount of it in the sandbox's namespace (a bind copy would keep it reachable), deepest first.
      const points = [...new Set((await mountsOf(t.pid)).filter((m) => m.dev === t.dev).map((m) => m.point))].sort((a, b) => b.length - a.length);
      const u = await run([this.d.helper, 'umount-from', String(t.pid), ...points], { allowFail: true });
      if (u.code === 16) return { status: 'busy', holders: await scan(), why: 'is in use' };
      if (u.code !== 0) throw new NookError('RUNTIME_ERROR', `cannot unmount ${guestPath}: ${u.stderr.trim()}`, { hint: 'it stays attached; see the daemon log' });
      return { status: 'unmounted', killed };
    } finally {
      if (frozen) await this.d.thaw(sandboxId).catch((e: Error) => log('unmount: thaw failed', { sandboxId, error: e.message }));
    }
  }
}

async function waitGone(pids: number[]): Promise<void> {
  const deadline = Date.now() + HOLDERS_EXIT_MS;
  for (;;) {
    const left = [];
    for (const p of pids) if (!(await isGone(p))) left.push(p);
    if (left.length === 0 || Date.now() > deadline) return;
    await new Promise((res) => setTimeout(res, 20));
  }
}
