/** The daemon itself: health and shutdown. */
import { z } from 'zod';
import { PoolInfo } from './pool.js';

export const Health = z.object({
  ok: z.boolean(),
  version: z.string(),
  pid: z.number().int(),
  stateDir: z.string(),
  runtime: z.object({ name: z.string(), version: z.string() }),
  /** The host's cgroup kind, detected at start. */
  cgroup: z.enum(['v1', 'v1-hybrid', 'v2']),
  storage: z.object({ driver: z.string(), constantTimeSnapshots: z.boolean() }),
  sandboxes: z.number().int(),
  /** Warm pools: ready members, counters and what they cost idle. */
  pools: z.array(PoolInfo).optional(),
  /** Bounds a client can check before it starts (the console refuses a too-large upload up front). */
  limits: z.object({ copyInBytes: z.number().int() }).optional(),
});
export type Health = z.infer<typeof Health>;

/** `nook console`: the link that logs a browser in once (the token rides in the URL's fragment). */
export const ConsoleLogin = z.object({ url: z.string(), expiresAt: z.string(), receipt: z.string().optional() });
export type ConsoleLogin = z.infer<typeof ConsoleLogin>;

export const StopRequest = z.strictObject({
  /** Cold stop: keep process memory too (gVisor); resume continues the processes. */
  memory: z.boolean().optional(),
});
export type StopRequest = z.infer<typeof StopRequest>;

export const ShutdownRequest = z.strictObject({
  /** Stop every sandbox's compute and unmount the pool before exiting (files are kept). */
  release: z.boolean().optional(),
});
export type ShutdownRequest = z.infer<typeof ShutdownRequest>;
