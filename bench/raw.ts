/** What the raw-tool reference rows share: a quiet process start and crun's hybrid-host workaround. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

/** crun needs this on hybrid cgroup hosts; raw crun gets the same (cheapest) workaround nook uses. */
export const HIDE_UNIFIED = [join(import.meta.dirname, '..', '..', 'native', 'build', 'nook-init'), 'hide-cgroup2', '--'];

/** Runs a program with no stdio (the reference rows time the process, not its output); resolves its exit code. */
export function spawnQuiet(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd ?? '', args, { stdio: ['ignore', 'ignore', 'ignore'] });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code ?? 1));
  });
}
