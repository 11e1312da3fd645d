import { EventEmitter } from 'node:events';
import { createWriteStream, promises as fsp, renameSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';

/** One chunk of output, as stored: n = sequence, t = ms since epoch, s = o|e, d = base64. */
export interface LogRecord {
  n: number;
  t: number;
  s: 'o' | 'e';
  d: string;
}

/** A file rotates past this size; one older file is kept, so a process keeps at most twice it. */
const ROTATE_BYTES = 8 * 1024 * 1024;

interface Writer {
  stream: WriteStream;
  bytes: number;
  seq: number;
  /** Records written lately, which the file may not hold yet (writes are buffered). */
  recent: LogRecord[];
  /** Bytes of data those records hold. */
  recentBytes: number;
}

/**
 * How much of the latest output is also kept in memory. Back-pressure keeps what the file
 * has not taken yet to one write buffer and a chunk, so this covers it with room to spare;
 * counted in bytes, since a count of records let 4096 large chunks hold 350 MB.
 */
const RECENT_BYTES = 2 * 1024 * 1024;

/**
 * Output of background processes, kept in the daemon's state (never in the sandbox's
 * files), bounded and rotated, and followable as it is written.
 */
export class LogStore {
  private readonly writers = new Map<string, Writer>();
  private readonly live = new EventEmitter();

  constructor(private readonly dir: string) {
    this.live.setMaxListeners(0);
  }

  private path(sandboxId: string, processId: string): string {
    return join(this.dir, sandboxId, `${processId}.log`);
  }

  async open(sandboxId: string, processId: string): Promise<void> {
    await fsp.mkdir(join(this.dir, sandboxId), { recursive: true, mode: 0o700 });
    const path = this.path(sandboxId, processId);
    const prior = await this.read(sandboxId, processId);
    const bytes = (await fsp.stat(path).catch(() => ({ size: 0 }))).size;
    this.writers.set(processId, { stream: createWriteStream(path, { flags: 'a', mode: 0o600 }), bytes, seq: prior.at(-1)?.n ?? 0, recent: [], recentBytes: 0 });
  }

  /**
   * Stores a chunk. Answers false when the file is behind (the disk is slower than the
   * process): the caller stops reading the process until `whenDrained`, so output waits in
   * the sandbox's pipe instead of in the daemon's memory.
   */
  append(sandboxId: string, processId: string, stream: 'o' | 'e', chunk: Buffer): boolean {
    const w = this.writers.get(processId);
    if (!w) return true;
    const record: LogRecord = { n: ++w.seq, t: Date.now(), s: stream, d: chunk.toString('base64') };
    const line = JSON.stringify(record) + '\n';
    if (w.bytes + line.length > ROTATE_BYTES) {
      const path = this.path(sandboxId, processId);
      w.stream.end();
      // Synchronous, so the new file is opened only after the old one has moved away.
      try {
        renameSync(path, `${path}.1`);
      } catch {
        // nothing written yet
      }
      w.stream = createWriteStream(path, { flags: 'w', mode: 0o600 });
      w.bytes = 0;
    }
    const ready = w.stream.write(line);
    w.bytes += line.length;
    w.recent.push(record);
    w.recentBytes += record.d.length;
    while (w.recentBytes > RECENT_BYTES && w.recent.length > 1) w.recentBytes -= w.recent.shift()?.d.length ?? 0;
    this.live.emit(processId, record);
    return ready;
  }

  /** Calls `then` once the process's log file has caught up (or was rotated away and closed). */
  whenDrained(processId: string, then: () => void): void {
    const s = this.writers.get(processId)?.stream;
    if (!s || !s.writableNeedDrain) return then();
    const done = (): void => {
      s.off('drain', done);
      s.off('close', done);
      then();
    };
    s.once('drain', done);
    s.once('close', done);
  }

  async close(processId: string): Promise<void> {
    const w = this.writers.get(processId);
    // Kept until the file holds everything: a reader in between still finds the last output in `recent`.
    if (w) await new Promise<void>((r) => w.stream.end(() => r()));
    if (this.writers.get(processId) === w) this.writers.delete(processId);
    this.live.emit(`${processId}:end`);
  }

  /** Stored records, oldest first (the rotated file, then the current one). */
  async read(sandboxId: string, processId: string): Promise<LogRecord[]> {
    const path = this.path(sandboxId, processId);
    const out: LogRecord[] = [];
    for (const file of [`${path}.1`, path]) {
      const text = await fsp.readFile(file, 'utf8').catch(() => '');
      for (const line of text.split('\n')) {
        if (!line) continue;
        try {
          out.push(JSON.parse(line) as LogRecord);
        } catch {
          // a line cut by a crash mid-write
        }
      }
    }
    const byN = new Map(out.map((r) => [r.n, r]));
    for (const r of this.writers.get(processId)?.recent ?? []) byN.set(r.n, r);
    return [...byN.values()].sort((a, b) => a.n - b.n);
  }

  /** New records as they are written, until the process ends; returns the unsubscribe. */
  follow(processId: string, onRecord: (r: LogRecord) => void, onEnd: () => void): () => void {
    const end = (): void => onEnd();
    this.live.on(processId, onRecord);
    this.live.once(`${processId}:end`, end);
    return () => {
      this.live.off(processId, onRecord);
      this.live.off(`${processId}:end`, end);
    };
  }

  async remove(sandboxId: string, processId?: string): Promise<void> {
    if (processId) {
      const path = this.path(sandboxId, processId);
      await fsp.rm(path, { force: true });
      await fsp.rm(`${path}.1`, { force: true });
    } else {
      await fsp.rm(join(this.dir, sandboxId), { recursive: true, force: true });
    }
  }
}
