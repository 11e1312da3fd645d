import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { exists, mountsUnder } from '../util/fs.js';
import { log } from '../util/log.js';
import { run } from '../util/proc.js';
import { duBytes, ensurePoolSpace, fsUsage, overlayPersistDirs, persistUnit, seedPersistDir, storageStep } from './common.js';
import { BtrfsQuota } from './quota.js';
import { isSubvolume, nestedSubvolumes } from './subvolumes.js';
import type { DiskUsage, SandboxSource, StorageDriver, StorageInfo, StorageUsage } from './driver.js';

const GiB = 1024 ** 3;
/** How long a full pool waits for deleted subvolumes to be freed before answering NO_SPACE. */
const RECLAIM_TIMEOUT_MS = 30_000;

export interface BtrfsPoolOptions {
  /** Directory holding the pool file and its mount point. */
  root: string;
  /** Size of the sparse pool file when it is first created. */
  sizeBytes?: number;
  /** nook-init, whose `subvol` mode snapshots and deletes by ioctl (3 ms faster than the btrfs CLI). */
  helper?: string;
}

/**
 * Default driver: a loop-mounted btrfs file (Incus's default). Image = read-only subvolume;
 * each unit of a sandbox (rootfs, persisted dirs) = a writable snapshot or subvolume;
 * a snapshot = read-only snapshots of every unit. Create, snapshot, fork and restore cost
 * the same whatever the data size (platform notes: 6-7 ms for 1 GiB).
 *
 * Layout in the pool: images/<id>, staging/<id>, sandboxes/<id>/{rootfs,p0,p1...},
 * snapshots/<id>/{rootfs,p0,p1...}.
 */
export class BtrfsPoolDriver implements StorageDriver {
  private readonly poolFile: string;
  readonly mountPoint: string;
  private readonly quota: BtrfsQuota;

  constructor(private readonly options: BtrfsPoolOptions) {
    this.poolFile = join(options.root, 'pool.btrfs');
    this.mountPoint = join(options.root, 'pool');
    this.quota = new BtrfsQuota(this.mountPoint, this.poolFile, options.helper);
  }

  info(): StorageInfo {
    return { driver: 'btrfs', constantTimeSnapshots: true, diskLimits: this.quota.enabled };
  }

  async init(): Promise<void> {
    // 0711: the sandbox's mapped root must be able to traverse to its rootfs, not list it.
    await fsp.mkdir(this.mountPoint, { recursive: true, mode: 0o711 });
    if (!(await this.isMounted())) {
      if (!(await exists(this.poolFile))) await this.createPoolFile();
      try {
        await run(['mount', '-t', 'btrfs', '-o', 'loop,user_subvol_rm_allowed,discard,noatime', this.poolFile, this.mountPoint]);
      } catch (e) {
        throw new NookError('STORAGE_ERROR', `cannot mount the btrfs pool ${this.poolFile}: ${(e as Error).message}`, {
          hint: 'check that loop devices are available (losetup -f) and the kernel has btrfs, or set NOOK_STORAGE=dir',
        });
      }
    }
    for (const d of ['images', 'sandboxes', 'staging', 'snapshots']) await fsp.mkdir(join(this.mountPoint, d), { recursive: true, mode: 0o711 });
    await this.quota.enable();
  }

  private async createPoolFile(): Promise<void> {
    const size = this.options.sizeBytes ?? (await defaultPoolSize(this.options.root));
    const tmp = `${this.poolFile}.new`;
    await fsp.rm(tmp, { force: true });
    const fh = await fsp.open(tmp, 'w', 0o600);
    await fh.truncate(size);
    await fh.close();
    await run(['mkfs.btrfs', '-q', '-f', '-m', 'single', '-L', 'nook-pool', tmp]);
    await fsp.rename(tmp, this.poolFile);
  }

  private async isMounted(): Promise<boolean> {
    return (await mountsUnder(this.mountPoint)).includes(this.mountPoint);
  }

  async release(): Promise<void> {
    if (await this.isMounted()) await run(['umount', this.mountPoint]);
  }

  usage(): Promise<StorageUsage> {
    return fsUsage(this.mountPoint);
  }

  /**
   * Refuses work in a full pool, but first lets btrfs finish freeing what was already
   * deleted: a destroyed sandbox's subvolumes are cleaned in the background and their
   * extents stay pinned until a commit, so right after tenants that filled the pool are
   * destroyed it still looks full (measured: 0 MiB free of 2 GiB) and a newcomer would get
   * NO_SPACE for space that is about to be free.
   */
  private async ensureSpace(what: string): Promise<void> {
    try {
      await ensurePoolSpace(what, this.mountPoint);
    } catch (e) {
      if (!(e instanceof NookError) || e.code !== 'NO_SPACE') throw e;
      await btrfs(['subvolume', 'sync', this.mountPoint], true, RECLAIM_TIMEOUT_MS);
      await btrfs(['filesystem', 'sync', this.mountPoint], true, RECLAIM_TIMEOUT_MS);
      await ensurePoolSpace(what, this.mountPoint);
    }
  }

  private step<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return storageStep(what, this.mountPoint, fn);
  }

  // ---- images -----------------------------------------------------------------------

  imagePath(id: string): string {
    return join(this.mountPoint, 'images', id);
  }

  private stagingPath(id: string): string {
    return join(this.mountPoint, 'staging', id);
  }

  async createImageStaging(id: string): Promise<string> {
    const path = this.stagingPath(id);
    await this.deleteSubvolume(path);
    await this.step('create an image subvolume', () => btrfs(['subvolume', 'create', path]));
    return path;
  }

  async commitImage(id: string): Promise<void> {
    // Rename first: a read-only subvolume cannot be moved (its '..' entry would change).
    await fsp.rename(this.stagingPath(id), this.imagePath(id));
    await btrfs(['property', 'set', '-ts', this.imagePath(id), 'ro', 'true']);
  }

  async discardImageStaging(id: string): Promise<void> {
    await this.deleteSubvolume(this.stagingPath(id));
  }

  async deleteImage(id: string): Promise<void> {
    await this.deleteSubvolume(this.imagePath(id));
  }

  listImages(): Promise<string[]> {
    return fsp.readdir(join(this.mountPoint, 'images'));
  }

  listStaging(): Promise<string[]> {
    return fsp.readdir(join(this.mountPoint, 'staging'));
  }

  // ---- sandboxes ----------------------------------------------------------------------

  private sandboxDir(sandboxId: string): string {
    return join(this.mountPoint, 'sandboxes', sandboxId);
  }

  private snapshotDir(snapshotId: string): string {
    return join(this.mountPoint, 'snapshots', snapshotId);
  }

  /** Units of a sandbox or snapshot directory: rootfs first, then p0, p1, ... in order. */
  private async units(dir: string): Promise<string[]> {
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    const persisted = names.filter((n) => /^p\d+$/.test(n)).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
    return [...(names.includes('rootfs') ? ['rootfs'] : []), ...persisted];
  }

  async createSandbox(sandboxId: string, source: SandboxSource, persistPaths: string[], diskMiB: number | null = null): Promise<void> {
    const dir = this.sandboxDir(sandboxId);
    await this.ensureSpace('create a sandbox');
    await this.step('create the sandbox directory', () => fsp.mkdir(dir, { mode: 0o711 }));
    try {
      if ('imageId' in source) {
        const image = this.imagePath(source.imageId);
        if (!(await exists(image))) throw new NookError('STORAGE_ERROR', `image ${source.imageId} is missing from the pool`);
        await this.step('create the sandbox rootfs', () => this.snapshot(image, join(dir, 'rootfs')));
        for (const [i, path] of persistPaths.entries()) {
          const unit = join(dir, persistUnit(i));
          await this.step('create a persisted directory', () => btrfs(['subvolume', 'create', unit]));
          await this.step(`seed persisted path ${path}`, () => seedPersistDir(unit, image, path));
        }
      } else {
        const snap = this.snapshotDir(source.snapshotId);
        const units = await this.units(snap);
        if (units.length === 0) throw new NookError('STORAGE_ERROR', `snapshot ${source.snapshotId} is missing from the pool`);
        for (const unit of units) await this.step('restore from the snapshot', () => this.snapshot(join(snap, unit), join(dir, unit)));
      }
      if (diskMiB !== null) await this.step('set the disk limit', async () => this.quota.assign(sandboxId, await this.unitPaths(dir), diskMiB * 1024 * 1024));
    } catch (e) {
      await this.deleteSandbox(sandboxId).catch(() => undefined);
      throw e;
    }
  }

  async activateRootfs(sandboxId: string): Promise<string> {
    const path = join(this.sandboxDir(sandboxId), 'rootfs');
    if (!(await exists(path))) throw new NookError('STORAGE_ERROR', `rootfs of ${sandboxId} is missing from the pool`);
    return path;
  }

  async deactivateRootfs(): Promise<void> {
    // Subvolumes need no mounting: nothing to undo.
  }

  async persistDirs(sandboxId: string): Promise<string[]> {
    const dir = this.sandboxDir(sandboxId);
    return (await this.units(dir)).filter((u) => u !== 'rootfs').map((u) => join(dir, u));
  }

  async resetRootfs(sandboxId: string, imageId: string): Promise<void> {
    const rootfs = join(this.sandboxDir(sandboxId), 'rootfs');
    // The old rootfs leaves the sandbox's quota group first (a deleted member would pin the group).
    const limited = await this.quota.hasGroup(sandboxId);
    if (limited && (await exists(rootfs))) await this.quota.release(sandboxId, [rootfs], false);
    await this.deleteSubvolume(rootfs);
    await this.step('recreate the rootfs from its image', () => this.snapshot(this.imagePath(imageId), rootfs));
    if (limited) await this.step('set the disk limit', () => this.quota.assign(sandboxId, [rootfs], null));
  }

  async deleteSandbox(sandboxId: string): Promise<void> {
    const dir = this.sandboxDir(sandboxId);
    // A quota group that cannot be removed must not keep a sandbox from being destroyed.
    await this.quota.release(sandboxId, await this.unitPaths(dir), true).catch((e: Error) => log('quota group not removed', { sandboxId, error: e.message }));
    await this.deleteUnitsDir(dir);
  }

  /** Host paths of a sandbox's units that are subvolumes (what a quota group holds). */
  private async unitPaths(dir: string): Promise<string[]> {
    const paths: string[] = [];
    for (const u of await this.units(dir)) if (await isSubvolume(join(dir, u)).catch(() => false)) paths.push(join(dir, u));
    return paths;
  }

  diskUsage(sandboxId: string): Promise<DiskUsage | null> {
    return this.quota.usage(sandboxId);
  }

  listSandboxes(): Promise<string[]> {
    return fsp.readdir(join(this.mountPoint, 'sandboxes'));
  }

  sandboxExists(sandboxId: string): Promise<boolean> {
    return exists(join(this.sandboxDir(sandboxId), 'rootfs'));
  }

  // ---- snapshots ----------------------------------------------------------------------

  async snapshotSandbox(sandboxId: string, snapshotId: string): Promise<void> {
    const src = this.sandboxDir(sandboxId);
    const dst = this.snapshotDir(snapshotId);
    await this.ensureSpace('take a snapshot');
    await this.step('create the snapshot directory', () => fsp.mkdir(dst, { mode: 0o711 }));
    try {
      for (const unit of await this.units(src)) await this.step('take the snapshot', () => this.snapshot(join(src, unit), join(dst, unit), true));
    } catch (e) {
      await this.deleteSnapshot(snapshotId).catch(() => undefined);
      throw e;
    }
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    await this.deleteUnitsDir(this.snapshotDir(snapshotId));
  }

  listSnapshots(): Promise<string[]> {
    return fsp.readdir(join(this.mountPoint, 'snapshots'));
  }

  snapshotSizeBytes(snapshotId: string): Promise<number> {
    return duBytes(this.snapshotDir(snapshotId));
  }

  sandboxSizeBytes(sandboxId: string): Promise<number> {
    return duBytes(this.sandboxDir(sandboxId));
  }

  async commitSandbox(sandboxId: string, imageId: string, persistPaths: string[]): Promise<void> {
    const staging = this.stagingPath(imageId);
    await this.step('copy the sandbox into an image', () => this.snapshot(join(this.sandboxDir(sandboxId), 'rootfs'), staging));
    try {
      await this.step('lay persisted paths into the image', async () => overlayPersistDirs(staging, await this.persistDirs(sandboxId), persistPaths));
      await this.commitImage(imageId);
    } catch (e) {
      await this.discardImageStaging(imageId).catch(() => undefined);
      throw e;
    }
  }

  // ---- subvolume primitives -------------------------------------------------------------

  private async snapshot(source: string, target: string, readonly = false): Promise<void> {
    if (!this.options.helper) {
      await btrfs(['subvolume', 'snapshot', ...(readonly ? ['-r'] : []), source, target]);
      return;
    }
    await run([this.options.helper, 'subvol', 'snapshot', source, target, ...(readonly ? ['ro'] : [])]);
  }

  private async deleteUnitsDir(dir: string): Promise<void> {
    if (!(await exists(dir))) return;
    if (await isSubvolume(dir)) {
      // Not the shape nook makes (a directory of units): a bare subvolume left by hand.
      await this.deleteSubvolume(dir);
      return;
    }
    for (const unit of await fsp.readdir(dir)) await this.deleteSubvolume(join(dir, unit));
    await fsp.rm(dir, { recursive: true, force: true });
  }

  /**
   * Deletes a subvolume and any a sandbox made inside it (`btrfs subvolume delete` refuses
   * a parent that still has children). Nested subvolumes are found by walking the tree,
   * never by parsing `btrfs subvolume list`: a sandbox chooses their names, and a name
   * holding a newline once forged a line that pointed this root-run clean-up elsewhere.
   */
  private async deleteSubvolume(path: string): Promise<void> {
    if (!(await exists(path))) return;
    if (!(await isSubvolume(path))) {
      await fsp.rm(path, { recursive: true, force: true });
      return;
    }
    if ((await this.deleteOne(path)).code === 0) return;
    for (const nested of await nestedSubvolumes(path)) {
      const r = await this.deleteOne(nested);
      if (r.code !== 0) throw new NookError('STORAGE_ERROR', `cannot delete nested subvolume ${JSON.stringify(nested)}: ${r.stderr.trim()}`);
    }
    const again = await this.deleteOne(path);
    if (again.code !== 0) throw new NookError('STORAGE_ERROR', `cannot delete subvolume ${path}: ${again.stderr.trim()}`);
  }

  /** Deletes one subvolume that has no children (fails with ENOTEMPTY otherwise). */
  private deleteOne(path: string): Promise<{ code: number; stderr: string }> {
    return this.options.helper ? run([this.options.helper, 'subvol', 'delete', path], { allowFail: true }) : btrfs(['subvolume', 'delete', path], true);
  }
}

async function btrfs(args: string[], allowFail = false, timeoutMs?: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(['btrfs', ...args], { allowFail, ...(timeoutMs ? { timeoutMs } : {}) });
}

/** Half the free space of the filesystem holding the pool, between 4 and 64 GiB (sparse). */
async function defaultPoolSize(dir: string): Promise<number> {
  const fromEnv = Number(process.env.NOOK_POOL_SIZE_GIB);
  if (Number.isFinite(fromEnv) && fromEnv > 0) return Math.round(fromEnv * GiB);
  const st = await fsp.statfs(dir);
  const free = st.bavail * st.bsize;
  return Math.min(64 * GiB, Math.max(4 * GiB, Math.floor(free / 2 / GiB) * GiB));
}
