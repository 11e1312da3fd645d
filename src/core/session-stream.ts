/**
 * Streaming bytes through an exec-agent session, for file and tar copies: stdin fed with
 * back-pressure, stdout handed on as a Readable that pauses the agent while the reader is
 * behind; both bounded, counted and hashed (the sha256 goes on the audit record).
 */
import { createHash, type Hash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { NookError } from '../api/errors.js';
import type { SessionHandle } from '../runtime/driver.js';

/**
 * Writes `body` to the session's stdin and ends it. Past `maxBytes` it throws `tooLarge()`.
 * On any failure the command is killed, never given EOF: an ended stdin would let it finish
 * on cut input (a half file renamed into place, a half-unpacked archive).
 */
export async function feedStdin(
  session: SessionHandle,
  body: AsyncIterable<Uint8Array>,
  maxBytes: number,
  tooLarge: () => NookError,
  onChunk: () => void = () => undefined,
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of body) {
      onChunk();
      bytes += chunk.length;
      if (bytes > maxBytes) throw tooLarge();
      hash.update(chunk);
      await session.writeAsync(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    }
  } catch (e) {
    session.kill();
    await session.exited.catch(() => undefined);
    throw e;
  }
  session.endStdin();
  return { bytes, sha256: hash.digest('hex') };
}

/** A session's stdout as a Readable; `attach` it to the session once opened. */
export class SessionOutput {
  readonly stream = new PassThrough({ highWaterMark: 1 << 20 });
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private session: SessionHandle | undefined;

  attach(session: SessionHandle): void {
    this.session = session;
    // The reader went away early: stop the command.
    this.stream.on('close', () => {
      if (!this.stream.writableFinished) session.kill();
    });
  }

  /** Passes a chunk on; while the reader is behind, the agent stops reading the command. */
  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    if (!this.stream.write(chunk)) {
      this.session?.pause();
      this.stream.once('drain', () => this.session?.resume());
    }
  }

  fail(e: Error): void {
    this.session?.kill();
    this.stream.destroy(e);
  }
}
