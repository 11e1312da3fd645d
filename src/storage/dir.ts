import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { exists, mountsUnder } from '../util/fs.js';
import { run } from '../util/proc.js';
import type { StorageDriver, StorageInfo } from './driver.js';

/**
 * Fallback driver for hosts without btrfs: images are plain directories, a sandbox's
 * rootfs is an overlayfs (image as lower, a per-sandbox upper). Create is still constant
 * time; snapshots and forks (later) copy the upper dir, so they grow with the data written.
 */
export class DirDriver implements StorageDriver {
  constructor(private readonly root: string) {}

  info(): StorageInfo {
    return { driver: 'dir', constantTimeSnapshots: false };
  }

  async init(): Promise<void> {
    for (const d of ['images', 'sandboxes', 'staging']) await fsp.mkdir(join(this.root, d), { recursive: true, mode: 0o711 });
  }

  async release(): Promise<void> {
    for (const m of await mountsUnder(this.root)) await run(['umount', m], { allowFail: true });
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

  async listImages(): Promise<string[]> {
    return fsp.readdir(join(this.root, 'images'));
  }

  async listStaging(): Promise<string[]> {
    return fsp.readdir(join(this.root, 'staging'));
  }

  async createRootfs(sandboxId: string, imageId: string): Promise<void> {
    if (!(await exists(this.imagePath(imageId)))) throw new NookError('STORAGE_ERROR', `image ${imageId} is missing`);
    const dir = this.sandboxDir(sandboxId);
    await fsp.mkdir(dir, { mode: 0o711 });
    for (const d of ['upper', 'work', 'rootfs']) await fsp.mkdir(join(dir, d), { mode: 0o755 });
    // The overlay's root takes owner and mode from the upper dir: make it the image root's
    // (the sandbox's mapped root), or the sandbox could not write in its own /.
    const top = await fsp.stat(this.imagePath(imageId));
    await fsp.chown(join(dir, 'upper'), top.uid, top.gid);
    await fsp.chmod(join(dir, 'upper'), top.mode & 0o7777);
    await fsp.writeFile(join(dir, 'image'), imageId);
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

  async deleteRootfs(sandboxId: string): Promise<void> {
    await this.deactivateRootfs(sandboxId);
    await fsp.rm(this.sandboxDir(sandboxId), { recursive: true, force: true });
  }

  async listRootfs(): Promise<string[]> {
    return fsp.readdir(join(this.root, 'sandboxes'));
  }

  async rootfsExists(sandboxId: string): Promise<boolean> {
    return exists(join(this.sandboxDir(sandboxId), 'image'));
  }
}
