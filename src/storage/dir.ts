import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { exists, mountsUnder } from '../util/fs.js';
import { run } from '../util/proc.js';
import { duBytes, ensurePoolSpace, fsUsage, overlayPersistDirs, persistUnit, seedPersistDir, storageStep } from './common.js';
import type { SandboxSource, StorageDriver, StorageInfo, StorageUsage } from './driver.js';

/**
 * Fallback driver for hosts without btrfs: images are plain directories, a sandbox's
 * rootfs is an overlayfs (image as lower, a per-sandbox upper). Create is constant time;
 * snapshot, fork and restore copy the upper dir and persisted dirs (`cp -a`, reflinks
 * where the filesystem has them), so they grow with the data the sandbox wrote.
 *
 * Layout: images/<id>, staging/<id>, sandboxes/<id>/{image,upper,work,rootfs,p0...},
 * snapshots/<id>/{image,upper,p0...}.
 */
export class DirDriver implements StorageDriver {
  constructor(private readonly root: string) {}

  info(): StorageInfo {
    return { driver: 'dir', constantTimeSnapshots: false, diskLimits: false };
  }

  async init(): Promise<void> {
    for (const d of ['images', 'sandboxes', 'staging', 'snapshots']) await fsp.mkdir(join(this.root, d), { recursive: true, mode: 0o711 });
  }

  async release(): Promise<void> {
    for (const m of await mountsUnder(this.root)) await run(['umount', m], { allowFail: true });
  }

  usage(): Promise<StorageUsage> {
    return fsUsage(this.root);
  }

  private step<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return storageStep(what, this.root, fn);
  }

  imagePath(id: string): string {
    return join(this.root, 'images', id);
  }

  private stagingPath(id: string): string {
    return join(this.root, 'staging', id);
  }

  private sandboxDir(sandboxId: string): string {
    return join(this.root, 'sandboxes', sandboxId);
  }

  private snapshotDir(snapshotId: string): string {
    return join(this.root, 'snapshots', snapshotId);
  }

  async createImageStaging(id: string): Promise<string> {
    const path = this.stagingPath(id);
    await fsp.rm(path, { recursive: true, force: true });
    await fsp.mkdir(path, { mode: 0o755 });
    return path;
  }

  async commitImage(id: string): Promise<void> {
    await fsp.rename(this.stagingPath(id), this.imagePath(id));
  }

  async discardImageStaging(id: string): Promise<void> {
    await fsp.rm(this.stagingPath(id), { recursive: true, force: true });
  }

  async deleteImage(id: string): Promise<void> {
    await fsp.rm(this.imagePath(id), { recursive: true, force: true });
  }

  listImages(): Promise<string[]> {
    return fsp.readdir(join(this.root, 'images'));
  }

  listStaging(): Promise<string[]> {
    return fsp.readdir(join(this.root, 'staging'));
  }

  /** Carried units of a sandbox or snapshot dir: upper, then p0, p1, ... */
  private async units(dir: string): Promise<string[]> {
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    const persisted = names.filter((n) => /^p\d+$/.test(n)).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
    return [...(names.includes('upper') ? ['upper'] : []), ...persisted];
  }

  /** upper/work/rootfs for a fresh overlay whose root looks like the image's root. */
  private async freshUpper(dir: string, imageId: string): Promise<void> {
    for (const d of ['upper', 'work', 'rootfs']) await fsp.mkdir(join(dir, d), { recursive: true, mode: 0o755 });
    // The overlay's root takes owner and mode from the upper dir: make it the image root's
    // (the sandbox's mapped root), or the sandbox could not write in its own /.
    const top = await fsp.stat(this.imagePath(imageId));
    await fsp.chown(join(dir, 'upper'), top.uid, top.gid);
    await fsp.chmod(join(dir, 'upper'), top.mode & 0o7777);
    await fsp.writeFile(join(dir, 'image'), imageId);
  }

  async createSandbox(sandboxId: string, source: SandboxSource, persistPaths: string[]): Promise<void> {
    const dir = this.sandboxDir(sandboxId);
    await ensurePoolSpace('create a sandbox', this.root);
    await this.step('create the sandbox directory', () => fsp.mkdir(dir, { mode: 0o711 }));
    try {
      if ('imageId' in source) {
        if (!(await exists(this.imagePath(source.imageId)))) throw new NookError('STORAGE_ERROR', `image ${source.imageId} is missing`);
        await this.freshUpper(dir, source.imageId);
        for (const [i, path] of persistPaths.entries()) {
          const unit = join(dir, persistUnit(i));
          await fsp.mkdir(unit);
          await this.step(`seed persisted path ${path}`, () => seedPersistDir(unit, this.imagePath(source.imageId), path));
        }
      } else {
        const snap = this.snapshotDir(source.snapshotId);
        if (!(await exists(join(snap, 'image')))) throw new NookError('STORAGE_ERROR', `snapshot ${source.snapshotId} is missing`);
        await this.copyUnits(snap, dir);
        for (const d of ['work', 'rootfs']) await fsp.mkdir(join(dir, d), { mode: 0o755 });
      }
    } catch (e) {
      await this.deleteSandbox(sandboxId).catch(() => undefined);
      throw e;
    }
  }

  private async copyUnits(from: string, to: string): Promise<void> {
    await fsp.copyFile(join(from, 'image'), join(to, 'image'));
    for (const unit of await this.units(from)) {
      await this.step('copy sandbox files', () => run(['cp', '-a', '--reflink=auto', join(from, unit), join(to, unit)]));
    }
  }

  async activateRootfs(sandboxId: string): Promise<string> {
    const dir = this.sandboxDir(sandboxId);
    const rootfs = join(dir, 'rootfs');
    if ((await mountsUnder(rootfs)).includes(rootfs)) return rootfs;
    let imageId: string;
    try {
      imageId = (await fsp.readFile(join(dir, 'image'), 'utf8')).trim();
    } catch {
      throw new NookError('STORAGE_ERROR', `rootfs of ${sandboxId} is missing`);
    }
    const opts = `lowerdir=${this.imagePath(imageId)},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`;
    await run(['mount', '-t', 'overlay', 'overlay', '-o', opts, rootfs]);
    return rootfs;
  }

  async deactivateRootfs(sandboxId: string): Promise<void> {
    for (const m of await mountsUnder(join(this.sandboxDir(sandboxId), 'rootfs'))) await run(['umount', m]);
  }

  async persistDirs(sandboxId: string): Promise<string[]> {
    const dir = this.sandboxDir(sandboxId);
    return (await this.units(dir)).filter((u) => u !== 'upper').map((u) => join(dir, u));
  }

  async resetRootfs(sandboxId: string, imageId: string): Promise<void> {
    const dir = this.sandboxDir(sandboxId);
    await this.deactivateRootfs(sandboxId);
    for (const d of ['upper', 'work']) await fsp.rm(join(dir, d), { recursive: true, force: true });
    await this.freshUpper(dir, imageId);
  }

  async deleteSandbox(sandboxId: string): Promise<void> {
    await this.deactivateRootfs(sandboxId);
    await fsp.rm(this.sandboxDir(sandboxId), { recursive: true, force: true });
  }

  listSandboxes(): Promise<string[]> {
    return fsp.readdir(join(this.root, 'sandboxes'));
  }

  sandboxExists(sandboxId: string): Promise<boolean> {
    return exists(join(this.sandboxDir(sandboxId), 'image'));
  }

  async snapshotSandbox(sandboxId: string, snapshotId: string): Promise<void> {
    const dst = this.snapshotDir(snapshotId);
    await ensurePoolSpace('take a snapshot', this.root);
    await this.step('create the snapshot directory', () => fsp.mkdir(dst, { mode: 0o711 }));
    try {
      await this.copyUnits(this.sandboxDir(sandboxId), dst);
    } catch (e) {
      await this.deleteSnapshot(snapshotId).catch(() => undefined);
      throw e;
    }
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    await fsp.rm(this.snapshotDir(snapshotId), { recursive: true, force: true });
  }

  listSnapshots(): Promise<string[]> {
    return fsp.readdir(join(this.root, 'snapshots'));
  }

  snapshotSizeBytes(snapshotId: string): Promise<number> {
    return duBytes(this.snapshotDir(snapshotId));
  }

  sandboxSizeBytes(sandboxId: string): Promise<number> {
    return duBytes(this.sandboxDir(sandboxId));
  }

  /** Plain directories have no per-sandbox bound (core refuses an explicit diskMiB here). */
  async diskUsage(): Promise<null> {
    return null;
  }

  async commitSandbox(sandboxId: string, imageId: string, persistPaths: string[]): Promise<void> {
    const rootfs = join(this.sandboxDir(sandboxId), 'rootfs');
    const wasMounted = (await mountsUnder(rootfs)).includes(rootfs);
    const staging = await this.createImageStaging(imageId);
    try {
      // The merged view (lower + upper, whiteouts applied) is what the sandbox sees.
      await this.activateRootfs(sandboxId);
      await this.step('copy the sandbox into an image', () => run(['cp', '-a', '--reflink=auto', `${rootfs}/.`, staging]));
      const top = await fsp.stat(rootfs);
      await fsp.chown(staging, top.uid, top.gid);
      await fsp.chmod(staging, top.mode & 0o7777);
      await this.step('lay persisted paths into the image', async () => overlayPersistDirs(staging, await this.persistDirs(sandboxId), persistPaths));
      await this.commitImage(imageId);
    } catch (e) {
      await this.discardImageStaging(imageId).catch(() => undefined);
      throw e;
    } finally {
      if (!wasMounted) await this.deactivateRootfs(sandboxId);
    }
  }
}
