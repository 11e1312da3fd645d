import { NookError } from '../api/errors.js';
import {
  NAME_PATTERN,
  NAME_RULE,
  type CommitRequest,
  type CreateSandboxRequest,
  type CreateSnapshotRequest,
  type ForkRequest,
  type Image,
  type Sandbox,
  type Snapshot,
} from '../api/schemas.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { StorageDriver } from '../storage/driver.js';
import type { Db } from '../store/db.js';
import { newId } from '../util/ids.js';
import { log } from '../util/log.js';
import { UndoStack } from '../util/undo.js';
import type { ImageConfig, ImageManager } from './images.js';
import type { MemoryImages } from './memory.js';
import type { SandboxManager, SandboxRecord, SandboxSpec } from './sandboxes.js';

interface SnapshotRow {
  id: string;
  sandbox_id: string;
  sandbox_name: string;
  name: string;
  state: 'creating' | 'ready';
  image_id: string;
  created_at: number;
  duration_ms: number;
  size_bytes: number | null;
  spec_json: string;
}

/**
 * Snapshots (read-only checkpoints of a sandbox's files), restore, fork and commit. Every
 * one of them reads a sandbox's files while its processes are frozen, so what is captured
 * is never half-written; on btrfs each is a handful of constant-time subvolume snapshots.
 */
const MEASURE_DELAY_MS = 1000;

export class SnapshotManager {
  private readonly toMeasure = new Set<string>();
  private measureTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    private readonly storage: StorageDriver,
    private readonly runtime: RuntimeDriver,
    private readonly images: ImageManager,
    private readonly sandboxes: SandboxManager,
    private readonly memory: MemoryImages,
  ) {
  }

  /** Whether a snapshot (any state) of this id is recorded: its memory image is owned. */
  exists(id: string): boolean {
    return this.db.prepare('SELECT 1 FROM snapshots WHERE id = ?').get(id) !== undefined;
  }

  private toSnapshot(row: SnapshotRow): Snapshot {
    const spec = JSON.parse(row.spec_json) as SandboxSpec;
    const image = this.db.prepare('SELECT name FROM images WHERE id = ?').get(row.image_id) as { name: string } | undefined;
    return {
      id: row.id,
      name: row.name,
      sandbox: row.sandbox_name,
      sandboxId: row.sandbox_id,
      sandboxExists: this.sandboxes.find(row.sandbox_id) !== undefined,
      image: image?.name ?? row.image_id,
      persist: spec.persist ?? [],
      createdAt: new Date(row.created_at).toISOString(),
      sizeBytes: row.size_bytes,
      durationMs: row.duration_ms,
      memoryBytes: this.memory.bytes(row.id),
    };
  }

  // ---- snapshots ----------------------------------------------------------------------

  async create(ref: string, req: CreateSnapshotRequest): Promise<Snapshot> {
    const sandbox = this.sandboxes.record(ref);
    const info = this.runtime.info(sandbox.id);
    if (req.memory && !info.memorySnapshots) {
      throw new NookError('NOT_SUPPORTED', `the ${info.name} runtime of ${sandbox.name} cannot save process memory (CRIU does not work on this kernel)`, {
        hint: 'take a files-only snapshot (without --memory; processes restart from the saved files), or create the sandbox with --runtime gvisor',
      });
    }
    if (req.memory && sandbox.state === 'paused' && !this.sandboxes.holdsMemory(sandbox.id)) {
      throw new NookError('INVALID_STATE', `${sandbox.name} is stopped without process memory: there are no processes to save`, { hint: `resume it first (nook resume ${sandbox.name}), or leave out --memory` });
    }
    if (this.db.prepare('SELECT 1 FROM snapshots WHERE sandbox_id = ? AND name = ?').get(sandbox.id, req.name)) {
      throw new NookError('NAME_TAKEN', `sandbox ${sandbox.name} already has a snapshot named ${JSON.stringify(req.name)}`, {
        hint: `choose another name, or delete it: nook snapshot rm ${sandbox.name} ${JSON.stringify(req.name)}`,
      });
    }
    const id = newId('snap');
    // Recorded as creating first: after a crash, reconcile removes a half-made snapshot.
    this.db
      .prepare("INSERT INTO snapshots (id, sandbox_id, sandbox_name, name, state, image_id, created_at, spec_json) VALUES (?, ?, ?, ?, 'creating', ?, ?, ?)")
      .run(id, sandbox.id, sandbox.name, req.name, sandbox.imageId, Date.now(), JSON.stringify(sandbox.spec));
    let durationMs = 0;
    const copyFiles = async (s: { id: string }): Promise<void> => {
      const started = performance.now();
      await this.storage.snapshotSandbox(s.id, id);
      durationMs = Math.round((performance.now() - started) * 100) / 100;
    };
    try {
      if (req.memory && sandbox.state === 'paused') {
        // Cold-stopped: its saved memory and its files are from the same instant already.
        await this.sandboxes.withQuiesced(sandbox.id, async (s) => {
          await copyFiles(s);
          await this.memory.copy(s.id, id);
        });
      } else if (req.memory) {
        await this.sandboxes.withCheckpoint(sandbox.id, async (s, image) => {
          await copyFiles(s);
          await this.memory.commit(image, id);
          return { value: undefined, image: this.memory.path(id) };
        });
      } else {
        await this.sandboxes.withQuiesced(sandbox.id, copyFiles);
      }
    } catch (e) {
      await this.storage.deleteSnapshot(id).catch(() => undefined);
      await this.memory.remove(id);
      this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(id);
      throw e;
    }
    this.db.prepare("UPDATE snapshots SET state = 'ready', duration_ms = ? WHERE id = ?").run(durationMs, id);
    log('snapshot taken', { id, sandbox: sandbox.name, name: req.name, ms: durationMs });
    this.sandboxes.events.publish('snapshot.created', { sandbox: sandbox.name, sandboxId: sandbox.id, detail: { snapshot: req.name, id, durationMs } });
    this.measureLater(id);
    return this.get(id);
  }

  /**
   * Size is measured after the fact, one snapshot at a time, once snapshots have stopped
   * coming for a moment: walking 20k files costs far more than the snapshot itself and
   * would slow the next one down if it ran alongside.
   */
  private measureLater(id: string): void {
    this.toMeasure.add(id);
    if (this.measureTimer) clearTimeout(this.measureTimer);
    this.measureTimer = setTimeout(() => void this.measureQueued(), MEASURE_DELAY_MS);
    this.measureTimer.unref();
  }

  private async measureQueued(): Promise<void> {
    this.measureTimer = undefined;
    for (const id of [...this.toMeasure]) {
      this.toMeasure.delete(id);
      const bytes = await this.storage.snapshotSizeBytes(id).catch(() => null);
      if (bytes !== null && this.db.open) this.db.prepare('UPDATE snapshots SET size_bytes = ? WHERE id = ?').run(bytes, id);
    }
  }

  private get(id: string): Snapshot {
    const row = this.db.prepare('SELECT * FROM snapshots WHERE id = ?').get(id) as SnapshotRow | undefined;
    if (!row) throw new NookError('SNAPSHOT_NOT_FOUND', `no snapshot ${id}`, { context: { ref: id } });
    return this.toSnapshot(row);
  }

  /** Snapshots of one sandbox (live, or destroyed and named by its old name), or all. */
  list(ref?: string): Snapshot[] {
    let rows: SnapshotRow[];
    if (ref === undefined) {
      rows = this.db.prepare("SELECT * FROM snapshots WHERE state = 'ready' ORDER BY created_at").all() as SnapshotRow[];
    } else {
      const live = this.sandboxes.find(ref);
      rows = live
        ? (this.db.prepare("SELECT * FROM snapshots WHERE state = 'ready' AND sandbox_id = ? ORDER BY created_at").all(live.id) as SnapshotRow[])
        : (this.db.prepare("SELECT * FROM snapshots WHERE state = 'ready' AND (sandbox_name = ? OR sandbox_id = ?) ORDER BY created_at").all(ref, ref) as SnapshotRow[]);
    }
    return rows.map((r) => this.toSnapshot(r));
  }

  /** A sandbox's snapshots; a name that is neither a sandbox nor the old name of one with snapshots is a typo (SANDBOX_NOT_FOUND). */
  listOf(ref: string): Snapshot[] {
    const snapshots = this.list(ref);
    if (snapshots.length === 0 && !this.sandboxes.find(ref)) this.sandboxes.get(ref);
    return snapshots;
  }

  /** `SANDBOX@NAME` or a snapshot id. A live sandbox of that name wins over destroyed ones. */
  resolve(spec: string): SnapshotRow {
    let row: SnapshotRow | undefined;
    const at = spec.lastIndexOf('@');
    if (at < 0) {
      row = this.db.prepare("SELECT * FROM snapshots WHERE id = ? AND state = 'ready'").get(spec) as SnapshotRow | undefined;
    } else {
      const sandboxRef = spec.slice(0, at);
      const name = spec.slice(at + 1);
      const live = this.sandboxes.find(sandboxRef);
      row = (
        live
          ? this.db.prepare("SELECT * FROM snapshots WHERE sandbox_id = ? AND name = ? AND state = 'ready'").get(live.id, name)
          : this.db.prepare("SELECT * FROM snapshots WHERE (sandbox_name = ? OR sandbox_id = ?) AND name = ? AND state = 'ready' ORDER BY created_at DESC").get(sandboxRef, sandboxRef, name)
      ) as SnapshotRow | undefined;
    }
    if (!row) {
      throw new NookError('SNAPSHOT_NOT_FOUND', `no snapshot ${JSON.stringify(spec)}`, { hint: 'name it SANDBOX@SNAPSHOT or by id; list them with: nook snapshot ls', context: { ref: spec } });
    }
    return row;
  }

  async remove(sandboxRef: string, name: string): Promise<Snapshot> {
    const row = this.resolve(`${sandboxRef}@${name}`);
    const snap = this.toSnapshot(row);
    await this.storage.deleteSnapshot(row.id);
    await this.memory.remove(row.id);
    this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(row.id);
    log('snapshot deleted', { id: row.id, sandbox: row.sandbox_name, name: row.name });
    return snap;
  }

  async afterSandboxDestroyed(sandboxId: string, withSnapshots: boolean): Promise<{ kept: string[]; deleted: string[] }> {
    const rows = this.db.prepare('SELECT * FROM snapshots WHERE sandbox_id = ?').all(sandboxId) as SnapshotRow[];
    if (!withSnapshots) return { kept: rows.map((r) => r.name), deleted: [] };
    for (const r of rows) {
      await this.storage.deleteSnapshot(r.id);
      await this.memory.remove(r.id);
      this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(r.id);
    }
    return { kept: [], deleted: rows.map((r) => r.name) };
  }

  // ---- restore, fork, commit ------------------------------------------------------------

  /** create --snapshot: a new sandbox from a snapshot's files. */
  restore(req: CreateSandboxRequest & { snapshot: string }): Promise<Sandbox> {
    if (req.image) throw new NookError('INVALID_ARGUMENT', 'give either snapshot or image: a restored sandbox runs on its snapshot\'s image');
    if (req.persist) throw new NookError('INVALID_ARGUMENT', 'a restored sandbox keeps its snapshot\'s persisted paths; leave persist out');
    const row = this.resolve(req.snapshot);
    const spec = JSON.parse(row.spec_json) as SandboxSpec;
    const { snapshot, ...rest } = req;
    // Saved processes continue only on the kernel that saved them.
    const memoryImage = this.memory.exists(row.id) ? this.memory.path(row.id) : undefined;
    if (memoryImage && rest.runtime && rest.runtime !== spec.runtime) {
      throw new NookError('INVALID_ARGUMENT', `snapshot ${snapshot} holds process memory saved on ${spec.runtime ?? 'crun'}; it restores only there`, { hint: 'leave out --runtime' });
    }
    return this.sandboxes.create(
      { ...rest, env: rest.env ?? spec.env, cwd: rest.cwd ?? spec.cwd, memoryMiB: rest.memoryMiB ?? spec.limits.memoryMiB, cpus: rest.cpus ?? spec.limits.cpus, pids: rest.pids ?? spec.limits.pids, ...carryDisk(rest.diskMiB ?? spec.limits.diskMiB) },
      undefined,
      {
        snapshotId: row.id, imageId: row.image_id, persist: spec.persist ?? [], origin: `snapshot ${row.sandbox_name}@${row.name} (${snapshot})`,
        ...(spec.runtime ? { runtime: spec.runtime } : {}), ...(memoryImage ? { memoryImage } : {}),
      },
    );
  }

  /**
   * New running sandboxes from another's current files. One freeze and one snapshot serve
   * every copy; the source goes on running. A failure removes every copy made.
   */
  async fork(ref: string, req: ForkRequest): Promise<Sandbox[]> {
    const source = this.sandboxes.record(ref);
    const count = req.count ?? 1;
    const base = req.name ?? `${source.name.slice(0, 50)}-fork-${newId('f', 4).slice(2)}`;
    const names = count === 1 ? [base] : Array.from({ length: count }, (_, i) => `${base}-${i + 1}`);
    for (const n of names) {
      if (!NAME_PATTERN.test(n)) throw new NookError('INVALID_NAME', `fork name ${n} is not valid: use ${NAME_RULE}`);
      if (this.sandboxes.find(n)) throw new NookError('NAME_TAKEN', `a sandbox named ${n} already exists`, { hint: 'give the fork another --name' });
    }
    const tmp = newId('snap');
    const memory = await this.forkFiles(source, tmp, req.memory);
    const made: Sandbox[] = [];
    const undo = new UndoStack();
    try {
      for (const name of names) {
        const fork = await this.sandboxes.create(
            {
              name,
              persistent: source.persistent,
              ...(source.ttlMs ? { ttlMs: source.ttlMs } : {}),
              memoryMiB: source.spec.limits.memoryMiB,
              cpus: source.spec.limits.cpus,
              pids: source.spec.limits.pids,
              ...carryDisk(source.spec.limits.diskMiB),
              labels: source.spec.labels,
              env: source.spec.env,
              cwd: source.spec.cwd,
              network: source.spec.network.mode,
              allowHosts: source.spec.network.allow,
            },
            undefined,
            {
              snapshotId: tmp, imageId: source.imageId, persist: source.spec.persist, origin: `fork of ${source.name}`,
              ...(source.spec.runtime ? { runtime: source.spec.runtime } : {}), ...(memory ? { memoryImage: memory.image } : {}),
            },
          );
        undo.push(`fork ${fork.name}`, () => this.sandboxes.destroy(fork.id).then(() => undefined));
        made.push(fork);
      }
    } catch (e) {
      // All the forks or none: a failed fork removes every copy it made.
      await undo.rollback((msg) => log('fork', { source: source.name, msg }));
      throw e;
    } finally {
      // Off the caller's path: the forks no longer need it, and startup removes it if we die first.
      void this.storage.deleteSnapshot(tmp).catch((e: Error) => log('fork: temporary snapshot not removed', { id: tmp, error: e.message }));
      if (memory?.temporary) await this.memory.remove(memory.image);
    }
    return made;
  }

  /**
   * The files every fork starts from, snapshotted as `tmp`, and (memory: asked, or by
   * default a running gVisor source) the process memory they all continue from: one
   * checkpoint of a running source (which then goes on), or a stopped one's saved memory.
   */
  private async forkFiles(source: SandboxRecord, tmp: string, asked: boolean | undefined): Promise<{ image: string; temporary: boolean } | null> {
    const info = this.runtime.info(source.id);
    if (asked && !info.memorySnapshots) {
      throw new NookError('NOT_SUPPORTED', `the ${info.name} runtime of ${source.name} cannot save process memory`, { hint: 'leave out --memory, or fork a sandbox created with --runtime gvisor' });
    }
    const held = source.state === 'paused' && this.sandboxes.holdsMemory(source.id);
    const withMemory = asked ?? (info.memorySnapshots && (source.state === 'running' || held));
    if (!withMemory) {
      await this.sandboxes.withQuiesced(source.id, (s) => this.storage.snapshotSandbox(s.id, tmp));
      return null;
    }
    if (held) {
      await this.sandboxes.withQuiesced(source.id, (s) => this.storage.snapshotSandbox(s.id, tmp));
      return { image: this.memory.path(source.id), temporary: false };
    }
    const image = await this.sandboxes.withCheckpoint(source.id, async (s, img) => {
      await this.storage.snapshotSandbox(s.id, tmp);
      return { value: img, image: img };
    });
    return { image, temporary: true };
  }

  /** A new image from a sandbox's files, persisted paths included, with its environment. */
  async commit(ref: string, req: CommitRequest): Promise<Image> {
    const sandbox = this.sandboxes.record(ref);
    const base = this.images.config(sandbox.imageId);
    const { digest: _digest, layers: _layers, specDigest: _spec, ...inherited } = base;
    const config = { ...inherited, env: { ...base.env, ...sandbox.spec.env }, source: `commit:${sandbox.name}` };
    return this.commitAs(ref, req.image, config);
  }

  /** A new image named `name` from a sandbox's files, with the given config (builds). */
  commitAs(ref: string, name: string, config: ImageConfig): Promise<Image> {
    const sandbox = this.sandboxes.record(ref);
    return this.images.createFrom(name, config, (imageId) =>
      this.sandboxes.withQuiesced(sandbox.id, (s) => this.storage.commitSandbox(s.id, imageId, s.spec.persist)),
    );
  }

  // ---- startup ------------------------------------------------------------------------------

  /** Half-made snapshots are removed; storage snapshots nobody lists are deleted. */
  async reconcile(): Promise<void> {
    for (const r of this.db.prepare("SELECT id FROM snapshots WHERE state = 'creating'").all() as { id: string }[]) {
      await this.storage.deleteSnapshot(r.id);
      this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(r.id);
      log('reconcile: removed half-made snapshot', { id: r.id });
    }
    const known = new Set((this.db.prepare('SELECT id FROM snapshots').all() as { id: string }[]).map((r) => r.id));
    for (const id of await this.storage.listSnapshots()) {
      if (known.has(id)) continue;
      try {
        await this.storage.deleteSnapshot(id);
        log('reconcile: removed unlisted snapshot', { id });
      } catch (e) {
        log('reconcile: could not remove unlisted snapshot', { id, error: (e as Error).message });
      }
    }
    for (const r of this.db.prepare('SELECT id FROM snapshots WHERE size_bytes IS NULL').all() as { id: string }[]) this.measureLater(r.id);
  }
}

/** A restored or forked sandbox keeps its source's disk limit (none recorded: the default applies). */
function carryDisk(diskMiB: number | null | undefined): { diskMiB?: number } {
  return typeof diskMiB === 'number' ? { diskMiB } : {};
}
