import { promises as fsp } from 'node:fs';
import { nonNegativeInt } from './env.js';

/**
 * Free space kept where the state dir lives (NOOK_MIN_FREE_MIB, default 64): the storage
 * pool is a loop file there, and a btrfs whose backing file cannot grow goes read-only.
 */
export const STATE_MIN_FREE_BYTES = nonNegativeInt(process.env.NOOK_MIN_FREE_MIB, 64) * 1024 * 1024;

export async function exists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch {
    return false;
  }
}


/** Mount points below (or at) `prefix`, deepest first, read from /proc/self/mountinfo. */
export async function mountsUnder(prefix: string): Promise<string[]> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  const points = text
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p)
    .map(unescapeMountField)
    .filter((p) => p === prefix || p.startsWith(prefix.endsWith('/') ? prefix : prefix + '/'));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/**
 * The kernel writes space, tab, newline and backslash in mountinfo paths as octal escapes
 * (\040, \011, \012, \134); decode them all, or a path holding one would be misread.
 */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}
