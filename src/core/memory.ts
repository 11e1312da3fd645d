import { chmodSync, existsSync, promises as fsp, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { newId } from '../util/ids.js';

const KEY = /^[A-Za-z0-9_-]{1,64}$/;
const TMP_PREFIX = '.tmp-';

/**
 * Saved process memory (gVisor checkpoint images), root-only, one directory per owner: a
 * sandbox id (cold stop) or a snapshot id (snapshot --memory). An image is written to a
 * temporary directory and renamed into place, so a crash leaves a whole image or none;
 * startup removes the temporary ones and images nobody owns.
 */
export class MemoryImages {
  constructor(private readonly dir: string) {}

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fsp.chmod(this.dir, 0o700);
  }

  path(key: string): string {
    if (!KEY.test(key)) throw new Error(`not a memory image key: ${key}`);
    return join(this.dir, key);
  }

  exists(key: string): boolean {
    return existsSync(join(this.path(key), 'checkpoint.img'));
  }

  /** A fresh, empty, root-only directory to checkpoint into. */
  async scratch(): Promise<string> {
    const tmp = join(this.dir, `${TMP_PREFIX}${newId('m', 12)}`);
    await fsp.mkdir(tmp, { mode: 0o700 });
    return tmp;
  }

  /** Makes a finished checkpoint the image of `key` (replacing any), readable by root only. */
  async commit(tmp: string, key: string): Promise<void> {
    for (const f of readdirSync(tmp)) chmodSync(join(tmp, f), 0o600);
    await fsp.rm(this.path(key), { recursive: true, force: true });
    await fsp.rename(tmp, this.path(key));
  }

  /** A copy under another key (a cold-stopped sandbox's memory taken into a snapshot). */
  async copy(from: string, to: string): Promise<void> {
    const tmp = await this.scratch();
    await fsp.cp(this.path(from), tmp, { recursive: true });
    await this.commit(tmp, to);
  }

  async remove(keyOrTmp: string): Promise<void> {
    const target = keyOrTmp.startsWith(this.dir) ? keyOrTmp : this.path(keyOrTmp);
    await fsp.rm(target, { recursive: true, force: true });
  }

  /** Bytes on disk, or null without an image. */
  bytes(key: string): number | null {
    if (!KEY.test(key) || !this.exists(key)) return null;
    let total = 0;
    for (const f of readdirSync(this.path(key))) total += statSync(join(this.path(key), f)).size;
    return total;
  }

  /** Every image: key, bytes, age. */
  list(): { key: string; bytes: number; mtimeMs: number }[] {
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names.filter((n) => KEY.test(n) && this.exists(n)).map((key) => ({ key, bytes: this.bytes(key) ?? 0, mtimeMs: statSync(this.path(key)).mtimeMs }));
  }

  /** Startup: half-written checkpoints go, and images whose owner is gone. */
  async reconcile(isOwned: (key: string) => boolean): Promise<string[]> {
    const removed: string[] = [];
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch {
      return removed;
    }
    for (const n of names) {
      if (n.startsWith(TMP_PREFIX) || !KEY.test(n) || !isOwned(n)) {
        await fsp.rm(join(this.dir, n), { recursive: true, force: true });
        removed.push(n);
      }
    }
    return removed;
  }
}
