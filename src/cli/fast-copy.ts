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
import { fileURLToPath } from 'node:url';
import { NookError } from '../api/errors.js';
import type { FastCopyRequest, FastCopyResult, FileInfo } from '../api/schemas.js';
import type { NookClient } from '../sdk/client.js';

/** Answers the stream path would give too: no point copying again. */
const DEFINITE = new Set(['FILE_NOT_FOUND', 'PAYLOAD_TOO_LARGE', 'INVALID_ARGUMENT', 'SANDBOX_NOT_FOUND', 'INVALID_STATE']);

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

function handOver(helper: string, socket: string, fd: number): Promise<void> {
  return new Promise((resolveHandOver, reject) => {
    const child = spawn(helper, ['send', socket], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolveHandOver() : reject(new Error(stderr.trim() || `nook-copy send exited ${code}`))));
  });
}

/** Runs one fast copy with `fd` as the host side; null: not done (stream instead). Definite errors throw. */
async function run(client: NookClient, sandbox: string, req: FastCopyRequest, fd: number): Promise<FastCopyResult | null> {
  const helper = helperPath();
  if (process.env.NOOK_FAST_COPY === '0' || client.transport.baseUrl || !helper) return null;
  let handed: Promise<void> | undefined;
  // The file could not be handed over: hang up, so the daemon stops its relay at once.
  const hangUp = new AbortController();
  try {
    const files = (await client.sandboxes.get(sandbox)).files;
    for await (const event of files.fastCopy(req, { signal: hangUp.signal })) {
      if (event.type === 'ready') handed = handOver(helper, event.socket, fd).catch((e: unknown) => void hangUp.abort(e));
      else if (event.type === 'result') {
        await handed;
        return event.result;
      } else if (event.type === 'error') {
        await handed?.catch(() => undefined);
        if (DEFINITE.has(event.error.code)) throw new NookError(event.error.code as 'INVALID_ARGUMENT', event.error.message, event.error.hint ? { hint: event.error.hint } : {});
        return null;
      }
    }
  } catch (e) {
    await handed?.catch(() => undefined);
    if (e instanceof NookError && DEFINITE.has(e.code)) throw e;
  }
  return null;
}

/** A host file into the sandbox; null: stream it instead. */
export async function fastCopyIn(client: NookClient, sandbox: string, hostFile: string, path: string, mode: number): Promise<FileInfo | null> {
  const fh = await fsp.open(hostFile, 'r');
  try {
    const r = await run(client, sandbox, { path, direction: 'in', mode: mode & 0o777 }, fh.fd);
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
export async function fastCopyOut(client: NookClient, sandbox: string, path: string, dest: string, mode: number, maxBytes: number): Promise<{ path: string; bytes: number } | null> {
  const target = resolve(dest);
  const st = await fsp.lstat(target).catch(() => null);
  if (st?.isDirectory()) throw new NookError('INVALID_ARGUMENT', `${dest} is a directory`, { hint: 'name the file to write, e.g. ./out/result.json' });
  const tmp = join(dirname(target), `.${basename(target)}.nook-${process.pid}-${Date.now()}`);
  const fh = await fsp.open(tmp, 'wx', mode & 0o777);
  let done = false;
  try {
    const r = await run(client, sandbox, { path, direction: 'out', maxBytes }, fh.fd);
    if (!r) return null;
    // The relay bounded and counted the bytes; the file must hold exactly those.
    const size = (await fh.stat()).size;
    if (size !== r.bytes || size > maxBytes) return null;
    await fh.chmod(mode & 0o777);
    await fh.close();
    await fsp.rename(tmp, target);
    done = true;
    return { path: target, bytes: r.bytes };
  } finally {
    if (!done) {
      await fh.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
    }
  }
}
