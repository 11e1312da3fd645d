/** Managed volumes. */
import { z } from 'zod';
import { Name } from './common.js';

export const Volume = z.object({
  receipt: z.string().optional(),
  name: z.string(),
  id: z.string(),
  sizeMiB: z.number().int(),
  /** locked: only ciphertext exists; unlocked: the key is in the kernel. */
  state: z.enum(['locked', 'unlocked']),
  mountedIn: z.object({ sandbox: z.string(), path: z.string(), rw: z.boolean() }).nullable(),
  createdAt: z.string(),
});
export type Volume = z.infer<typeof Volume>;
export const VolumeList = z.object({ volumes: z.array(Volume) });
export const CreateVolumeRequest = z.strictObject({ name: Name, sizeMiB: z.number().int().min(16).max(16 * 1024 * 1024) });
export const LockVolumeRequest = z.strictObject({ force: z.boolean().optional() });
export const MountVolumeRequest = z.strictObject({
  volume: Name,
  guest: z.string().startsWith('/').max(4096),
  rw: z.boolean().optional(),
  /** Host-backed: bind this host directory instead, only if it is verifiably encrypted (fscrypt). */
  host: z.string().startsWith('/').max(4096).optional(),
});
