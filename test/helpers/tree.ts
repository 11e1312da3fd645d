/** A small host directory tree for copy tests: depth, an empty directory, an executable and a relative symlink. */
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function writeSampleTree(src: string): void {
  mkdirSync(join(src, 'a', 'b', 'c'), { recursive: true });
  mkdirSync(join(src, 'empty'));
  writeFileSync(join(src, 'a', 'b', 'c', 'deep.txt'), 'deep\n');
  writeFileSync(join(src, 'run.sh'), '#!/bin/sh\necho ran\n');
  chmodSync(join(src, 'run.sh'), 0o755);
  symlinkSync('a/b/c/deep.txt', join(src, 'shortcut'));
}
