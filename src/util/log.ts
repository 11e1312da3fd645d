/**
 * The daemon's log: one line per event on stderr, with a timestamp. Every line is bounded
 * (fields often carry what a sandbox or client sent), and when stderr is a log file opened
 * for append (how `nook` starts the daemon: <state dir>/nookd.log) it is rotated by size:
 * at NOOK_LOG_MAX_BYTES (10 MiB) it is copied to .1 (older ones shift, NOOK_LOG_FILES = 3
 * kept) and truncated in place, since the descriptor is inherited and cannot be reopened.
 */
import { copyFileSync, fstatSync, ftruncateSync, readFileSync, readlinkSync, renameSync } from 'node:fs';
import { positiveInt } from './env.js';

/** Longest message or string field written as is; longer ones are cut with a note. */
const MAX_FIELD_CHARS = 1000;
/** Longest line, whatever the fields hold. */
const MAX_LINE_CHARS = 8000;
const O_APPEND = 0o2000;

interface LogFile {
  path: string;
  /** Bytes written since the last look at the file's real size. */
  size: number;
  maxBytes: number;
  keep: number;
}

/** The file behind fd 2 when it is a regular file opened for append; else null. */
function logFileOnStderr(): LogFile | null {
  try {
    const st = fstatSync(2);
    if (!st.isFile()) return null;
    const flags = /^flags:\s*([0-7]+)/m.exec(readFileSync('/proc/self/fdinfo/2', 'utf8'))?.[1];
    if (!flags || (parseInt(flags, 8) & O_APPEND) === 0) return null;
    const path = readlinkSync('/proc/self/fd/2');
    if (!path.startsWith('/') || path.endsWith(' (deleted)')) return null;
    return { path, size: st.size, maxBytes: positiveInt(process.env.NOOK_LOG_MAX_BYTES, 10 * 1024 * 1024), keep: positiveInt(process.env.NOOK_LOG_FILES, 3) };
  } catch {
    return null;
  }
}

let file: LogFile | null | undefined;

function rotateIfDue(f: LogFile, adding: number): void {
  f.size += adding;
  if (f.size < f.maxBytes) return;
  try {
    f.size = fstatSync(2).size;
    if (f.size < f.maxBytes) return;
    for (let i = f.keep - 1; i >= 1; i--) {
      try {
        renameSync(`${f.path}.${i}`, `${f.path}.${i + 1}`);
      } catch {
        // not there yet
      }
    }
    copyFileSync(f.path, `${f.path}.1`);
    ftruncateSync(2, 0);
    f.size = 0;
  } catch {
    // Rotation is best effort; logging must never fail the daemon.
    f.size = 0;
  }
}

function clip(text: string, max = MAX_FIELD_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length - max} more chars)`;
}

function bounded(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[clip(k, 100)] = typeof v === 'string' ? clip(v) : v;
  return out;
}

export function log(message: string, fields: Record<string, unknown> = {}): void {
  const extra = Object.keys(fields).length > 0 ? ' ' + JSON.stringify(bounded(fields)) : '';
  const line = `${new Date().toISOString()} ${clip(`${clip(message)}${extra}`, MAX_LINE_CHARS)}\n`;
  if (file === undefined) file = logFileOnStderr();
  if (file) rotateIfDue(file, Buffer.byteLength(line));
  process.stderr.write(line);
}
