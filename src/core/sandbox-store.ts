import { NookError } from '../api/errors.js';
import type { NetworkPolicy, Sandbox, SandboxState } from '../api/schemas.js';
import type { Db } from '../store/db.js';
import type { ListFilter, SandboxRecord, SandboxRow, SandboxSpec } from './sandbox-model.js';

/**
 * The sandboxes table: rows in, records and API objects out, state writes with the compute
 * clock. Side effects (compute, storage) belong to the SandboxManager.
 */
export class SandboxStore {
  constructor(
    private readonly db: Db,
    /** Which drivers run sandboxes here, shown on each. */
    private readonly drivers: (id: string, spec: SandboxSpec) => { runtime: Sandbox['runtime']; storage: Sandbox['storage']; memory: Sandbox['memory'] },
  ) {}

  rowByRef(ref: string): SandboxRow | undefined {
    return this.db.prepare('SELECT * FROM sandboxes WHERE name = ? OR id = ?').get(ref, ref) as SandboxRow | undefined;
  }

  mustRow(ref: string): SandboxRow {
    const row = this.rowByRef(ref);
    if (!row) {
      throw new NookError('SANDBOX_NOT_FOUND', `no sandbox named ${ref}`, { hint: 'list sandboxes with: nook ls', context: { ref } });
    }
    return row;
  }

  spec(row: SandboxRow): SandboxSpec {
    const spec = JSON.parse(row.spec_json) as Partial<SandboxSpec> & Omit<SandboxSpec, 'persist' | 'origin' | 'network'>;
    return { ...spec, persist: spec.persist ?? [], origin: spec.origin ?? null, network: spec.network ?? { mode: 'none', allow: [] } };
  }

  toSandbox(row: SandboxRow): Sandbox {
    const spec = this.spec(row);
    const image = this.db.prepare('SELECT name FROM images WHERE id = ?').get(row.image_id) as { name: string } | undefined;
    return {
      id: row.id,
      name: row.name,
      state: row.state,
      image: image?.name ?? row.image_id,
      persistent: row.persistent === 1,
      createdAt: new Date(row.created_at).toISOString(),
      updatedAt: new Date(row.updated_at).toISOString(),
      expiresAt: row.expires_at === null ? null : new Date(row.expires_at).toISOString(),
      ttlMs: row.ttl_ms,
      limits: { ...spec.limits, diskMiB: spec.limits.diskMiB ?? null },
      labels: spec.labels,
      envKeys: Object.keys(spec.env),
      cwd: spec.cwd,
      network: spec.network,
      ...this.drivers(row.id, spec),
      persist: spec.persist,
      origin: spec.origin,
      profile: spec.profile ?? null,
      adjusted: spec.adjusted ?? [],
    };
  }

  /** The internal record of a sandbox (for the snapshot manager). */
  record(ref: string): SandboxRecord {
    const row = this.mustRow(ref);
    return { id: row.id, name: row.name, state: row.state, imageId: row.image_id, persistent: row.persistent === 1, ttlMs: row.ttl_ms, spec: this.spec(row) };
  }

  /** Replaces a sandbox's egress policy (the network manager applies it). */
  setNetworkPolicy(id: string, policy: NetworkPolicy): void {
    const row = this.mustRow(id);
    const spec = { ...this.spec(row), network: policy };
    this.db.prepare('UPDATE sandboxes SET spec_json = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(spec), Date.now(), id);
  }

  /** Compute time so far, in ms (the running stretch included). */
  computeMs(id: string): number {
    const r = this.db.prepare('SELECT compute_ms, running_since FROM sandboxes WHERE id = ?').get(id) as { compute_ms: number; running_since: number | null } | undefined;
    return r ? r.compute_ms + (r.running_since ? Date.now() - r.running_since : 0) : 0;
  }

  /** The live sandbox with this name or id, if any (no error). */
  find(ref: string): SandboxRecord | undefined {
    return this.rowByRef(ref) ? this.record(ref) : undefined;
  }

  get(ref: string): Sandbox {
    return this.toSandbox(this.mustRow(ref));
  }

  list(filter: ListFilter = {}): Sandbox[] {
    // Sandboxes being created or destroyed are listed too: a TTL destroy in progress is
    // visible as `destroying` until its files are gone, never silently half-present.
    const rows = this.db.prepare('SELECT * FROM sandboxes ORDER BY created_at').all() as SandboxRow[];
    return rows
      .map((r) => this.toSandbox(r))
      .filter((s) => !filter.state || s.state === filter.state)
      .filter((s) => Object.entries(filter.labels ?? {}).every(([k, v]) => s.labels[k] === v));
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM sandboxes').get() as { n: number }).n;
  }

  setState(id: string, state: SandboxState, extra: { expiresAt?: number | null } = {}): void {
    const now = Date.now();
    // Compute time: the clock runs while running (or snapshotting), stops otherwise.
    const computing = state === 'running' || state === 'snapshotting';
    this.db
      .prepare(
        computing
          ? 'UPDATE sandboxes SET running_since = COALESCE(running_since, ?) WHERE id = ?'
          : 'UPDATE sandboxes SET compute_ms = compute_ms + (? - COALESCE(running_since, ?)), running_since = NULL WHERE id = ?',
      )
      .run(...(computing ? [now, id] : [now, now, id]));
    if (extra.expiresAt !== undefined) {
      this.db.prepare('UPDATE sandboxes SET state = ?, updated_at = ?, expires_at = ? WHERE id = ?').run(state, now, extra.expiresAt, id);
    } else {
      this.db.prepare('UPDATE sandboxes SET state = ?, updated_at = ? WHERE id = ?').run(state, now, id);
    }
  }

  nextExpiry(): number | null {
    const r = this.db.prepare("SELECT MIN(expires_at) AS t FROM sandboxes WHERE expires_at IS NOT NULL AND state = 'running'").get() as { t: number | null };
    return r.t;
  }

  /** A new sandbox, in state creating; a name already taken answers NAME_TAKEN. */
  insert(r: { id: string; name: string; imageId: string; persistent: boolean; ttlMs: number | null; spec: SandboxSpec }, now: number): void {
    try {
      this.db
        .prepare(
          `INSERT INTO sandboxes (id, name, state, image_id, persistent, created_at, updated_at, ttl_ms, expires_at, spec_json)
           VALUES (?, ?, 'creating', ?, ?, ?, ?, ?, NULL, ?)`,
        )
        .run(r.id, r.name, r.imageId, r.persistent ? 1 : 0, now, now, r.ttlMs, JSON.stringify(r.spec));
    } catch (e) {
      if (/UNIQUE/.test((e as Error).message)) throw new NookError('NAME_TAKEN', `a sandbox named ${r.name} already exists`);
      throw e;
    }
  }

  remove(id: string): void {
    this.db.prepare('DELETE FROM sandboxes WHERE id = ?').run(id);
  }

  /** A new TTL, counted from now while running (a paused sandbox keeps it for its next resume). */
  setTtl(id: string, ttlMs: number | null): void {
    const row = this.mustRow(id);
    const expiresAt = ttlMs !== null && row.state === 'running' ? Date.now() + ttlMs : null;
    this.db.prepare('UPDATE sandboxes SET ttl_ms = ?, expires_at = ?, updated_at = ? WHERE id = ?').run(ttlMs, expiresAt, Date.now(), id);
  }

  /** Running sandboxes whose TTL has passed. */
  due(now: number): { id: string; name: string; persistent: number }[] {
    return this.db.prepare("SELECT id, name, persistent FROM sandboxes WHERE expires_at IS NOT NULL AND expires_at <= ? AND state = 'running'").all(now) as { id: string; name: string; persistent: number }[];
  }
}
