import { promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { NookError } from '../api/errors.js';

/**
 * Writes untrusted bytes from a sandbox to the host: into a temp file beside the target,
 * then renamed over it, so a symlink at the destination is replaced rather than followed
 * and nothing is written anywhere else. Permission bits only: setuid/setgid never survive.
 */
export async function writeHostFile(dest: string, data: Buffer, mode: number): Promise<string> {
  let target = resolve(dest);
  const st = await fsp.lstat(target).catch(() => null);
  if (st?.isDirectory()) throw new NookError('INVALID_ARGUMENT', `${dest} is a directory`, { hint: 'name the file to write, e.g. ./out/result.json' });
  const tmp = join(dirname(target), `.${basename(target)}.nook-${process.pid}`);
  await fsp.writeFile(tmp, data, { mode: mode & 0o777, flag: 'wx' });
  await fsp.chmod(tmp, mode & 0o777);
  await fsp.rename(tmp, target);
  target = resolve(target);
  return target;
}

