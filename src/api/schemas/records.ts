/** Audit records, usage, retained state, gc, the done checklist, profiles and host settings. */
import { z } from 'zod';
import { HOST_SETTINGS } from '../constants.js';
import { ImageName, LIMITS } from './common.js';
import { Limits, RuntimeName } from './sandboxes.js';

export const AuditRecord = z.object({
  seq: z.number().int(),
  id: z.string(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  sandboxId: z.string().nullable(),
  sandbox: z.string().nullable(),
  inputs: z.record(z.string(), z.unknown()),
  /** started: the operation began and no outcome was written (the daemon died meanwhile). */
  outcome: z.enum(['started', 'ok', 'error']),
  result: z.record(z.string(), z.unknown()),
  errorCode: z.string().nullable(),
  prevHash: z.string(),
  hash: z.string(),
});
export type AuditRecord = z.infer<typeof AuditRecord>;
export const AuditList = z.object({ records: z.array(AuditRecord) });
export const AuditVerify = z.object({
  ok: z.boolean(),
  records: z.number().int(),
  firstBad: z.object({ seq: z.number().int(), id: z.string(), reason: z.string() }).optional(),
});
export type AuditVerify = z.infer<typeof AuditVerify>;

export const Usage = z.object({
  sandbox: z.string(),
  computeSeconds: z.number(),
  storedBytes: z.object({ files: z.number().int(), snapshots: z.number().int(), logs: z.number().int() }),
  /** Bytes counted against the disk limit and the limit (null where limits are not enforced). */
  disk: z.object({ usedBytes: z.number().int().nullable(), limitMiB: z.number().int().nullable() }),
  /** Now, from the running sandbox's cgroup (v1 or v2); null when stopped. Null fields: controller absent. */
  live: z
    .object({ memoryBytes: z.number().int().nullable(), cpuSeconds: z.number().nullable(), pids: z.number().int().nullable() })
    .nullable()
    .optional(),
});
export type Usage = z.infer<typeof Usage>;

/**
 * Kinds of retained state; `blobs` is the registry blob cache (it only speeds up later pulls).
 * Volumes and the audit log are listed too, but gc never takes them: a volume is user data
 * (nook volume rm) and the audit log is the evidence chain.
 */
export const RetainedKind = z.enum(['sandbox', 'snapshot', 'image', 'logs', 'blobs', 'volume', 'audit', 'memory']);
/** Memory images go with their sandbox or snapshot (destroy, snapshot rm), never by age alone. */
export const GcKind = RetainedKind.exclude(['volume', 'audit', 'memory']);
export const RetainedItem = z.object({
  kind: RetainedKind,
  name: z.string(),
  id: z.string(),
  sizeBytes: z.number().int().nullable(),
  ageSeconds: z.number(),
  detail: z.string(),
});
export type RetainedItem = z.infer<typeof RetainedItem>;
export const RetainedList = z.object({ items: z.array(RetainedItem) });

export const GcRequest = z.strictObject({
  olderThanMs: z.number().int().min(0),
  kinds: z.array(GcKind).min(1).optional(),
  dryRun: z.boolean().optional(),
});
export const GcResult = z.object({ receipt: z.string().optional(), dryRun: z.boolean(), deleted: z.array(RetainedItem) });

export const DoneReport = z.object({
  receipt: z.string().optional(),
  sandbox: z.string(),
  stopped: z.boolean(),
  unexposed: z.array(z.number().int()),
  volumesLocked: z.array(z.string()),
  unlockedVolumes: z.array(z.string()),
  snapshots: z.array(z.object({ name: z.string(), id: z.string(), createdAt: z.string() })),
  receipts: z.array(z.string()),
  remaining: z.array(RetainedItem),
  clean: z.boolean(),
});
export type DoneReport = z.infer<typeof DoneReport>;

export const ProfileSpec = z.strictObject({
  persistent: z.boolean().optional(),
  network: z.enum(['none', 'allowlist', 'learn']).optional(),
  allowHosts: z.array(z.string().min(1).max(260)).max(256).optional(),
  memoryMiB: Limits.shape.memoryMiB.optional(),
  cpus: Limits.shape.cpus.optional(),
  pids: Limits.shape.pids.optional(),
  diskMiB: Limits.shape.diskMiB.unwrap().unwrap().optional(),
  ttlMs: z.number().int().positive().max(LIMITS.maxTtlMs).optional(),
  image: ImageName.optional(),
  /** The isolation its sandboxes get unless the request says (crun or gvisor). */
  runtime: RuntimeName.optional(),
  allowRwDirs: z.boolean().optional(),
});
export type ProfileSpec = z.infer<typeof ProfileSpec>;
export const Profile = z.object({
  receipt: z.string().optional(),
  name: z.string(),
  draft: ProfileSpec.nullable(),
  published: z.array(z.object({ version: z.number().int(), spec: ProfileSpec, publishedAt: z.string() })),
});
export type Profile = z.infer<typeof Profile>;
export const ProfileList = z.object({ profiles: z.array(Profile) });

export { HOST_SETTINGS } from '../constants.js';
export const HostSetting = z.enum(HOST_SETTINGS);
export const HostConfig = z.object({
  receipt: z.string().optional(),
  settings: z.record(z.string(), z.boolean()),
  /** Warm pool sizes by image (`pool.IMAGE`); images without a pool are absent. */
  pools: z.record(z.string(), z.number().int()).optional(),
});
export type HostConfig = z.infer<typeof HostConfig>;
/** A host setting (true/false) or a pool size (`pool.IMAGE`, 0 to 32); the daemon checks the pair and names the keys it knows. */
export const SetConfigRequest = z.strictObject({ key: z.string().min(1).max(200), value: z.union([z.boolean(), z.number().int().min(-1_000_000).max(1_000_000)]) });
export type SetConfigRequest = z.infer<typeof SetConfigRequest>;
