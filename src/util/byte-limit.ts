import { Transform, type TransformCallback } from 'node:stream';

/**
 * Passes bytes through and counts them, failing the pipeline with `tooLarge()` past
 * `maxBytes`. A Transform rather than an async generator: node-tar's Minipass writer stalls
 * behind the latter in stream.pipeline.
 */
export class ByteLimit extends Transform {
  bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly tooLarge: () => Error,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) done(this.tooLarge());
    else done(null, chunk);
  }
}
