import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';

export interface Paths {
  stateDir: string;
  socketPath: string;
  dbPath: string;
  storageDir: string;
  runtimeStateDir: string;
  bundlesDir: string;
  initDir: string;
  cacheDir: string;
  /** Core's own per-sandbox files while compute is up (attachment disks), never the runtime's dir. */
  sandboxRunDir: string;
  /** Saved process memory (gVisor checkpoints), root-only. */
  memoryDir: string;
  /** Scratch space for exports and imports (same filesystem as the state). */
  tmpDir: string;
  /** Short, unique per state dir: names cgroups so daemons on one host never collide. */
  instance: string;
}

export const DEFAULT_STATE_DIR = '/var/lib/nook';
export const DEFAULT_SOCKET = '/run/nook/nook.sock';
export const DEFAULT_CACHE_DIR = '/var/cache/nook';

export function resolvePaths(env: NodeJS.ProcessEnv = process.env): Paths {
  const stateDir = resolve(env.NOOK_STATE_DIR || DEFAULT_STATE_DIR);
  return {
    stateDir,
    socketPath: resolve(env.NOOK_SOCKET || DEFAULT_SOCKET),
    dbPath: join(stateDir, 'nook.db'),
    storageDir: join(stateDir, 'storage'),
    runtimeStateDir: join(stateDir, 'run', 'oci'),
    bundlesDir: join(stateDir, 'run', 'bundles'),
    initDir: join(stateDir, 'bin'),
    sandboxRunDir: join(stateDir, 'run', 'sandboxes'),
    cacheDir: resolve(env.NOOK_CACHE_DIR || DEFAULT_CACHE_DIR),
    tmpDir: join(stateDir, 'tmp'),
    memoryDir: join(stateDir, 'memory'),
    instance: createHash('sha256').update(stateDir).digest('hex').slice(0, 8),
  };
}
