import type { Dirent } from 'node:fs';
import { promises as fsp } from 'node:fs';
import { join, sep } from 'node:path';
import { NookError } from '../api/errors.js';
import { mountsUnder } from '../util/fs.js';

/** The root directory of a btrfs subvolume always has inode number 256. */
const SUBVOL_ROOT_INO = 256;

/** True when `path` itself (never a symlink's target) is the root of a btrfs subvolume. */
export async function isSubvolume(path: string): Promise<boolean> {
  const st = await fsp.lstat(path);
  return st.isDirectory() && st.ino === SUBVOL_ROOT_INO;
}

/**
 * Subvolumes nested anywhere below `unit` (not `unit` itself), deepest first, found by the
 * tree's structure and never by parsing tool output: a sandbox names its subvolumes, and a
 * name may hold a newline that forges a line of `btrfs subvolume list`.
 *
 * The walk uses lstat and directory entries only (a symlink is never followed), never
 * enters a mount point (another filesystem is not part of the unit), and proves every
 * path it returns resolves inside `unit`.
 */
export async function nestedSubvolumes(unit: string): Promise<string[]> {
  const mounts = (await mountsUnder(unit)).filter((m) => m !== unit);
  if (mounts.length > 0) {
    throw new NookError('STORAGE_ERROR', `refusing to delete ${unit}: something is mounted inside it (${mounts[0]})`, {
      hint: 'unmount it first (umount -l PATH), then retry',
    });
  }
  const realUnit = await fsp.realpath(unit);
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch {
      return; // vanished or unreadable: nothing of ours to find there
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue; // d_type: a symlink to a directory is not a directory here
      const path = join(dir, e.name);
      const st = await fsp.lstat(path).catch(() => null);
      if (!st?.isDirectory()) continue;
      await walk(path);
      // Post-order: children are pushed before their parent, so the list is deepest first.
      if (st.ino === SUBVOL_ROOT_INO) found.push(path);
    }
  };
  await walk(unit);
  for (const path of found) await assertInside(realUnit, path);
  return found;
}

/** Throws unless `path` resolves (symlinks and all) strictly inside `realRoot`. */
export async function assertInside(realRoot: string, path: string): Promise<void> {
  const real = await fsp.realpath(path);
  if (!real.startsWith(realRoot + sep)) {
    throw new NookError('STORAGE_ERROR', `refusing to delete ${JSON.stringify(path)}: it resolves outside ${realRoot}`);
  }
}
