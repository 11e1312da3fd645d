import { promises as fsp } from 'node:fs';
import { NookError } from '../../api/errors.js';
import type { RouteName } from '../../api/routes.js';
import { STATE_MIN_FREE_BYTES } from '../../util/fs.js';

/** Calls that free space (or take none) stay allowed when the state dir is nearly full. */
const SPACE_FREEING = new Set<RouteName>(['destroySandbox', 'deleteSnapshot', 'removeImage', 'removeVolume', 'lockVolume', 'unmountVolume', 'stopSandbox', 'killProcess', 'removeFile', 'gc', 'done', 'unexpose', 'shutdown']);
/** Below this much free space where the state dir lives, other mutating calls are refused. */
const MIN_FREE_BYTES = STATE_MIN_FREE_BYTES;

/**
 * Refuses work before it starts when the state dir's file system is nearly full: the pool
 * is a loop file there too, and a btrfs whose backing file cannot grow goes read-only.
 */
export async function ensureStateSpace(action: RouteName, stateDir: string): Promise<void> {
  if (MIN_FREE_BYTES <= 0 || SPACE_FREEING.has(action)) return;
  const st = await fsp.statfs(stateDir);
  const free = st.bavail * st.bsize;
  if (free < MIN_FREE_BYTES) {
    throw new NookError('NO_SPACE', `only ${Math.floor(free / 1048576)} MiB are free where the state dir lives (${stateDir}); nothing was done`, {
      hint: 'free space there (nook gc, nook destroy, nook image rm), then retry; reads and clean-ups still work',
      context: { freeBytes: free, minFreeBytes: MIN_FREE_BYTES },
    });
  }
}
