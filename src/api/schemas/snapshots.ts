/** Snapshots, forks and commits. */
import { z } from 'zod';
import { ImageName, Name } from './common.js';

export const SNAPSHOT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,127}$/;
export const SnapshotName = z
  .string()
  .regex(SNAPSHOT_NAME_PATTERN, 'snapshot names are 1-128 letters, digits, spaces and . _ : -, starting with a letter or digit')
  .refine((n) => !n.endsWith(' '), 'snapshot names must not end with a space');

export const Snapshot = z.object({
  /** The audit receipt of the call that returned this (mutating calls only). */
  receipt: z.string().optional(),
  id: z.string(),
  name: z.string(),
  sandbox: z.string(),
  sandboxId: z.string(),
  /** False once the sandbox was destroyed: the snapshot still restores. */
  sandboxExists: z.boolean(),
  image: z.string(),
  persist: z.array(z.string()),
  createdAt: z.string(),
  /** Filled in shortly after the snapshot is taken (measuring walks the files). */
  sizeBytes: z.number().int().nullable(),
  durationMs: z.number(),
  /** Process memory saved with the files (snapshot --memory): a restore continues its processes. */
  memoryBytes: z.number().int().nullable().optional(),
});
export type Snapshot = z.infer<typeof Snapshot>;

export const CreateSnapshotRequest = z.strictObject({
  name: SnapshotName,
  /** Also save process memory ("cold mode"); NOT_SUPPORTED by the crun driver. */
  memory: z.boolean().optional(),
});
export type CreateSnapshotRequest = z.infer<typeof CreateSnapshotRequest>;

export const SnapshotList = z.object({ snapshots: z.array(Snapshot) });

export const ForkRequest = z.strictObject({
  name: Name.optional(),
  count: z.number().int().min(1).max(64).optional(),
  /** Copy process memory too (default on gVisor when the source runs): every fork continues from the same instant. */
  memory: z.boolean().optional(),
});
export type ForkRequest = z.infer<typeof ForkRequest>;

export const CommitRequest = z.strictObject({ image: ImageName });
export type CommitRequest = z.infer<typeof CommitRequest>;
