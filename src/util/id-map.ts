import { chmodSync, lchownSync, lstatSync, opendirSync } from 'node:fs';
import { join } from 'node:path';

/** Sandbox root maps to this unprivileged host range; images are stored shifted into it. */
export const ID_MAP = { hostId: 100_000, size: 65_536 } as const;

/**
 * Shifts every file's owner by `offset` (uid 0 -> 100000), so that the sandbox's root,
 * mapped to that host range by its user namespace, owns its image. Done once per image
 * build; rootfs snapshots inherit it, so create stays constant time.
 */
export function shiftOwnership(root: string, offset: number): number {
  let count = 0;
  const visit = (path: string): void => {
    const st = lstatSync(path);
    if (st.uid < offset) {
      lchownSync(path, st.uid + offset, st.gid + offset);
      // chown clears setuid/setgid bits; put them back (never on symlinks).
      if (!st.isSymbolicLink() && (st.mode & 0o6000) !== 0) chmodSync(path, st.mode & 0o7777);
    }
    count++;
    if (st.isDirectory()) {
      const dir = opendirSync(path);
      try {
        for (let e = dir.readSync(); e; e = dir.readSync()) visit(join(path, e.name));
      } finally {
        dir.closeSync();
      }
    }
  };
  visit(root);
  return count;
}
