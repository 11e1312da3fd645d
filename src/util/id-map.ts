import { chmodSync, lchownSync, lstatSync, opendirSync, type Dir } from 'node:fs';
import { join } from 'node:path';

/** Sandbox root maps to this unprivileged host range; images are stored shifted into it. */
export const ID_MAP = { hostId: 100_000, size: 65_536 } as const;

/**
 * Entries shifted between two turns of the event loop. An image may hold a million files
 * (the layer listing's bound): walked in one go, 400,000 of them kept the daemon from
 * answering anyone for 4-8 s; 1,000 take a few milliseconds.
 */
const ENTRIES_PER_TURN = 1000;

/**
 * Shifts every file's owner by `offset` (uid 0 -> 100000), so that the sandbox's root,
 * mapped to that host range by its user namespace, owns its image. Done once per image
 * build; rootfs snapshots inherit it, so create stays constant time. The calls are
 * synchronous (the thread pool would make each one slower), in batches between which the
 * daemon serves other requests.
 */
export async function shiftOwnership(root: string, offset: number): Promise<number> {
  let count = 0;
  /** Shifts one entry; answers whether it is a directory to walk into. */
  const shift = (path: string): boolean => {
    const st = lstatSync(path);
    if (st.uid < offset) {
      lchownSync(path, st.uid + offset, st.gid + offset);
      // chown clears setuid/setgid bits; put them back (never on symlinks).
      if (!st.isSymbolicLink() && (st.mode & 0o6000) !== 0) chmodSync(path, st.mode & 0o7777);
    }
    count++;
    return st.isDirectory();
  };
  // Depth first, with the open directories on an explicit stack so the walk can pause.
  const open: { path: string; dir: Dir }[] = [];
  const visit = (path: string): void => {
    if (shift(path)) open.push({ path, dir: opendirSync(path) });
  };
  try {
    visit(root);
    for (let top = open.at(-1); top; top = open.at(-1)) {
      const entry = top.dir.readSync();
      if (!entry) {
        open.pop();
        top.dir.closeSync();
        continue;
      }
      visit(join(top.path, entry.name));
      if (count % ENTRIES_PER_TURN === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    for (const { dir } of open) dir.closeSync();
  }
  return count;
}
