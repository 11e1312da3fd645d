import { NookError } from '../api/errors.js';

/** All of standard input, refused past `maxBytes`. */
export async function readStdin(maxBytes: number, hint = 'copy large inputs in as files instead'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    total += c.length;
    if (total > maxBytes) throw new NookError('PAYLOAD_TOO_LARGE', `standard input is larger than ${maxBytes} bytes`, { hint });
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}
