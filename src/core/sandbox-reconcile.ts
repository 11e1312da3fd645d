/** Startup reconcile of sandboxes, and the disk limit a new one gets: the sandbox manager's helpers that need no lock. */
import { NookError } from '../api/errors.js';
import { DEFAULTS, LIMITS, MiB } from '../api/schemas.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { StorageDriver } from '../storage/driver.js';
import type { Db } from '../store/db.js';
import { log } from '../util/log.js';
import type { SandboxRow } from './sandbox-model.js';
import type { SandboxStore } from './sandbox-store.js';

export interface ReconcileDeps {
  db: Db;
  runtime: RuntimeDriver;
  storage: StorageDriver;
  store: SandboxStore;
  finishDestroy(id: string): Promise<void>;
  stopCompute(id: string): Promise<void>;
}

/**
 * Makes the runtime, the storage and the database agree: finishes or undoes operations a
 * crash interrupted, and removes containers, rootfs and cgroups nobody lists.
 */
export async function reconcileSandboxes(c: ReconcileDeps): Promise<void> {
  const rows = c.db.prepare('SELECT * FROM sandboxes').all() as SandboxRow[];
  const containers = new Map((await c.runtime.list()).map((k) => [k.id, k.status]));
  for (const row of rows) {
    const status = containers.get(row.id) ?? 'missing';
    try {
      if (row.state === 'creating' || row.state === 'destroying') {
        await c.finishDestroy(row.id);
        log('reconcile: removed interrupted sandbox', { id: row.id, state: row.state });
        continue;
      }
      if (!(await c.storage.sandboxExists(row.id))) {
        await c.runtime.stop(row.id, 0);
        await c.runtime.forget(row.id);
        c.store.remove(row.id);
        log('reconcile: dropped sandbox whose rootfs is gone', { id: row.id });
        continue;
      }
      const wantsCompute = row.state === 'running' || row.state === 'snapshotting';
      if (wantsCompute && (status === 'running' || status === 'paused')) {
        // A crash mid-snapshot leaves the sandbox frozen: thaw it.
        if (row.state === 'snapshotting') await c.runtime.thaw(row.id).catch(() => undefined);
        if (row.state !== 'running') c.store.setState(row.id, 'running');
        continue;
      }
      if (wantsCompute && row.persistent === 0) {
        await c.finishDestroy(row.id);
        log('reconcile: destroyed non-persistent sandbox whose compute ended', { id: row.id });
        continue;
      }
      // Compute is gone (host reboot, OOM of init) or the sandbox was mid-stop: files are kept.
      await c.stopCompute(row.id);
      c.store.setState(row.id, 'paused', { expiresAt: null });
      if (wantsCompute || row.state === 'stopping') log('reconcile: sandbox paused (its compute was gone)', { id: row.id });
    } catch (e) {
      log('reconcile: failed for sandbox', { id: row.id, error: (e as Error).message });
    }
  }
  const known = new Set((c.db.prepare('SELECT id FROM sandboxes').all() as { id: string }[]).map((r) => r.id));
  const orphans: [string, string[], (id: string) => Promise<void>][] = [
    ['container', [...containers.keys()], (id) => c.runtime.stop(id, 0)],
    ['sandbox files', await c.storage.listSandboxes(), (id) => c.storage.deleteSandbox(id)],
    ['cgroups', await c.runtime.listCgroups(), (id) => c.runtime.removeCgroups(id)],
  ];
  for (const [what, ids, remove] of orphans) {
    for (const id of ids.filter((i) => !known.has(i))) {
      try {
        await remove(id);
        log(`reconcile: removed orphaned ${what}`, { id });
      } catch (e) {
        log(`reconcile: could not remove orphaned ${what}`, { id, error: (e as Error).message });
      }
    }
  }
}

/**
 * The disk limit a new sandbox gets: what was asked (at most the pool's size), else the
 * default, at most half the pool so one default sandbox cannot starve the rest. Storage
 * without limits (dir) answers NOT_SUPPORTED to an explicit ask and records null.
 */
export async function diskLimit(storage: StorageDriver, asked: number | undefined): Promise<number | null> {
  if (!storage.info().diskLimits) {
    if (asked === undefined) return null;
    throw new NookError('NOT_SUPPORTED', `${storage.info().driver} storage cannot enforce a disk limit (diskMiB ${asked})`, {
      hint: 'leave diskMiB out, or run nookd on btrfs storage with quotas (kernel 6.7+)',
    });
  }
  const poolMiB = Math.floor((await storage.usage()).sizeBytes / MiB);
  if (asked !== undefined) {
    if (asked > poolMiB) {
      throw new NookError('INVALID_ARGUMENT', `diskMiB ${asked} is more than the whole storage pool (${poolMiB} MiB)`, { hint: `ask for at most ${poolMiB}` });
    }
    return asked;
  }
  const fromEnv = Number(process.env.NOOK_DEFAULT_DISK_MIB);
  const wanted = Number.isInteger(fromEnv) && fromEnv >= LIMITS.minDiskMiB ? fromEnv : DEFAULTS.diskMiB;
  return Math.max(LIMITS.minDiskMiB, Math.min(wanted, Math.floor(poolMiB / 2)));
}
