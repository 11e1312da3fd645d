import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';
const ROOT = CGROUP_ROOT;

export type CgroupKind = 'v1' | 'v1-hybrid' | 'v2';

/** Live figures of one sandbox's cgroup (null fields: the controller is not there). */
export interface CgroupStats {
  memoryBytes: number | null;
  cpuSeconds: number | null;
  pids: number | null;
}

/**
 * What the runtime needs from the host's cgroups, whatever their version. The runtime (crun)
 * creates each sandbox's cgroup under one parent per daemon and writes its limits; nook
 * freezes, reads, and removes what a crash left behind.
 */
export interface CgroupHost {
  readonly kind: CgroupKind;
  /** The parent every sandbox cgroup of this daemon lives under (relative to the cgroup root). */
  readonly parent: string;
  /** The `linux.cgroupsPath` crun gets for a sandbox. */
  sandboxPath(sandboxId: string): string;
  /** Whether a swap limit can be set (the kernel may lack swap accounting; crun fails then). */
  swapLimit(): boolean;
  /** Freezes (or thaws) every task of a sandbox and waits until the kernel says it is done. */
  setFrozen(sandboxId: string, frozen: boolean, waitMs?: number): Promise<void>;
  stats(sandboxId: string): Promise<CgroupStats | null>;
  /** Sandbox ids that have a cgroup under our parent. */
  listSandboxGroups(): Promise<string[]>;
  /** Removes a sandbox's cgroups (children first), killing whatever is still in them where the kernel allows. */
  removeSandboxGroups(sandboxId: string): Promise<void>;
  removeParent(): Promise<void>;
}

export function detectCgroupKind(): CgroupKind {
  return CgroupV1.detect();
}

/** cgroup v1 (and hybrid) hosts: one hierarchy per controller. */
export class CgroupV1 implements CgroupHost {
  readonly kind: CgroupKind;

  /** e.g. `/nook-1a2b3c4d`: one parent per state dir, so two daemons never touch each other's. */
  constructor(readonly parent: string, kind: 'v1' | 'v1-hybrid' = 'v1') {
    this.kind = kind;
  }

  static detect(): CgroupKind {
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    const v1 = / - cgroup cgroup /.test(mounts);
    if (!v1) return 'v2';
    let unifiedControllers = '';
    try {
      unifiedControllers = readFileSync(join(ROOT, 'unified', 'cgroup.controllers'), 'utf8').trim();
    } catch {
      // no unified hierarchy: pure v1
    }
    return unifiedControllers === '' ? 'v1' : 'v1-hybrid';
  }

  sandboxPath(sandboxId: string): string {
    return `${this.parent}/${sandboxId}`;
  }

  swapLimit(): boolean {
    return existsSync(join(ROOT, 'memory', 'memory.memsw.limit_in_bytes'));
  }

  async stats(sandboxId: string): Promise<CgroupStats | null> {
    const dir = (ctl: string): string => join(ROOT, ctl, this.parent, sandboxId);
    if (!existsSync(dir('memory')) && !existsSync(dir('pids'))) return null;
    const cpuNs = await readNumber(join(dir('cpuacct'), 'cpuacct.usage'));
    return {
      memoryBytes: await readNumber(join(dir('memory'), 'memory.usage_in_bytes')),
      cpuSeconds: cpuNs === null ? null : cpuNs / 1e9,
      pids: await readNumber(join(dir('pids'), 'pids.current')),
    };
  }

  async setFrozen(sandboxId: string, frozen: boolean, waitMs = 5000): Promise<void> {
    const file = join(ROOT, 'freezer', this.parent, sandboxId, 'freezer.state');
    const want = frozen ? 'FROZEN' : 'THAWED';
    await fsp.writeFile(file, want);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const state = (await fsp.readFile(file, 'utf8')).trim();
      if (state === want) return;
      if (Date.now() > deadline) throw new NookError('RUNTIME_ERROR', `sandbox ${sandboxId} did not reach ${want} (it is ${state})`);
      await sleep(1);
    }
  }

  private async controllers(): Promise<string[]> {
    const entries = await fsp.readdir(ROOT);
    const out: string[] = [];
    for (const e of entries) {
      if (e === 'unified') continue;
      try {
        await fsp.access(join(ROOT, e, 'cgroup.procs'));
        out.push(e);
      } catch {
        // not a hierarchy (or a symlink such as cpu,cpuacct already listed)
      }
    }
    return out;
  }

  /** Sandbox ids that have a cgroup under our parent in any controller. */
  async listSandboxGroups(): Promise<string[]> {
    const ids = new Set<string>();
    for (const c of await this.controllers()) {
      try {
        for (const e of await fsp.readdir(join(ROOT, c, this.parent), { withFileTypes: true })) if (e.isDirectory()) ids.add(e.name);
      } catch {
        // parent not created in this controller
      }
    }
    return [...ids];
  }

  /** Removes a sandbox's cgroups in every controller (children first); kills what is left. */
  async removeSandboxGroups(sandboxId: string): Promise<void> {
    for (const c of await this.controllers()) {
      const dir = join(ROOT, c, this.parent, sandboxId);
      await removeTree(dir);
    }
  }

  async removeParent(): Promise<void> {
    // 'unified' too: runc on a hybrid host makes the parent there as well (crun runs with it hidden).
    for (const c of [...(await this.controllers()), 'unified']) await fsp.rmdir(join(ROOT, c, this.parent)).catch(() => undefined);
  }

}

async function removeTree(dir: string): Promise<void> {
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await removeTree(join(dir, e.name));
  try {
    await fsp.rmdir(dir);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code !== 'ENOENT') throw new NookError('RUNTIME_ERROR', `cannot remove cgroup ${dir}: ${err.message}`);
  }
}

/** A cgroup file holding one integer, or null (absent, or `max`). */
export async function readNumber(file: string): Promise<number | null> {
  const text = (await fsp.readFile(file, 'utf8').catch(() => '')).trim();
  return /^\d+$/.test(text) ? Number(text) : null;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
