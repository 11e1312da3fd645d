/**
 * The CLI's side of the fast copy (src/core/fast-copy.ts): on the daemon's own host, over its
 * unix socket, `nook cp` of one regular file hands its open host file to a one-time relay the
 * daemon starts, with SCM_RIGHTS (Node cannot send an fd, so native/build/nook-copy does).
 * Returns null whenever the fast path is not there or fails short of a definite answer about
 * the file: the caller then streams, with the same result. NOOK_FAST_COPY=0 turns it off.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { NookError } from '../api/errors.js';
import type { FastCopyRequest, FastCopyResult, FileInfo } from '../api/schemas.js';
import type { NookClient } from '../sdk/client.js';
import type { Files } from '../sdk/sandbox/files.js';

/** Answers the stream path would give too: no point copying again. */
const DEFINITE = new Set(['FILE_NOT_FOUND', 'PAYLOAD_TOO_LARGE', 'INVALID_ARGUMENT', 'SANDBOX_NOT_FOUND', 'INVALID_STATE']);
/** A directory copy runs the same tar in the sandbox either way: one that hangs would hang the stream too. */
const DEFINITE_TAR = new Set([...DEFINITE, 'TIMEOUT']);

/** native/build/nook-copy beside the package (or NOOK_COPY_BINARY); null when not built. */
function helperPath(): string | null {
  if (process.env.NOOK_COPY_BINARY) return existsSync(process.env.NOOK_COPY_BINARY) ? process.env.NOOK_COPY_BINARY : null;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'native', 'build', 'nook-copy');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return null;
}

/** Where to reach the fast path: null when it is off, remote, or not built. */
export function fastPath(client: NookClient): string | null {
  if (process.env.NOOK_FAST_COPY === '0' || client.transport.baseUrl) return null;
  return helperPath();
}

/** The hand-over helper, started: `stream` is the CLI's end of the pipe it hands over (fd 'pipe'). */
export interface Sender {
  handOver: (socket: string) => Promise<void>;
  cancel: () => void;
  stream: Duplex | null;
}

/**
 * `nook-copy send -`, started before the request so its start overlaps the daemon's (the
 * socket's name comes later, on its stdin). Cancelled (stdin closed with no name): it exits.
 * fd 'pipe': it hands over its end of a fresh socket pair (a directory copy's tar stream).
 */
export function startSender(helper: string, fd: number | 'pipe'): Sender {
  const child = spawn(helper, ['send', '-'], { stdio: ['pipe', 'ignore', 'pipe', fd] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdin?.on('error', () => undefined);
  const exited = new Promise<void>((resolveExit, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolveExit() : reject(new Error(stderr.trim() || `nook-copy send exited ${code}`))));
  });
  // It may fail before anyone waits for it (nothing to hand over to): handled where awaited.
  exited.catch(() => undefined);
  const stream = fd === 'pipe' ? (child.stdio[3] as Duplex | null) : null;
  return {
    handOver: (socket) => {
      child.stdin?.end(`${socket}\n`);
      return exited;
    },
    cancel: () => {
      child.stdin?.end();
    },
    stream,
  };
}

/**
 * Runs one fast copy through `sender`; null: not done (stream instead). Definite errors throw.
 * `hangUp` aborted: the request ends, so the daemon stops its relay at once.
 */
export async function run(files: Files, req: FastCopyRequest, sender: Sender, hangUp = new AbortController()): Promise<FastCopyResult | null> {
  let handed: Promise<void> | undefined;
  const definite = req.kind === 'tar' ? DEFINITE_TAR : DEFINITE;
  try {
    for await (const event of files.fastCopy(req, { signal: hangUp.signal })) {
      if (event.type === 'ready') handed = sender.handOver(event.socket).catch((e: unknown) => void hangUp.abort(e));
      else if (event.type === 'result') {
        await handed;
        return event.result;
      } else if (event.type === 'error') {
        await handed?.catch(() => undefined);
        if (definite.has(event.error.code)) throw new NookError(event.error.code as 'INVALID_ARGUMENT', event.error.message, event.error.hint ? { hint: event.error.hint } : {});
        return null;
      }
    }
  } catch (e) {
    await handed?.catch(() => undefined);
    // We hung up ourselves (the SDK says INVALID_STATE for an aborted request): not an answer.
    if (e instanceof NookError && definite.has(e.code) && !hangUp.signal.aborted) throw e;
  } finally {
    if (!handed) sender.cancel();
  }
  return null;
}

/**
 * Puts the copied file in place of an existing one by exchange (nook-copy replace): a rename
 * over a file makes ext4 write the new one back inside rename() (~0.4 s for 1 GiB). Only
 * worth a process start for a large file; false: not swapped (rename instead).
 */
const EXCHANGE_MIN_BYTES = 8 * 1024 * 1024;
function exchange(helper: string, tmp: string, target: string): Promise<boolean> {
  return new Promise((resolveExchange) => {
    const child = spawn(helper, ['replace', tmp, target], { stdio: 'ignore' });
    child.on('error', () => resolveExchange(false));
    child.on('close', (code) => resolveExchange(code === 0));
  });
}

/** A host file into the sandbox; null: stream it instead. */
export async function fastCopyIn(client: NookClient, files: Files, hostFile: string, path: string, mode: number): Promise<FileInfo | null> {
  const fh = await fsp.open(hostFile, 'r');
  try {
    const helper = fastPath(client);
    const r = helper ? await run(files, { path, direction: 'in', mode: mode & 0o777 }, startSender(helper, fh.fd)) : null;
    return r?.file ?? null;
  } finally {
    await fh.close();
  }
}

/**
 * A sandbox file out to the host: into a fresh temp file beside the target (created
 * exclusively, so nothing there is followed), renamed over it only when whole and within
 * the bound; permission bits only. null: stream it instead (the temp file is gone).
 */
export async function fastCopyOut(client: NookClient, files: Files, path: string, dest: string, mode: number, maxBytes: number): Promise<{ path: string; bytes: number } | null> {
  const target = resolve(dest);
  const st = await fsp.lstat(target).catch(() => null);
  if (st?.isDirectory()) throw new NookError('INVALID_ARGUMENT', `${dest} is a directory`, { hint: 'name the file to write, e.g. ./out/result.json' });
  const tmp = join(dirname(target), `.${basename(target)}.nook-${process.pid}-${Date.now()}`);
  const fh = await fsp.open(tmp, 'wx', mode & 0o777);
  let done = false;
  try {
    const helper = fastPath(client);
    const r = helper ? await run(files, { path, direction: 'out', maxBytes }, startSender(helper, fh.fd)) : null;
    if (!r || !helper) return null;
    // The relay bounded and counted the bytes; the file must hold exactly those.
    const size = (await fh.stat()).size;
    if (size !== r.bytes || size > maxBytes) return null;
    await fh.chmod(mode & 0o777);
    await fh.close();
    if (!(st?.isFile() && r.bytes >= EXCHANGE_MIN_BYTES && helper && (await exchange(helper, tmp, target)))) await fsp.rename(tmp, target);
    done = true;
    return { path: target, bytes: r.bytes };
  } finally {
    if (!done) {
      await fh.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
    }
  }
}
