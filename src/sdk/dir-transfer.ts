/**
 * The host side of directory copies: packing a host directory as a tar stream, and
 * unpacking a sandbox's archive on the host. What comes out of a sandbox is untrusted, so
 * unpacking keeps only files, directories, symlinks and in-tree hard links, never follows a
 * link out of the destination, drops setuid/setgid bits and ownership, stops at a byte
 * bound, and works in a scratch directory that becomes the destination only when whole.
 */
import { createWriteStream, promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { create } from 'tar';
import { NookError } from '../api/errors.js';
import { ByteLimit, safeUntar } from './safe-untar.js';

/** A tar stream of the contents of `hostDir` (entries relative to it, ids written as 0). */
export function packDir(hostDir: string): Readable {
  return create({ cwd: hostDir, portable: true, noDirRecurse: false }, ['.']) as unknown as Readable;
}

/**
 * Streams untrusted bytes to a host file: into a new temp file beside the target (created
 * exclusively, so nothing there is followed), then renamed over it, so a symlink at the
 * destination is replaced rather than followed. Permission bits only, never setuid/setgid.
 */
export async function saveFile(data: Readable, dest: string, mode: number, maxBytes: number): Promise<{ path: string; bytes: number }> {
  const target = resolve(dest);
  const st = await fsp.lstat(target).catch(() => null);
  if (st?.isDirectory()) throw new NookError('INVALID_ARGUMENT', `${dest} is a directory`, { hint: 'name the file to write, e.g. ./out/result.json' });
  const tmp = join(dirname(target), `.${basename(target)}.nook-${process.pid}-${Date.now()}`);
  const counter = new ByteLimit(maxBytes, () => new NookError('PAYLOAD_TOO_LARGE', `more than ${maxBytes} bytes: stopped, nothing written`, { hint: 'raise --max-bytes' }));
  try {
    await pipeline(data, counter, createWriteStream(tmp, { flags: 'wx', mode: mode & 0o777 }));
    await fsp.chmod(tmp, mode & 0o777);
    await fsp.rename(tmp, target);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    if (e instanceof NookError) throw e;
    throw new NookError('RUNTIME_ERROR', `the file broke off (${(e as Error).message}); nothing was written`, { hint: 'the sandbox may have stopped; retry' });
  }
  return { path: target, bytes: counter.bytes };
}

export interface Unpacked {
  path: string;
  bytes: number;
  entries: number;
  skipped: string[];
}

/**
 * Unpacks `archive` (one top entry named `topName`) to `dest`: `dest` itself when it does
 * not exist, `dest/topName` when it is a directory. Refuses to replace an existing path.
 * `whole`: when given, the tree is put in place only once it resolves (the sender's word that
 * the archive is complete: a fast copy's relay answers after the bytes).
 */
export async function unpackTo(archive: Readable, topName: string, dest: string, maxBytes: number, whole?: Promise<unknown>): Promise<Unpacked> {
  const st = await fsp.stat(dest).catch(() => null);
  const target = st?.isDirectory() ? join(dest, topName) : dest;
  if (await fsp.lstat(target).catch(() => null)) {
    throw new NookError('NAME_TAKEN', `${target} already exists on the host`, { hint: 'remove it first, or copy to another path' });
  }
  const scratch = await fsp.mkdtemp(join(dirname(target), `.${basename(target)}.nook-`));
  try {
    const r = await safeUntar(archive, scratch, maxBytes).catch((e: unknown) => {
      if (e instanceof NookError && e.code === 'PAYLOAD_TOO_LARGE') {
        throw new NookError('PAYLOAD_TOO_LARGE', `the copy is more than ${maxBytes} bytes: stopped, nothing written`, { hint: 'raise --max-bytes, or copy less' });
      }
      throw e;
    });
    const top = join(scratch, topName);
    await whole;
    if (!(await fsp.lstat(top).catch(() => null))) throw new NookError('INVALID_ARGUMENT', `the archive did not hold ${topName}`);
    await fsp.rename(top, target);
    return { path: target, ...r };
  } catch (e) {
    if (e instanceof NookError) throw e;
    throw new NookError('RUNTIME_ERROR', `the archive broke off (${(e as Error).message}); nothing was written`, {
      hint: 'the sandbox stopped, its tar failed, or the copy passed the limit: see nook logs, or raise --max-bytes',
    });
  } finally {
    // After an error node-tar may still be finishing writes it had started: a single rm raced
    // them (ENOTEMPTY, the scratch directory left behind and INTERNAL reported). rm retries.
    await fsp.rm(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  }
}
