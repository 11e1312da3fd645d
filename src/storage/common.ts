import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { ID_MAP } from '../util/id-map.js';
import { CommandError, run } from '../util/proc.js';
import type { StorageUsage } from './driver.js';

/** Name of the unit holding persisted path number `i`. */
export function persistUnit(i: number): string {
  return `p${i}`;
}

export async function fsUsage(path: string): Promise<StorageUsage> {
  const st = await fsp.statfs(path);
  return { sizeBytes: st.blocks * st.bsize, freeBytes: st.bavail * st.bsize };
}

function isNoSpace(e: unknown): boolean {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOSPC') return true;
  const text = e instanceof CommandError ? `${e.result.stderr} ${e.result.stdout}` : String((e as Error)?.message ?? e);
  return /No space left on device|ENOSPC/i.test(text);
}

/**
 * Runs a storage step, turning "no space left" into NO_SPACE with the pool's usage (so
 * the caller sees how full it is) and anything else into STORAGE_ERROR.
 */
export async function storageStep<T>(what: string, root: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof NookError && e.code !== 'STORAGE_ERROR') throw e;
    if (isNoSpace(e)) throw noSpace(what, await fsUsage(root).catch(() => ({ sizeBytes: 0, freeBytes: 0 })));
    if (e instanceof NookError) throw e;
    throw new NookError('STORAGE_ERROR', `cannot ${what}: ${(e as Error).message}`);
  }
}

function noSpace(what: string, usage: StorageUsage): NookError {
  const mib = (n: number): number => Math.round(n / 1024 / 1024);
  return new NookError('NO_SPACE', `no space left in the storage pool while trying to ${what} (${mib(usage.freeBytes)} MiB free of ${mib(usage.sizeBytes)} MiB)`, {
    hint: 'free space: destroy sandboxes, delete snapshots (nook snapshot ls) or images; or start over with a bigger NOOK_POOL_SIZE_GIB',
    context: { ...usage },
  });
}

/** Below this much free space in the pool, create and snapshot are refused (NOOK_POOL_MIN_FREE_MIB). */
function poolMinFreeBytes(): number {
  const mib = Number(process.env.NOOK_POOL_MIN_FREE_MIB ?? 64);
  return Number.isFinite(mib) && mib >= 0 ? mib * 1024 * 1024 : 64 * 1024 * 1024;
}

/**
 * Refuses new sandboxes and snapshots in a (nearly) full pool: btrfs can still make a
 * snapshot there (it shares every extent), so it would "succeed" and hand back a sandbox
 * that cannot write a byte.
 */
export async function ensurePoolSpace(what: string, root: string): Promise<void> {
  const usage = await fsUsage(root);
  if (usage.freeBytes < poolMinFreeBytes()) throw noSpace(what, usage);
}

/**
 * The directory at `path` inside `root`, refusing any symlink on the way: an image could
 * point /root at a host path, and this runs on the host.
 */
export async function insideWithoutSymlinks(root: string, path: string, what = 'persisted path'): Promise<{ dir: string; exists: boolean }> {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new NookError('INVALID_ARGUMENT', `${what} ${path} must not contain ..`);
  let cur = root;
  for (const p of parts) {
    cur = join(cur, p);
    let st;
    try {
      st = await fsp.lstat(cur);
    } catch {
      return { dir: join(root, ...parts), exists: false };
    }
    if (st.isSymbolicLink()) {
      throw new NookError('INVALID_ARGUMENT', `${what} ${path} crosses a symlink in the image`, { hint: 'name the real directory the link points to' });
    }
    if (!st.isDirectory()) throw new NookError('INVALID_ARGUMENT', `${what} ${path} is not a directory in the image`);
  }
  return { dir: cur, exists: true };
}

/** Seeds a persisted directory with what the image has at that path (or an empty dir owned by sandbox root). */
export async function seedPersistDir(target: string, imageRoot: string, path: string): Promise<void> {
  const found = await insideWithoutSymlinks(imageRoot, path);
  if (found.exists) {
    await run(['cp', '-a', '--reflink=auto', `${found.dir}/.`, target]);
    const st = await fsp.stat(found.dir);
    await fsp.chown(target, st.uid, st.gid);
    await fsp.chmod(target, st.mode & 0o7777);
  } else {
    await fsp.chown(target, ID_MAP.hostId, ID_MAP.hostId);
    await fsp.chmod(target, 0o755);
  }
}

/** Lays persisted directories over a copied rootfs at their paths (for commit). */
export async function overlayPersistDirs(targetRoot: string, dirs: string[], paths: string[]): Promise<void> {
  for (const [i, dir] of dirs.entries()) {
    const path = paths[i];
    if (!path) continue;
    const found = await insideWithoutSymlinks(targetRoot, path);
    await fsp.rm(found.dir, { recursive: true, force: true });
    await fsp.mkdir(found.dir, { recursive: true });
    await run(['cp', '-a', '--reflink=auto', `${dir}/.`, found.dir]);
    const st = await fsp.stat(dir);
    await fsp.chown(found.dir, st.uid, st.gid);
    await fsp.chmod(found.dir, st.mode & 0o7777);
  }
}

/**
 * Bytes stored under `path` (allocated blocks, hard links once). Not the apparent size
 * (`du -b`): a sandbox sets that at will (`truncate -s 8E` stores nothing), and reports of
 * images, snapshots and sandboxes showed such a file as 8 EiB.
 */
export async function duBytes(path: string): Promise<number> {
  const r = await run(['du', '-s', '-B1', '--', path], { allowFail: true });
  return Number(r.stdout.split(/\s/)[0]) || 0;
}
