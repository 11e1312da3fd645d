/** The shapes the sandbox manager and its collaborators share: specs, records, rows, wiring. */
import type { CreateSandboxRequest, Limits, NetworkPolicy, SandboxState } from '../api/schemas.js';
import type { RuntimeDriver, RuntimeKind } from '../runtime/driver.js';
import type { StorageDriver } from '../storage/driver.js';
import type { Db } from '../store/db.js';
import type { AuditLog } from './audit.js';
import type { ImageManager } from './images.js';
import type { ComputeLifecycle } from './lifecycle.js';
import type { MemoryImages } from './memory.js';
import type { PolicyManager } from './policy.js';
import type { WarmPool } from './pool.js';

export interface SandboxSpec {
  limits: Limits;
  labels: Record<string, string>;
  env: Record<string, string>;
  cwd: string;
  /** Persisted paths; empty means the whole rootfs persists. */
  persist: string[];
  /** What this sandbox was restored or forked from, for people reading inspect. */
  origin: string | null;
  /** Egress policy (mode and allow-list); `none` = loopback only. */
  network: NetworkPolicy;
  /** The profile version that admitted it, and what host policy changed in the request. */
  profile?: string | null;
  adjusted?: string[];
  /** Managed volumes mounted whenever compute starts. */
  volumes?: { volume: string; guest: string; rw?: boolean }[];
  /** Disks, bundles and host directories mounted whenever compute starts. */
  attach?: { kind: 'disk' | 'bundle' | 'dir'; source: string; guest: string; rw?: boolean }[];
  /** The backend that runs it; absent on sandboxes made before there was a choice (crun). */
  runtime?: RuntimeKind;
}

/** Restore or fork: the files come from a snapshot, not from the image. */
export interface RestoreSource {
  snapshotId: string;
  imageId: string;
  persist: string[];
  origin: string;
  /** The source's backend (a restore or fork runs where its source ran). */
  runtime?: RuntimeKind;
  /** Saved process memory to start from (a memory snapshot, or a fork's checkpoint). */
  memoryImage?: string;
}

export interface SandboxRecord {
  id: string;
  name: string;
  state: SandboxState;
  imageId: string;
  persistent: boolean;
  ttlMs: number | null;
  spec: SandboxSpec;
}

export interface SandboxRow {
  id: string;
  name: string;
  state: SandboxState;
  image_id: string;
  persistent: number;
  created_at: number;
  updated_at: number;
  ttl_ms: number | null;
  expires_at: number | null;
  spec_json: string;
}

export interface ExecSink {
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

export interface ListFilter {
  labels?: Record<string, string>;
  state?: string;
}

/**
 * Collaborators that themselves need the sandbox manager (so they are built after it). They
 * are reached through this one interface, which core/nook.ts fills: no manager assigns
 * another's fields.
 */
export interface SandboxPeers {
  /** Refuses attachments host policy forbids, before anything exists (attachments). */
  checkAttach(list: NonNullable<CreateSandboxRequest['attach']>, profileAllowsRw: boolean): void;
  /** What becomes of a destroyed sandbox's snapshots (snapshots). */
  afterDestroy(sandboxId: string, withSnapshots: boolean): Promise<{ kept: string[]; deleted: string[] }>;
  /** What a sandbox asked to become at TTL expiry, when it asked (foreign ids: E2B's onTimeout). */
  onExpiry(sandboxId: string): 'stop' | 'destroy' | undefined;
  /** A change that can move the next TTL expiry (the TTL scheduler). */
  scheduleChanged(): void;
}

export interface SandboxDeps {
  db: Db;
  storage: StorageDriver;
  runtime: RuntimeDriver;
  images: ImageManager;
  audit: AuditLog;
  /** Admission: profile defaults under a request, host limits over it. */
  policy: PolicyManager;
  /** What happens around compute, in the order core/nook.ts declares. */
  lifecycle: ComputeLifecycle;
  /** Saved process memory (cold stop, memory snapshots). */
  memory: MemoryImages;
  /** Started sandboxes a fitting create takes (core/pool.ts). */
  pool: WarmPool;
  peers: SandboxPeers;
}
