import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FrameReader } from '../../src/runtime/agent-client.js';

function frame(type: string, payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

describe('FrameReader', () => {
  it('yields the same frames however the stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('O', 'A', 'X'), fc.uint8Array({ maxLength: 3000 })), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 4000 }), { minLength: 1, maxLength: 50 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map(([t, p]) => frame(t, Buffer.from(p))));
          const seen: [string, Buffer][] = [];
          const reader = new FrameReader();
          let off = 0;
          for (let i = 0; off < stream.length; i++) {
            const n = cuts[i % cuts.length] ?? 1;
            reader.push(stream.subarray(off, off + n), (type, payload) => seen.push([type, Buffer.from(payload)]));
            off += n;
          }
          assert.deepEqual(
            seen,
            frames.map(([t, p]) => [t, Buffer.from(p)]),
          );
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });
});
