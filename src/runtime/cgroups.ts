import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';

const ROOT = '/sys/fs/cgroup';

/**
 * cgroup v1 helpers. The runtime (crun) creates each sandbox's cgroups under one parent
 * per daemon; nook finds and removes what a crash left behind.
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

  /** Freezes (or thaws) every task of a sandbox and waits until the kernel says it is done. */
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

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
