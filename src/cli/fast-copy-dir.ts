/**
 * The CLI's side of a directory copy's fast path (src/core/fast-copy.ts, fastTar): the tar
 * stream goes between this process and a one-time native relay over a socket pair whose
 * other end nook-copy hands over (SCM_RIGHTS), past the daemon's event loop. Packing stays
 * node-tar's; unpacking on the host stays the SDK's safe untar (unpackTo), into a scratch
 * directory put in place only once the relay has answered that the archive is whole.
 * null: not done, the caller streams instead (same result). NOOK_FAST_COPY=0 turns it off.
 */
import { pipeline } from 'node:stream/promises';
import { NookError } from '../api/errors.js';
import type { TarResult } from '../api/schemas.js';
import type { NookClient } from '../sdk/client.js';
import type { Unpacked } from '../sdk/dir-transfer.js';
import type { Files } from '../sdk/sandbox/files.js';
import { fastPath, run, startSender } from './fast-copy.js';

/** The host tree's own answers (the stream would give them too): no point copying again. */
const DEFINITE_UNPACK = new Set(['PAYLOAD_TOO_LARGE', 'INVALID_ARGUMENT', 'NAME_TAKEN']);

/** A host directory's contents into `dir` in the sandbox; null: stream it instead. */
export async function fastCopyDirIn(client: NookClient, files: Files, hostDir: string, dir: string): Promise<TarResult | null> {
  const helper = fastPath(client);
  if (!helper) return null;
  const { packDir } = await import('../sdk/dir-transfer.js');
  const sender = startSender(helper, 'pipe');
  const stream = sender.stream;
  if (!stream) return null;
  const hangUp = new AbortController();
  let packFailed: Error | undefined;
  let settled = false;
  // A pack that broke off ends the pipe like a whole archive: checked against the answer below.
  // (Most pack errors are the relay stopping first, at its bound: its answer says why.)
  const packing = pipeline(packDir(hostDir), stream).catch((e: Error) => {
    if (!settled) packFailed = e;
  });
  const r = await run(files, { path: dir, direction: 'in', kind: 'tar' }, sender, hangUp).finally(() => {
    settled = true;
    stream.destroy();
  });
  await packing;
  if (!r) return null;
  // The relay took a stream that ended early as a whole archive: the copy is not whole.
  if (packFailed) throw new NookError('RUNTIME_ERROR', `packing ${hostDir} broke off (${packFailed.message}); the sandbox's copy may be partial`, { hint: 'check that every file under it is readable, then copy again' });
  return { path: r.path, bytes: r.bytes, sha256: r.sha256 };
}

/** A sandbox file or directory out to the host (as files.download does); null: stream it instead. */
export async function fastCopyDirOut(client: NookClient, files: Files, path: string, hostDest: string, maxBytes: number): Promise<Unpacked | null> {
  const helper = fastPath(client);
  if (!helper) return null;
  const { unpackTo } = await import('../sdk/dir-transfer.js');
  const sender = startSender(helper, 'pipe');
  const stream = sender.stream;
  if (!stream) return null;
  const hangUp = new AbortController();
  const copy = run(files, { path, direction: 'out', kind: 'tar', maxBytes }, sender, hangUp);
  // The relay's answer: whole (the tree may go in place), or not (the untar stops at once).
  const whole = copy.then((r) => {
    if (!r) throw new NookError('RUNTIME_ERROR', 'the fast copy did not finish');
    return r;
  });
  whole.catch(() => stream.destroy());
  const top = path.replace(/\/+$/, '').split('/').pop() || 'root';
  try {
    return await unpackTo(stream, top, hostDest, maxBytes, whole);
  } catch (e) {
    // The untar stopped (a bound, a hostile archive, a taken name), or the stream broke off
    // because the relay stopped first (its idle timeout, its bound). Closing our end stops the
    // relay if it still runs; its answer comes through the daemon, after the stream's end, so
    // it is waited for (a moment) before hanging up on the request.
    stream.destroy();
    const answer = await answerWithin(copy, ANSWER_GRACE_MS);
    if (answer === NO_ANSWER) hangUp.abort();
    if (e instanceof NookError && DEFINITE_UNPACK.has(e.code)) throw e;
    if (answer instanceof NookError) throw answer;
    if (answer === null) return null;
    throw e;
  }
}

const ANSWER_GRACE_MS = 5000;
const NO_ANSWER = Symbol('no answer');

/** What `copy` settles to (its value, or its error) within `ms`, or NO_ANSWER. */
function answerWithin<T>(copy: Promise<T>, ms: number): Promise<T | unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof NO_ANSWER>((resolve) => (timer = setTimeout(() => resolve(NO_ANSWER), ms)));
  const settled = copy.then(
    (v) => v,
    (err: unknown) => err,
  );
  return Promise.race([settled, late]).finally(() => clearTimeout(timer));
}
