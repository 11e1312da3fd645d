/** Sandboxes: limits, the sandbox object, templates, create and destroy. */
import { z } from 'zod';
import { PRESETS, RUNTIME_NAMES } from '../constants.js';
import { AbsolutePath, Env, ImageRef, LIMITS, Labels, Name, PullPolicy, SandboxState } from './common.js';

export const Limits = z.object({
  memoryMiB: z.number().int().min(LIMITS.minMemoryMiB).max(LIMITS.maxMemoryMiB),
  cpus: z.number().positive().max(LIMITS.maxCpus),
  pids: z.number().int().min(LIMITS.minPids).max(LIMITS.maxPids),
  /** What the sandbox may write, all its files together; null = not enforced (dir storage, or made before limits). */
  diskMiB: z.number().int().min(LIMITS.minDiskMiB).max(LIMITS.maxDiskMiB).nullable().optional(),
});
export type Limits = z.infer<typeof Limits>;

export const Sandbox = z.object({
  /** The audit receipt of the call that returned this (mutating calls only). */
  receipt: z.string().optional(),
  id: z.string(),
  name: z.string(),
  state: SandboxState,
  image: z.string(),
  persistent: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
  expiresAt: z.string().nullable(),
  ttlMs: z.number().int().nullable(),
  limits: Limits,
  labels: z.record(z.string(), z.string()),
  envKeys: z.array(z.string()),
  cwd: z.string(),
  network: z.object({ mode: z.enum(['none', 'allowlist', 'learn']), allow: z.array(z.string()) }),
  /** The sandbox's isolation: crun (namespaces) or gvisor (a user-space kernel). */
  runtime: z.string(),
  storage: z.string(),
  /** Saved process memory a paused (cold-stopped) sandbox holds: resume continues its processes. */
  memory: z.object({ sizeBytes: z.number().int() }).nullable().optional(),
  /** Paths that survive compute replacement; empty = the whole rootfs persists. */
  persist: z.array(z.string()),
  /** The snapshot or sandbox this one was restored or forked from. */
  origin: z.string().nullable(),
  /** The profile version that admitted it, if any. */
  profile: z.string().nullable(),
  /** Where host policy changed the request (e.g. persistence not allowed on this host). */
  adjusted: z.array(z.string()),
});
export type Sandbox = z.infer<typeof Sandbox>;

export const TemplateName = z.enum(PRESETS);
export const Template = z.object({
  name: TemplateName,
  image: z.string(),
  description: z.string(),
  memoryMiB: z.number().int(),
  pids: z.number().int(),
  env: z.record(z.string(), z.string()),
});
export type Template = z.infer<typeof Template>;
export const TemplateList = z.object({ templates: z.array(Template) });

export const RuntimeName = z.enum(RUNTIME_NAMES);
export type RuntimeName = z.infer<typeof RuntimeName>;
export const CreateSandboxRequest = z.strictObject({
  name: Name.optional(),
  image: ImageRef.optional(),
  pull: PullPolicy.optional(),
  /** A named template (minimal, python, node, browser): its image and defaults, under this request's own values. */
  template: TemplateName.optional(),
  ttlMs: z.number().int().positive().max(LIMITS.maxTtlMs).optional(),
  persistent: z.boolean().optional(),
  memoryMiB: Limits.shape.memoryMiB.optional(),
  cpus: Limits.shape.cpus.optional(),
  pids: Limits.shape.pids.optional(),
  diskMiB: Limits.shape.diskMiB.unwrap().unwrap().optional(),
  labels: Labels.optional(),
  env: Env.optional(),
  cwd: AbsolutePath.optional(),
  /** crun (default; NOOK_DEFAULT_RUNTIME changes it) or gvisor: a user-space kernel between the sandbox and the host. */
  runtime: RuntimeName.optional(),
  /** Restore: `SANDBOX@SNAPSHOT` or a snapshot id. The image and persisted paths come from the snapshot. */
  snapshot: z.string().min(1).max(200).optional(),
  /** Defaults and policy from a published profile (the newest version). */
  profile: Name.optional(),
  /** none (default: loopback only), allowlist (egress proxy to allowHosts), learn (allow and record all). */
  network: z.enum(['none', 'allowlist', 'learn']).optional(),
  /** Egress allow-list: host, *.suffix, IP or CIDR, optional :port (else 80 and 443). */
  allowHosts: z.array(z.string().min(1).max(260)).max(256).optional(),
  /** Managed volumes mounted each time compute starts (they must be unlocked). */
  volumes: z
    .array(z.strictObject({ volume: Name, guest: z.string().startsWith('/').max(4096), rw: z.boolean().optional() }))
    .max(16)
    .optional(),
  /**
   * Other things to mount at every start: a raw ext4 disk you own (.ext4/.img), a tar
   * bundle built into a one-shot read-only disk (.tar/.tar.gz/.tgz), or a host directory
   * (read-only unless rw, which needs a profile with allowRwDirs and the host's consent).
   */
  attach: z
    .array(z.strictObject({ kind: z.enum(['disk', 'bundle', 'dir']), source: z.string().startsWith('/').max(4096), guest: z.string().startsWith('/').max(4096), rw: z.boolean().optional() }))
    .max(16)
    .optional(),
  /** Only these directories survive stop, recycle and compute replacement (Mistle's selected paths). */
  persist: z
    .array(AbsolutePath.refine((p) => p !== '/' && !p.split('/').includes('..'), 'must be a directory below / without ..'))
    .max(16)
    .refine((l) => new Set(l).size === l.length, 'persisted paths must be distinct')
    .optional(),
});
export type CreateSandboxRequest = z.infer<typeof CreateSandboxRequest>;

export const DestroyResult = z.object({
  receipt: z.string().optional(),
  id: z.string(),
  name: z.string(),
  destroyed: z.literal(true),
  /** Snapshots outlive their sandbox until deleted (or destroy with withSnapshots). */
  snapshotsKept: z.array(z.string()),
  snapshotsDeleted: z.array(z.string()),
});
export type DestroyResult = z.infer<typeof DestroyResult>;

export const SandboxList = z.object({ sandboxes: z.array(Sandbox) });
