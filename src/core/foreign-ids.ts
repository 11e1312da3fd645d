/**
 * Sandboxes as another platform's API names them (the E2B-compatible front: src/daemon/e2b/).
 * Each foreign id maps to one nook sandbox and keeps what that API reports and nook has no
 * field for: the template asked for, free-form metadata, what happens at timeout. A row goes
 * with its sandbox (ON DELETE CASCADE), however the sandbox was destroyed.
 */
import type { Db } from '../store/db.js';

export interface ForeignId {
  foreignId: string;
  sandboxId: string;
  kind: string;
  template: string;
  metadata: Record<string, string>;
  onExpiry: 'stop' | 'destroy';
  createdAt: number;
}

interface ForeignRow {
  foreign_id: string;
  sandbox_id: string;
  kind: string;
  template: string;
  metadata_json: string;
  on_expiry: 'stop' | 'destroy';
  created_at: number;
}

const toForeign = (r: ForeignRow): ForeignId => ({
  foreignId: r.foreign_id,
  sandboxId: r.sandbox_id,
  kind: r.kind,
  template: r.template,
  metadata: JSON.parse(r.metadata_json) as Record<string, string>,
  onExpiry: r.on_expiry,
  createdAt: r.created_at,
});

export class ForeignIds {
  constructor(private readonly db: Db) {}

  put(f: Omit<ForeignId, 'createdAt'>): ForeignId {
    const createdAt = Date.now();
    this.db
      .prepare('INSERT INTO foreign_ids (foreign_id, sandbox_id, kind, template, metadata_json, on_expiry, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(f.foreignId, f.sandboxId, f.kind, f.template, JSON.stringify(f.metadata), f.onExpiry, createdAt);
    return { ...f, createdAt };
  }

  get(kind: string, foreignId: string): ForeignId | undefined {
    const r = this.db.prepare('SELECT * FROM foreign_ids WHERE kind = ? AND foreign_id = ?').get(kind, foreignId) as ForeignRow | undefined;
    return r ? toForeign(r) : undefined;
  }

  bySandbox(sandboxId: string): ForeignId | undefined {
    const r = this.db.prepare('SELECT * FROM foreign_ids WHERE sandbox_id = ?').get(sandboxId) as ForeignRow | undefined;
    return r ? toForeign(r) : undefined;
  }

  /** Every id of this kind, oldest first. */
  list(kind: string): ForeignId[] {
    return (this.db.prepare('SELECT * FROM foreign_ids WHERE kind = ? ORDER BY created_at, foreign_id').all(kind) as ForeignRow[]).map(toForeign);
  }

  setOnExpiry(sandboxId: string, onExpiry: 'stop' | 'destroy'): void {
    this.db.prepare('UPDATE foreign_ids SET on_expiry = ? WHERE sandbox_id = ?').run(onExpiry, sandboxId);
  }
}
