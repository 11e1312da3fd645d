/**
 * The fast path of `nook cp` for one regular file, or a directory's tar stream (fastTar
 * below): bytes go past the daemon's event loop.
 * The CLI (on this host, over the unix socket) hands its open host file to a one-time native
 * relay (native/copy/nook-copy.c) that the daemon starts per copy. Inside the sandbox,
 * nook-init resolves the path in the sandbox's own root and hands the relay the open sandbox
 * file (an unnamed temp file to fill, linked in only when whole, or the source to read;
 * native/src/fastcopy.c): the host file never enters the sandbox, and the host never
 * resolves a sandbox path. The relay moves the bytes through one buffer, bounds them, and
 * hashes them on a second thread, so the audit record keeps its sha256 of exactly the bytes
 * that moved.
 *
 * Any failure that is not a definite answer about the file (not found, too large, wrong
 * type) leaves the caller free to copy again over the streaming route, with the same result.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, promises as fsp, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { NookError } from '../api/errors.js';
import type { FastCopyRequest, FastCopyResult, FileInfo } from '../api/schemas.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { AuditLog } from './audit.js';
import { COPY_IDLE_TIMEOUT_MS } from './tar-transfer.js';
import type { SandboxManager } from './sandboxes.js';

/** How long the relay waits for the CLI to hand its file over. */
const HANDOFF_TIMEOUT_MS = 10_000;
const DEFAULT_OUT_MAX_BYTES = 16 * 1024 * 1024;
const DEFAULT_TAR_OUT_MAX_BYTES = 1024 ** 3;

export interface FastCopyDeps {
  sandboxes: SandboxManager;
  runtime: RuntimeDriver;
  audit: AuditLog;
  stat: (sandboxId: string, path: string) => Promise<FileInfo>;
  /** mkdir -p inside the sandbox (a directory copy's target). */
  mkdir: (sandboxId: string, path: string) => Promise<FileInfo>;
  /** native/build/nook-copy, or null when it is not built. */
  helper: string | null;
  /** Where one-time handoff sockets go: beside the daemon's own socket, with its mode (0600). */
  socketDir: string;
}

/** A one-time handoff socket's name (fastCopy below). */
const HANDOFF_NAME = /^\.nook-copy-[0-9a-f]{24}\.sock$/;

/**
 * Removes the handoff sockets a killed daemon left (its relays died with it, by
 * PR_SET_PDEATHSIG, but their socket files stay): at start, when no relay of this state dir
 * is alive. Only sockets with the exact one-time name, never followed.
 */
export function sweepHandoffSockets(socketDir: string): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(socketDir);
  } catch {
    return 0;
  }
  for (const name of names.filter((n) => HANDOFF_NAME.test(n))) {
    const path = join(socketDir, name);
    try {
      if (!lstatSync(path).isSocket()) continue;
      unlinkSync(path);
      removed++;
    } catch {
      // gone already
    }
  }
  return removed;
}

type RelayLine = { ok: true; bytes: number; sha256: string; stat: string } | { ok: false; code: number; message: string };

/** The file nook-init linked in, from its fstat ("mode uid gid size mtimeMs"): the path may name something else by now. */
function linkedInfo(path: string, stat: string): FileInfo | undefined {
  const [mode, uid, gid, size, mtimeMs] = stat.split(' ').map(Number);
  if ([mode, uid, gid, size, mtimeMs].some((n) => n === undefined || !Number.isFinite(n))) return undefined;
  return { name: path.slice(path.lastIndexOf('/') + 1), type: 'file', mode: mode ?? 0, uid: uid ?? 0, gid: gid ?? 0, size: size ?? 0, mtimeMs: mtimeMs ?? 0, path };
}

/** The relay's answer codes (fs.c's exit codes) as errors. */
function relayError(code: number, message: string, path: string): NookError {
  if (code === 2) return new NookError('FILE_NOT_FOUND', message, { hint: 'check the path inside the sandbox (nook fs ls)', context: { sandbox: '', path } });
  if (code === 3) return new NookError('PAYLOAD_TOO_LARGE', message, { hint: 'raise --max-bytes, or copy a smaller file' });
  if (code === 4) return new NookError('INVALID_ARGUMENT', message);
  if (code === 6) return new NookError('TIMEOUT', message, { hint: 'something in the sandbox (its tar) or the client stopped; NOOK_COPY_IDLE_TIMEOUT_MS sets the limit', context: { timeoutMs: COPY_IDLE_TIMEOUT_MS } });
  return new NookError('RUNTIME_ERROR', `the fast copy failed (${message}); copy over the stream instead`, { hint: 'the CLI does so by itself; NOOK_FAST_COPY=0 skips the fast path' });
}

/** Starts one relay and reads its answer line; the handoff socket is gone when this returns. */
async function runRelay(helper: string, args: string[], socket: string, onReady: (socket: string) => void, signal: AbortSignal): Promise<RelayLine> {
  const relay = spawn(helper, ['relay', socket, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The client went away: the relay dies, which hangs up on the agent, which drops its temp file (or kills tar).
  const onAbort = (): void => void relay.kill('SIGKILL');
  signal.addEventListener('abort', onAbort, { once: true });
  let stderr = '';
  relay.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
  const exited = new Promise<number | null>((resolve) => {
    relay.on('error', () => resolve(-1));
    relay.on('close', (code) => resolve(code));
  });
  let line: RelayLine | undefined;
  try {
    for await (const text of createInterface({ input: relay.stdout })) {
      if (text === 'ready') onReady(socket);
      else line = JSON.parse(text) as RelayLine;
    }
    const code = await exited;
    if (!line) throw new NookError('RUNTIME_ERROR', `the copy relay ended without an answer (exit ${code}${stderr ? `: ${stderr.trim()}` : ''})`, { hint: 'copy over the stream instead' });
    return line;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await fsp.rm(socket, { force: true });
  }
}

export async function fastCopy(
  deps: FastCopyDeps,
  ref: string,
  req: FastCopyRequest,
  maxInBytes: number,
  onReady: (socket: string) => void,
  signal: AbortSignal,
): Promise<FastCopyResult> {
  const sb = await deps.sandboxes.ensureRunning(ref);
  const agent = deps.runtime.agentSocketPath?.(sb.id);
  if (!deps.helper || !agent) throw new NookError('NOT_SUPPORTED', 'this daemon cannot copy past itself here (no nook-copy helper, or a runtime that takes no fd)', { hint: 'copy over the stream (the CLI falls back by itself)' });
  if (req.kind === 'tar') return fastTar(deps, sb, agent, req, maxInBytes, onReady, signal);
  const maxBytes = req.direction === 'in' ? Math.min(req.maxBytes ?? maxInBytes, maxInBytes) : (req.maxBytes ?? DEFAULT_OUT_MAX_BYTES);
  const mode = ((req.mode ?? 0o644) & 0o777).toString(8);
  const args = [agent, req.direction, req.path, mode, String(maxBytes), String(HANDOFF_TIMEOUT_MS)];
  const line = await runRelay(deps.helper, args, handoffSocket(deps), onReady, signal);
  if (!line.ok) throw relayError(line.code, line.message, req.path);
  deps.audit.note({ file: { path: req.path, bytes: line.bytes, sha256: line.sha256, direction: req.direction, fast: true } }, { id: sb.id, name: sb.name });
  const file = req.direction === 'in' ? (linkedInfo(req.path, line.stat) ?? (await deps.stat(sb.id, req.path))) : undefined;
  return { path: req.path, bytes: line.bytes, sha256: line.sha256, ...(file ? { file } : {}) };
}

function handoffSocket(deps: FastCopyDeps): string {
  return join(deps.socketDir, `.nook-copy-${randomBytes(12).toString('hex')}.sock`);
}

/**
 * A directory copy's tar stream past the daemon (native/copy/tar-relay.c): the CLI hands over
 * one end of a pipe (its pack stream in, or its safe untar's input out); the relay runs the
 * sandbox's own tar through the exec agent, as the stream path does, and bounds, hashes and
 * times out the bytes itself. The audit record keeps the stream's sha256, as on that path.
 */
async function fastTar(
  deps: FastCopyDeps,
  sb: { id: string; name: string },
  agent: string,
  req: FastCopyRequest,
  maxInBytes: number,
  onReady: (socket: string) => void,
  signal: AbortSignal,
): Promise<FastCopyResult> {
  const info = req.direction === 'in' ? await deps.mkdir(sb.id, req.path) : await deps.stat(sb.id, req.path);
  const maxBytes = req.direction === 'in' ? Math.min(req.maxBytes ?? maxInBytes, maxInBytes) : (req.maxBytes ?? DEFAULT_TAR_OUT_MAX_BYTES);
  const args = [agent, `tar-${req.direction}`, req.path, '-', String(maxBytes), String(HANDOFF_TIMEOUT_MS), String(COPY_IDLE_TIMEOUT_MS)];
  const line = await runRelay(deps.helper ?? '', args, handoffSocket(deps), onReady, signal);
  if (!line.ok) throw relayError(line.code, line.message, req.path);
  const record = { path: req.path, bytes: line.bytes, sha256: line.sha256, direction: req.direction, kind: 'tar' as const, fast: true };
  deps.audit.note({ file: req.direction === 'out' ? { ...record, type: info.type } : record }, { id: sb.id, name: sb.name });
  return { path: req.path, bytes: line.bytes, sha256: line.sha256 };
}
