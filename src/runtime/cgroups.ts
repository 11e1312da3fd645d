import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';

const ROOT = '/sys/fs/cgroup';

/**
 * cgroup v1 helpers. The runtime (crun) owns each sandbox's cgroups; nook adds one freezer
 * sub-cgroup per exec so a timed-out command's whole tree, daemonised children included,
 * can be frozen and killed without a race against fork.
 */
export class CgroupV1 {
  /** e.g. `/nook-1a2b3c4d`: one parent per state dir, so two daemons never touch each other's. */
  constructor(readonly parent: string) {}

  static detect(): 'v1' | 'v1-hybrid' | 'v2' {
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

  private freezerDir(sandboxId: string, execId?: string): string {
    const base = join(ROOT, 'freezer', this.parent, sandboxId);
    return execId ? join(base, `x-${execId}`) : base;
  }

  async createExecGroup(sandboxId: string, execId: string): Promise<string> {
    const dir = this.freezerDir(sandboxId, execId);
    await fsp.mkdir(dir);
    return dir;
  }

  async addProcess(groupDir: string, pid: number): Promise<void> {
    await fsp.writeFile(join(groupDir, 'cgroup.procs'), String(pid));
  }

  /** Freezes the group, SIGKILLs every task in it, thaws, and waits until it is empty. */
  async killGroup(groupDir: string, waitMs = 2000): Promise<void> {
    const pids = async (): Promise<number[]> => {
      try {
        const text = await fsp.readFile(join(groupDir, 'cgroup.procs'), 'utf8');
        return text.split('\n').filter(Boolean).map(Number);
      } catch {
        return [];
      }
    };
    if ((await pids()).length === 0) return;
    const state = join(groupDir, 'freezer.state');
    await fsp.writeFile(state, 'FROZEN').catch(() => undefined);
    for (const pid of await pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await fsp.writeFile(state, 'THAWED').catch(() => undefined);
    const deadline = Date.now() + waitMs;
    while ((await pids()).length > 0 && Date.now() < deadline) await sleep(5);
  }

  async removeGroup(groupDir: string): Promise<void> {
    await fsp.rmdir(groupDir).catch(() => undefined);
  }

  /** Kills and removes every exec group a sandbox still has (after a crash, or before stop). */
  async killExecGroups(sandboxId: string): Promise<void> {
    let entries: string[] = [];
    try {
      entries = await fsp.readdir(this.freezerDir(sandboxId));
    } catch {
      return;
    }
    for (const e of entries.filter((n) => n.startsWith('x-'))) {
      const dir = join(this.freezerDir(sandboxId), e);
      await this.killGroup(dir);
      await this.removeGroup(dir);
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
    await this.killExecGroups(sandboxId);
    for (const c of await this.controllers()) {
      const dir = join(ROOT, c, this.parent, sandboxId);
      await removeTree(dir);
    }
  }

  async removeParent(): Promise<void> {
    for (const c of await this.controllers()) await fsp.rmdir(join(ROOT, c, this.parent)).catch(() => undefined);
  }

  /** Current memory use of a sandbox, in bytes (0 when it has no memory cgroup). */
  async memoryUsageBytes(sandboxId: string): Promise<number> {
    try {
      return Number((await fsp.readFile(join(ROOT, 'memory', this.parent, sandboxId, 'memory.usage_in_bytes'), 'utf8')).trim());
    } catch {
      return 0;
    }
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

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
