import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { which } from '../util/proc.js';
import { BtrfsPoolDriver } from './btrfs.js';
import { DirDriver } from './dir.js';
import type { StorageDriver } from './driver.js';

export type { StorageDriver, StorageInfo } from './driver.js';
export { BtrfsPoolDriver } from './btrfs.js';
export { DirDriver } from './dir.js';

/** btrfs when the kernel and btrfs-progs have it (or NOOK_STORAGE=btrfs), else dir. */
export async function chooseStorage(storageDir: string, helper?: string, wanted = process.env.NOOK_STORAGE): Promise<StorageDriver> {
  if (wanted === 'dir') return new DirDriver(join(storageDir, 'dir'));
  const fsList = await fsp.readFile('/proc/filesystems', 'utf8');
  const haveBtrfs = /\bbtrfs\b/.test(fsList) && (await which('mkfs.btrfs')) !== null;
  if (wanted === 'btrfs' && !haveBtrfs) {
    throw new NookError('NOT_SUPPORTED', 'NOOK_STORAGE=btrfs but this host has no btrfs support', { hint: 'apt-get install btrfs-progs, or set NOOK_STORAGE=dir' });
  }
  if (wanted !== undefined && wanted !== '' && wanted !== 'btrfs') {
    throw new NookError('INVALID_ARGUMENT', `unknown storage driver NOOK_STORAGE=${wanted}`, { hint: 'use btrfs or dir' });
  }
  return haveBtrfs ? new BtrfsPoolDriver({ root: join(storageDir, 'btrfs'), ...(helper ? { helper } : {}) }) : new DirDriver(join(storageDir, 'dir'));
}
