import { NookError } from '../api/errors.js';
import {
  DEFAULTS,
  type CreateSandboxRequest,
  type DestroyResult,
  type Sandbox,
  type StopRequest,
} from '../api/schemas.js';
import type { RuntimeDriver, RuntimeKind, StartSpec } from '../runtime/driver.js';
import type { StorageDriver } from '../storage/driver.js';
import type { Db } from '../store/db.js';
import { newId } from '../util/ids.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { log } from '../util/log.js';
import { UndoStack } from '../util/undo.js';
import type { NetworkPolicy } from '../api/schemas.js';
import type { ImageManager } from './images.js';
import type { ComputeLifecycle } from './lifecycle.js';
import type { MemoryImages } from './memory.js';
import { ColdCompute } from './cold.js';
import { diskLimit, reconcileSandboxes } from './sandbox-reconcile.js';
import { SandboxStore } from './sandbox-store.js';
import { checkName, phaseTimer, specFor } from './sandbox-spec.js';
import type { ListFilter, RestoreSource, SandboxDeps, SandboxPeers, SandboxRecord, SandboxRow, SandboxSpec } from './sandbox-model.js';
import type { AuditLog } from './audit.js';
import { auditedDestroy, DetachedDestroys } from './detached-destroys.js';
import { EventBus } from './events.js';
import type { PolicyManager } from './policy.js';
import { proxyEnv } from './network.js';
import { applyTemplate } from './templates.js';
import type { WarmPool } from './pool.js';
import { runtimeKind, startSpecFor } from './start-spec.js';
import type { ProgressFn } from '../oci/presets.js';

/** Why a sandbox went: asked, its TTL, or the end of its one-shot run. */
type DestroyReason = 'request' | 'ttl' | 'run';

export type { ExecSink, ListFilter, RestoreSource, SandboxDeps, SandboxPeers, SandboxRecord, SandboxSpec } from './sandbox-model.js';

/**
 * The sandbox state machine. Every state change is one SQLite write made before (for
 * intermediate states) or after (for final states) the side effects, so startup
 * reconcile can finish or undo whatever a crash interrupted.
 */
export class SandboxManager {
  private readonly locks = new KeyedMutex();
  private readonly detached = new DetachedDestroys();
  /** Lifecycle events, for `nook events`. */
  readonly events: EventBus = new EventBus();
  private readonly db: Db;
  private readonly storage: StorageDriver;
  private readonly runtime: RuntimeDriver;
  private readonly images: ImageManager;
  private readonly audit: AuditLog;
  private readonly policy: PolicyManager;
  private readonly lifecycle: ComputeLifecycle;
  private readonly peers: SandboxPeers;
  private readonly memory: MemoryImages;
  private readonly pool: WarmPool;

  private readonly store: SandboxStore;
  private readonly cold: ColdCompute;

  constructor(deps: SandboxDeps) {
    ({ db: this.db, storage: this.storage, runtime: this.runtime, images: this.images, audit: this.audit, policy: this.policy, lifecycle: this.lifecycle, peers: this.peers, memory: this.memory, pool: this.pool } = deps);
    this.store = new SandboxStore(deps.db, (id, spec) => {
      const bytes = deps.memory.bytes(id);
      return { runtime: spec.runtime ?? 'crun', storage: deps.storage.info().driver, memory: bytes === null ? null : { sizeBytes: bytes } };
    });
    this.cold = new ColdCompute({
      runtime: this.runtime, storage: this.storage, memory: this.memory, lifecycle: this.lifecycle, store: this.store,
      startSpec: (sb) => this.startSpec(sb.id, sb.name, sb.spec, sb.imageId),
      stopCompute: (id) => this.stopCompute(id),
    });
  }

  // ---- reading (the rows themselves live in SandboxStore) ---------------------------

  /** The internal record of a sandbox (for the other managers). */
  record(ref: string): SandboxRecord {
    return this.store.record(ref);
  }

  /** Memory, CPU time and processes now, from the sandbox's cgroup (null when it is not running). */
  liveStats(id: string): ReturnType<RuntimeDriver['stats']> {
    return this.runtime.stats(id);
  }

  /** The live sandbox with this name or id, if any (no error). */
  find(ref: string): SandboxRecord | undefined {
    return this.store.find(ref);
  }

  get(ref: string): Sandbox {
    return this.store.get(ref);
  }

  list(filter: ListFilter = {}): Sandbox[] {
    return this.store.list(filter);
  }

  count(): number {
    return this.store.count();
  }

  /** Replaces a sandbox's egress policy (the network manager applies it). */
  setNetworkPolicy(id: string, policy: NetworkPolicy): void {
    this.store.setNetworkPolicy(id, policy);
  }

  /** Compute time so far, in ms (the running stretch included). */
  computeMs(id: string): number {
    return this.store.computeMs(id);
  }

  nextExpiry(): number | null {
    return this.store.nextExpiry();
  }

  /** Replaces the TTL (null: none), counted from now; the scheduler re-arms. */
  setTtl(ref: string, ttlMs: number | null): Sandbox {
    const row = this.settledRow(ref);
    this.store.setTtl(row.id, ttlMs);
    this.peers.scheduleChanged();
    return this.get(row.id);
  }

  // ---- lifecycle -----------------------------------------------------------------

  async create(asked: CreateSandboxRequest, progress?: ProgressFn, from?: RestoreSource): Promise<Sandbox> {
    const t0 = performance.now();
    const requested = applyTemplate(asked);
    const admission = this.policy.admit(requested);
    const req = admission.request;
    this.peers.checkAttach(req.attach ?? [], admission.allowRwDirs);
    checkName(req.name, (name) => this.store.rowByRef(name) !== undefined);
    const runtime = runtimeKind(this.runtime, req.runtime ?? from?.runtime);
    // A started sandbox from the warm pool when the request fits (core/pool.ts); the caller's own name when it gave one.
    const member = from ? undefined : this.pool.take(req, runtime);
    const name = req.name ?? (member && !this.store.rowByRef(member.hostname) ? member.hostname : this.generateName());
    const diskMiB = member ? member.limits.diskMiB ?? null : await diskLimit(this.storage, req.diskMiB);
    const imageId = member?.imageId ?? (from ? from.imageId : (await this.images.ensure(req.image ?? (process.env.NOOK_DEFAULT_IMAGE || DEFAULTS.image), progress, req.pull)).id);
    const id = member?.id ?? newId('sb');
    const spec = specFor(req, admission, { diskMiB, cwd: this.images.config(imageId).cwd, runtime, ...(from ? { from } : {}) });
    const now = Date.now();
    try {
      this.store.insert({ id, name, imageId, persistent: req.persistent !== false, ttlMs: req.ttlMs ?? null, spec }, now);
    } catch (e) {
      if (member) void this.pool.destroy(id);
      throw e;
    }
    return this.locks.run(id, async () => {
      const undo = new UndoStack();
      undo.push('record', () => this.store.remove(id));
      const { phases, phase } = phaseTimer();
      try {
        if (member) {
          // Already running: destroyed if its take fails, never put back. It gets the caller's name, then its policy.
          undo.push('pooled sandbox', () => this.pool.destroy(id));
          if (member.hostname !== name) await this.runtime.setHostname(id, name);
          undo.push('compute lifecycle', () => this.lifecycle.down(id));
          await this.lifecycle.up(id);
          phase('poolTakeMs');
        } else {
          await this.storage.createSandbox(id, from ? { snapshotId: from.snapshotId } : { imageId }, spec.persist, diskMiB);
          phase('rootfsMs');
          undo.push('rootfs', () => this.storage.deleteSandbox(id));
          await this.startCompute(id, name, spec, imageId, undo, from?.memoryImage);
          phase('computeMs');
        }
        this.store.setState(id, 'running', { expiresAt: req.ttlMs ? Date.now() + req.ttlMs : null });
      } catch (e) {
        await undo.rollback((m) => log(m, { sandbox: id }));
        throw e;
      }
      this.peers.scheduleChanged();
      log('sandbox created', { id, name, imageId, ...(from ? { origin: from.origin } : {}), ...(member ? { pooled: true } : {}), ms: Math.round((performance.now() - t0) * 100) / 100, ...phases });
      this.audit.note(
        { sandboxId: id, admitted: { persistent: req.persistent !== false, network: spec.network, persist: spec.persist, limits: spec.limits, imageId, profile: admission.profile, adjusted: admission.adjusted } },
        { id, name },
      );
      this.events.publish('sandbox.created', { sandbox: name, sandboxId: id, detail: { persistent: req.persistent !== false, ...(from ? { origin: from.origin } : {}) } });
      return this.get(id);
    });
  }

  private generateName(): string {
    for (;;) {
      const name = newId('sb', 8).replace('_', '-');
      if (!this.store.rowByRef(name)) return name;
    }
  }

  /** What the runtime needs to start a sandbox's compute (its rootfs is activated). */
  private startSpec(id: string, name: string, spec: SandboxSpec, imageId: string): Promise<StartSpec> {
    return startSpecFor(this.storage, this.images, { id, hostname: name, imageId, limits: spec.limits, persist: spec.persist, runtime: spec.runtime });
  }

  /** Compute up, booted or (memoryImage) restored from saved process memory. */
  private async startCompute(id: string, name: string, spec: SandboxSpec, imageId: string, undo?: UndoStack, memoryImage?: string): Promise<void> {
    undo?.push('activate', () => this.storage.deactivateRootfs(id));
    const start = await this.startSpec(id, name, spec, imageId);
    await this.runtime.start({ ...start, ...(memoryImage ? { memoryImage } : {}) });
    undo?.push('compute', () => this.runtime.stop(id, 0));
    // Registered first: a hook that fails halfway (a locked volume) must not leave the others' work.
    undo?.push('compute lifecycle', () => this.lifecycle.down(id));
    await this.lifecycle.up(id);
  }

  private async stopCompute(id: string): Promise<void> {
    await this.lifecycle.down(id);
    await this.runtime.stop(id, DEFAULTS.stopGraceMs);
    await this.storage.deactivateRootfs(id);
  }

  /** Refuses work on a sandbox that is being created or destroyed. */
  private settledRow(ref: string): SandboxRow {
    const row = this.store.mustRow(ref);
    if (row.state === 'creating' || row.state === 'destroying') {
      throw new NookError('INVALID_STATE', `sandbox ${row.name} is ${row.state}`, { hint: 'wait a moment and try again' });
    }
    return row;
  }

  /** Stop as a caller asks it: a non-persistent sandbox is destroyed, answered as destroying rather than a 404 on the next call. */
  async stopForCaller(ref: string, opts: StopRequest = {}): Promise<Sandbox> {
    const before = this.get(ref);
    const after = await this.stop(ref, 'request', opts);
    return after ?? { ...before, state: 'destroying' };
  }

  async stop(ref: string, reason: 'request' | 'ttl' | 'release' = 'request', opts: StopRequest = {}): Promise<Sandbox | null> {
    const row = this.settledRow(ref);
    if (opts.memory) this.cold.need(row.id, row.name, row.persistent === 1);
    if (row.persistent === 0) {
      await this.destroy(ref);
      return null;
    }
    return this.locks.run(row.id, async () => {
      const current = this.store.mustRow(row.id);
      if (current.state === 'paused') return this.store.toSandbox(current);
      this.store.setState(row.id, 'stopping');
      if (opts.memory) await this.cold.stop(row.id);
      else await this.stopCompute(row.id);
      this.store.setState(row.id, 'paused', { expiresAt: null });
      this.peers.scheduleChanged();
      log('sandbox stopped', { id: row.id, name: row.name, reason, memory: opts.memory === true });
      this.events.publish('sandbox.stopped', { sandbox: row.name, sandboxId: row.id, detail: { reason } });
      return this.get(row.id);
    });
  }

  async resume(ref: string): Promise<Sandbox> {
    const row = this.settledRow(ref);
    return this.locks.run(row.id, () => this.resumeLocked(row.id));
  }

  private async resumeLocked(id: string): Promise<Sandbox> {
    const row = this.store.mustRow(id);
    if (row.state === 'running') return this.store.toSandbox(row);
    if (row.state !== 'paused') {
      throw new NookError('INVALID_STATE', `sandbox ${row.name} is ${row.state}; it can be resumed only when paused`);
    }
    const spec = this.store.spec(row);
    const undo = new UndoStack();
    // Cold-stopped: its processes continue from the saved memory, on the very files they left.
    const cold = this.memory.exists(id);
    try {
      // With persisted paths, only they survive: every start gets a fresh rootfs.
      if (spec.persist.length > 0 && !cold) await this.storage.resetRootfs(id, row.image_id);
      await this.startCompute(id, row.name, spec, row.image_id, undo, cold ? this.memory.path(id) : undefined);
    } catch (e) {
      await undo.rollback((m) => log(m, { sandbox: id }));
      if (!cold) throw e;
      // A damaged image must not make the sandbox unusable: it goes, the files stay.
      await this.memory.remove(id);
      throw new NookError('RUNTIME_ERROR', `the saved process memory of ${row.name} could not be restored (${(e as Error).message}); the image was discarded`, {
        hint: `the sandbox stays paused with its files: nook resume ${row.name} starts its processes afresh`,
      });
    }
    if (cold) await this.memory.remove(id);
    this.store.setState(id, 'running', { expiresAt: row.ttl_ms ? Date.now() + row.ttl_ms : null });
    this.peers.scheduleChanged();
    log('sandbox resumed', { id, name: row.name });
    this.events.publish('sandbox.resumed', { sandbox: row.name, sandboxId: id });
    return this.get(id);
  }

  async destroy(ref: string, options: { withSnapshots?: boolean; reason?: DestroyReason } = {}): Promise<DestroyResult> {
    const row = this.settledRow(ref);
    return this.locks.run(row.id, () => this.destroyLocked(row, options));
  }

  private async destroyLocked(row: SandboxRow, options: { withSnapshots?: boolean; reason?: DestroyReason }): Promise<DestroyResult> {
    this.store.setState(row.id, 'destroying');
    await this.finishDestroy(row.id);
    const snaps = await this.peers.afterDestroy(row.id, options.withSnapshots ?? false);
    this.peers.scheduleChanged();
    log('sandbox destroyed', { id: row.id, name: row.name, snapshotsKept: snaps.kept.length, snapshotsDeleted: snaps.deleted.length });
    this.events.publish('sandbox.destroyed', { sandbox: row.name, sandboxId: row.id, detail: { reason: options.reason ?? 'request' } });
    return { id: row.id, name: row.name, destroyed: true as const, snapshotsKept: snaps.kept, snapshotsDeleted: snaps.deleted };
  }

  /**
   * A one-shot run's destroy, finished after the caller's answer (core/detached-destroys.ts):
   * `destroying` and audited before this returns; waits while too many are pending; inline
   * when someone else works on the sandbox (its lock is held: their state must not win).
   */
  async destroyAfterAnswer(ref: string): Promise<void> {
    let inline = false;
    await this.detached.start(() => {
      const row = this.settledRow(ref);
      if (this.locks.held(row.id)) {
        inline = true;
        return null;
      }
      this.store.setState(row.id, 'destroying');
      return auditedDestroy(this.audit, row, () => this.locks.run(row.id, () => this.destroyLocked(row, { reason: 'run' })));
    });
    if (inline) await this.destroy(ref, { reason: 'run' });
  }

  /** Waits for every destroy still finishing after its answer (daemon stop, release). */
  settleDestroys(): Promise<void> {
    return this.detached.drain();
  }

  /** New compute from the image plus the persisted paths (sandboxes created with persist). */
  async recycle(ref: string): Promise<Sandbox> {
    const row = this.settledRow(ref);
    if (this.store.spec(row).persist.length === 0) {
      throw new NookError('INVALID_STATE', `sandbox ${row.name} persists its whole rootfs, so recycling would discard everything in it`, {
        hint: 'recycle is for sandboxes created with --persist PATH; use stop and resume to restart compute',
      });
    }
    return this.locks.run(row.id, async () => {
      const current = this.store.mustRow(row.id);
      if (current.state === 'running') {
        this.store.setState(row.id, 'stopping');
        await this.stopCompute(row.id);
        this.store.setState(row.id, 'paused', { expiresAt: null });
      }
      log('sandbox recycling', { id: row.id, name: row.name });
      return this.resumeLocked(row.id);
    });
  }

  /**
   * Runs `fn` with the sandbox's files quiet: a running sandbox is frozen (state
   * snapshotting) for the instant of `fn`, then thawed; a paused one needs nothing.
   */
  async withQuiesced<T>(ref: string, fn: (sandbox: SandboxRecord) => Promise<T>): Promise<T> {
    const row = this.settledRow(ref);
    return this.locks.run(row.id, async () => {
      const current = this.record(row.id);
      if (current.state === 'paused') return fn(current);
      if (current.state !== 'running') throw new NookError('INVALID_STATE', `sandbox ${row.name} is ${current.state}`);
      // A runtime that cannot freeze could only give a torn copy of a running sandbox.
      if (!this.runtime.info(row.id).freeze) {
        throw new NookError('NOT_SUPPORTED', `the ${this.runtime.info(row.id).name} runtime cannot freeze a running sandbox, so its files cannot be copied consistently`, {
          hint: `stop it first (nook stop ${row.name}), then snapshot, fork or commit`,
        });
      }
      this.store.setState(row.id, 'snapshotting');
      await this.runtime.freeze(row.id);
      try {
        return await fn(current);
      } finally {
        await this.runtime.thaw(row.id).catch((e: Error) => log('thaw failed', { id: row.id, error: e.message }));
        this.store.setState(row.id, 'running');
      }
    });
  }

  /**
   * Runs `fn` on a running sandbox checkpointed (its processes saved, nothing running, files
   * quiet), then lets it go on from the image `fn` says it kept (see ColdCompute.around).
   */
  async withCheckpoint<T>(ref: string, fn: (sandbox: SandboxRecord, image: string) => Promise<{ value: T; image: string }>): Promise<T> {
    const row = this.settledRow(ref);
    return this.locks.run(row.id, () => {
      const sb = this.record(row.id);
      return this.cold.around(sb, (image) => fn(sb, image));
    });
  }

  /** Whether a paused sandbox holds saved process memory. */
  holdsMemory(id: string): boolean {
    return this.memory.exists(id);
  }

  private async finishDestroy(id: string): Promise<void> {
    await this.lifecycle.down(id);
    await this.runtime.stop(id, 0);
    await this.storage.deleteSandbox(id);
    await this.memory.remove(id);
    await this.lifecycle.forget(id);
    await this.runtime.forget(id);
    this.store.remove(id);
  }

  // ---- exec ------------------------------------------------------------------------

  /** The sandbox, running: a paused one is resumed first (as exec, files, terminals and processes expect). */
  async ensureRunning(ref: string): Promise<SandboxRecord> {
    const row = this.settledRow(ref);
    if (row.state === 'paused') await this.locks.run(row.id, () => this.resumeLocked(row.id));
    const sb = this.record(row.id);
    if (sb.state !== 'running') throw new NookError('INVALID_STATE', `sandbox ${sb.name} is ${sb.state}; it needs to be running or paused`);
    return sb;
  }

  /** A command's environment: the image's, the egress proxy's, the sandbox's, then its own. */
  commandEnv(sb: SandboxRecord, own: Record<string, string> = {}): Record<string, string> {
    return { ...this.images.config(sb.imageId).env, ...proxyEnv(sb.spec.network), ...sb.spec.env, ...own };
  }

  /** Who a command runs as: the one asked for, else the image config's User, else root. */
  commandUser(sb: SandboxRecord, asked: string | undefined): { user?: string } {
    const user = asked ?? this.images.config(sb.imageId).user;
    return user ? { user } : {};
  }

  // ---- TTL ---------------------------------------------------------------------------

  /** Expired TTLs and what each calls for: persistent sandboxes stop, the rest are destroyed. */
  dueExpiries(now = Date.now()): { id: string; name: string; action: 'stop' | 'destroy' }[] {
    // A persistent sandbox may still ask to be destroyed at expiry (E2B's default, "kill").
    return this.store.due(now).map((d) => ({ id: d.id, name: d.name, action: d.persistent && this.peers.onExpiry(d.id) !== 'destroy' ? 'stop' : 'destroy' }));
  }

  // ---- startup and shutdown ---------------------------------------------------------------

  /**
   * Makes the runtime, the storage and the database agree: finishes or undoes operations a
   * crash interrupted, and removes containers, rootfs and cgroups nobody lists.
   */
  reconcile(): Promise<void> {
    return reconcileSandboxes({
      db: this.db, runtime: this.runtime, storage: this.storage, store: this.store,
      // A destroy opened before a one-shot run's answer gets its outcome once finished here.
      finishDestroy: async (id) => {
        await this.finishDestroy(id);
        this.audit.closeInterrupted(id, 'destroySandbox');
      },
      stopCompute: (id) => this.stopCompute(id),
    });
  }
}
