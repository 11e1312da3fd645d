/** The egress splice relay's helpers (`<state>/bin/nook-init relay MS ID`) seen from /proc. */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Pids of this daemon's relay helpers, for one sandbox or all. */
export function relayHelpers(stateDir: string, sandboxId?: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.startsWith(stateDir) && argv[1] === 'relay' && (sandboxId === undefined || argv[3] === sandboxId)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/**
 * Relays a sandbox's helpers carry now. Each relay holds two pipes with both ends open in the
 * helper, so a pipe seen twice is a relay's; a count of all descriptors would also take in
 * whatever the helper inherited (a test runner's shell can pass one down).
 */
export function relaysOpen(stateDir: string, sandboxId: string): number {
  let pipes = 0;
  for (const pid of relayHelpers(stateDir, sandboxId)) {
    const seen = new Map<string, number>();
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith('pipe:')) seen.set(target, (seen.get(target) ?? 0) + 1);
      } catch {
        // closed meanwhile
      }
    }
    for (const n of seen.values()) if (n === 2) pipes++;
  }
  return pipes / 2;
}
