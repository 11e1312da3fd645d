/**
 * Bounds what an exec gives back: each of stdout and stderr keeps at most `maxBytes`;
 * the rest is dropped (also from the live stream) and `truncated` is set. The process is
 * not stopped: its timeout bounds it.
 */
export class OutputCapture {
  private readonly out: Buffer[] = [];
  private readonly err: Buffer[] = [];
  private outBytes = 0;
  private errBytes = 0;
  private truncated = false;

  constructor(
    private readonly maxBytes: number,
    private readonly sink: { onStdout?: (b: Buffer) => void; onStderr?: (b: Buffer) => void },
  ) {}

  stdout(chunk: Buffer): void {
    const kept = this.keep(chunk, this.outBytes);
    this.outBytes += kept.length;
    this.emit(kept, this.out, this.sink.onStdout);
  }

  stderr(chunk: Buffer): void {
    const kept = this.keep(chunk, this.errBytes);
    this.errBytes += kept.length;
    this.emit(kept, this.err, this.sink.onStderr);
  }

  private emit(kept: Buffer, into: Buffer[], forward?: (b: Buffer) => void): void {
    if (kept.length === 0) return;
    into.push(kept);
    forward?.(kept);
  }

  private keep(chunk: Buffer, used: number): Buffer {
    const room = this.maxBytes - used;
    if (chunk.length <= room) return chunk;
    this.truncated = true;
    return chunk.subarray(0, Math.max(0, room));
  }

  result(): { stdout: string; stderr: string; truncated: boolean } {
    return { stdout: Buffer.concat(this.out).toString('utf8'), stderr: Buffer.concat(this.err).toString('utf8'), truncated: this.truncated };
  }
}
