/** The warm pool: pre-started sandboxes per image, sized by host config (`pool.IMAGE`). */
import { z } from 'zod';

/** Most sandboxes one pool may hold, and all pools together: idle cost stays bounded. */
export const POOL_MAX_SIZE = 32;
export const POOL_MAX_TOTAL = 64;

export const PoolInfo = z.object({
  /** The local image name its sandboxes start from (the key is `pool.IMAGE`). */
  image: z.string(),
  /** How many it keeps ready (host config). */
  size: z.number().int(),
  ready: z.number().int(),
  /** Creates and runs served from this pool, and those that fit it but found it empty (since the daemon started). */
  takes: z.number().int(),
  misses: z.number().int(),
  /** Members started, and starts that failed. */
  fills: z.number().int(),
  failures: z.number().int(),
  /** Why the last start failed, while the pool backs off (null once a start succeeds). */
  lastError: z.string().nullable(),
  retryAt: z.string().nullable(),
  /** What the idle members cost now: memory from their cgroups, disk they wrote. */
  idleMemoryBytes: z.number().int(),
  idleDiskBytes: z.number().int(),
});
export type PoolInfo = z.infer<typeof PoolInfo>;

export const PoolList = z.object({ pools: z.array(PoolInfo) });
export type PoolList = z.infer<typeof PoolList>;
