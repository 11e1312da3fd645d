/**
 * Unpacking an untrusted tar on the host: only files, directories, symlinks and in-tree
 * hard links; no absolute or `..` paths (node-tar also never writes through a symlink it
 * made); no setuid/setgid bits; no ownership from the archive; a byte bound.
 * The SDK keeps a copy (sdk/safe-untar.ts, as it imports only api/): change both;
 * test/unit/safe-untar.test.ts holds them to the same behaviour.
 */
import type { Stats } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, type ReadEntry } from 'tar';
import { NookError } from '../api/errors.js';
import { ByteLimit } from './byte-limit.js';

const KEPT_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

export interface Untarred {
  bytes: number;
  entries: number;
  skipped: string[];
}

export async function safeUntar(archive: Readable | NodeJS.ReadableStream, cwd: string, maxBytes: number): Promise<Untarred> {
  const result: Untarred = { bytes: 0, entries: 0, skipped: [] };
  const counter = new ByteLimit(maxBytes, () => new NookError('PAYLOAD_TOO_LARGE', `the archive is more than ${maxBytes} bytes: stopped, nothing kept`, { hint: 'raise the limit, or copy less' }));
  const escapes = (p: string): boolean => p.startsWith('/') || p.split('/').includes('..');
  await pipeline(
    archive,
    counter,
    extract({
      cwd,
      strict: true,
      preserveOwner: false,
      filter: (path: string, entry: ReadEntry | Stats) => {
        const e = entry as ReadEntry;
        if (!KEPT_TYPES.has(e.type) || escapes(path) || (e.type === 'Link' && escapes(e.linkpath ?? ''))) {
          result.skipped.push(`${path} (${e.type})`);
          return false;
        }
        if (typeof e.mode === 'number') e.mode &= 0o1777;
        result.entries++;
        return true;
      },
    }),
  );
  result.bytes = counter.bytes;
  return result;
}
