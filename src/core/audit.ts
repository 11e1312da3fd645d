/**
 * The audit log: append-only records in SQLite, each hash-chained to the one before, so an
 * edited, deleted or reordered record is detectable (`verify` names the first bad one).
 * Every mutating API call gets a receipt id (the record's id) in its response. Records
 * hold digests, never secret values: env values, stdin and output are sha256-digested.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { NookError } from '../api/errors.js';
import type { Db } from '../store/db.js';
import { newId } from '../util/ids.js';

export interface AuditRecord {
  seq: number;
  id: string;
  at: string;
  actor: string;
  action: string;
  sandboxId: string | null;
  sandbox: string | null;
  inputs: Record<string, unknown>;
  /** started: the operation began and its outcome was never written (the daemon died). */
  outcome: 'started' | 'ok' | 'error';
  result: Record<string, unknown>;
  errorCode: string | null;
  prevHash: string;
  hash: string;
}

interface AuditRow {
  seq: number;
  id: string;
  at: number;
  actor: string;
  action: string;
  sandbox_id: string | null;
  sandbox_name: string | null;
  inputs_json: string;
  outcome: 'started' | 'ok' | 'error';
  result_json: string;
  error_code: string | null;
  prev_hash: string;
  hash: string;
}

/** What one API call accumulates while it runs: core code adds details with `note`. */
export interface AuditContext {
  receipt: string;
  actor: string;
  action: string;
  inputs: Record<string, unknown>;
  result: Record<string, unknown>;
  sandboxId: string | null;
  sandbox: string | null;
  /** Set once its record is written (streamed operations write it at their last event). */
  appended?: boolean;
}

export const GENESIS = '0'.repeat(64);
/** Suffix of the id of an operation's opening record. */
const INTENT = '.start';

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hashOf(row: Omit<AuditRow, 'hash'>): string {
  // A fixed field order: the hash covers exactly what verify recomputes.
  const canonical = JSON.stringify([row.seq, row.id, row.at, row.actor, row.action, row.sandbox_id, row.sandbox_name, row.inputs_json, row.outcome, row.result_json, row.error_code, row.prev_hash]);
  return sha256(canonical);
}

/** Request fields that may hold secrets are kept as digests only. */
export function digestInputs(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== 'object') return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (k === 'env' && v && typeof v === 'object') {
      out.env = Object.fromEntries(Object.entries(v as Record<string, string>).map(([name, value]) => [name, `sha256:${sha256(String(value))}`]));
    } else if (k === 'stdin' && typeof v === 'string') {
      out.stdin = { sha256: sha256(Buffer.from(v, 'base64')), bytes: Buffer.from(v, 'base64').length };
    } else if (k === 'auth' && v && typeof v === 'object') {
      // Registry credentials: who, never the password.
      out.auth = { username: (v as { username?: unknown }).username, password: 'sha256:<withheld>' };
    } else if (k === 'text' && typeof v === 'string') {
      // Typed desktop text: what was typed can be a password; the record keeps its digest.
      out.text = { sha256: sha256(v), chars: [...v].length };
    } else if (k === 'argv' && Array.isArray(v)) {
      out.argv = { command: String(v[0] ?? ''), args: v.length - 1, sha256: sha256(JSON.stringify(v)) };
    } else {
      out[k] = v;
    }
  }
  return out;
}

export class AuditLog {
  private readonly als = new AsyncLocalStorage<AuditContext>();
  private lastHash: string;
  private lastSeq: number;

  constructor(private readonly db: Db) {
    const last = db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | undefined;
    this.lastHash = last?.hash ?? GENESIS;
    this.lastSeq = last?.seq ?? 0;
  }

  /** Runs `fn` as one audited operation; the context collects what core code notes. */
  run<T>(ctx: AuditContext, fn: () => Promise<T>): Promise<T> {
    return this.als.run(ctx, fn);
  }

  current(): AuditContext | undefined {
    return this.als.getStore();
  }

  /** Adds details to the operation in progress (no-op outside one). */
  note(result: Record<string, unknown>, sandbox?: { id: string; name: string }): void {
    const ctx = this.als.getStore();
    if (!ctx) return;
    Object.assign(ctx.result, result);
    if (sandbox) {
      ctx.sandboxId = sandbox.id;
      ctx.sandbox = sandbox.name;
    }
  }

  /**
   * Records that an operation begins, before it has any effect: if the daemon dies before
   * the outcome is written, the attempt is still on the record (listed as `started`).
   */
  begin(ctx: AuditContext): void {
    this.write(ctx, `${ctx.receipt}${INTENT}`, 'started', null);
  }

  /** Appends the record of a finished operation; returns its receipt. */
  append(ctx: AuditContext, outcome: 'ok' | 'error', errorCode: string | null = null): string {
    this.write(ctx, ctx.receipt, outcome, errorCode);
    return ctx.receipt;
  }

  private write(ctx: AuditContext, id: string, outcome: AuditRow['outcome'], errorCode: string | null): void {
    const row: Omit<AuditRow, 'hash'> = {
      seq: this.lastSeq + 1,
      id,
      at: Date.now(),
      actor: ctx.actor,
      action: ctx.action,
      sandbox_id: ctx.sandboxId,
      sandbox_name: ctx.sandbox,
      inputs_json: JSON.stringify(ctx.inputs),
      outcome,
      result_json: JSON.stringify(ctx.result),
      error_code: errorCode,
      prev_hash: this.lastHash,
    };
    const hash = hashOf(row);
    this.db
      .prepare(
        `INSERT INTO audit (seq, id, at, actor, action, sandbox_id, sandbox_name, inputs_json, outcome, result_json, error_code, prev_hash, hash)
         VALUES (@seq, @id, @at, @actor, @action, @sandbox_id, @sandbox_name, @inputs_json, @outcome, @result_json, @error_code, @prev_hash, @hash)`,
      )
      .run({ ...row, hash });
    this.lastSeq = row.seq;
    this.lastHash = hash;
  }

  /**
   * Writes the outcome of `action`s on a sandbox that a crashed daemon opened and never
   * closed, once the startup reconcile has finished them (a one-shot run's destroy after its
   * answer): the record says who finished it, the opening record stays as it was.
   */
  closeInterrupted(sandboxId: string, action: string): number {
    const open = this.db
      .prepare(
        `SELECT * FROM audit WHERE sandbox_id = ? AND action = ? AND outcome = 'started'
         AND NOT EXISTS (SELECT 1 FROM audit f WHERE f.id = substr(audit.id, 1, length(audit.id) - ${INTENT.length}))`,
      )
      .all(sandboxId, action) as AuditRow[];
    for (const r of open) {
      const ctx = { receipt: r.id.slice(0, -INTENT.length), actor: r.actor, action: r.action, inputs: JSON.parse(r.inputs_json) as Record<string, unknown>, result: { completedBy: 'startup reconcile' }, sandboxId: r.sandbox_id, sandbox: r.sandbox_name };
      this.append(ctx, 'ok');
    }
    return open.length;
  }

  static newReceipt(): string {
    return newId('rcpt', 16);
  }

  private toRecord(r: AuditRow): AuditRecord {
    return {
      seq: r.seq,
      id: r.id,
      at: new Date(r.at).toISOString(),
      actor: r.actor,
      action: r.action,
      sandboxId: r.sandbox_id,
      sandbox: r.sandbox_name,
      inputs: JSON.parse(r.inputs_json) as Record<string, unknown>,
      outcome: r.outcome,
      result: JSON.parse(r.result_json) as Record<string, unknown>,
      errorCode: r.error_code,
      prevHash: r.prev_hash,
      hash: r.hash,
    };
  }

  /** Outcomes, plus the opening records of operations that never got one (interrupted). */
  list(filter: { sandbox?: string; action?: string; limit?: number } = {}): AuditRecord[] {
    const where: string[] = [`(outcome != 'started' OR NOT EXISTS (SELECT 1 FROM audit f WHERE f.id = substr(audit.id, 1, length(audit.id) - ${INTENT.length})))`];
    const args: (string | number)[] = [];
    if (filter.sandbox) {
      where.push('(sandbox_name = ? OR sandbox_id = ?)');
      args.push(filter.sandbox, filter.sandbox);
    }
    if (filter.action) {
      where.push('action = ?');
      args.push(filter.action);
    }
    const sql = `SELECT * FROM (SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?) ORDER BY seq`;
    return (this.db.prepare(sql).all(...args, filter.limit ?? 100) as AuditRow[]).map((r) => this.toRecord(r));
  }

  get(id: string): AuditRecord {
    const row = this.db.prepare('SELECT * FROM audit WHERE id = ?').get(id) as AuditRow | undefined;
    if (!row) throw new NookError('NOT_FOUND', `no audit record ${id}`, { hint: 'list them: nook audit ls' });
    return this.toRecord(row);
  }

  /** Every record, oldest first (JSON lines export). */
  *all(): Generator<AuditRecord> {
    for (const row of this.db.prepare('SELECT * FROM audit ORDER BY seq').iterate() as IterableIterator<AuditRow>) yield this.toRecord(row);
  }

  /**
   * Recomputes the chain from the first record. The first record whose hash does not
   * match its contents (edited), or whose predecessor is not the record before it
   * (deleted or reordered), is named.
   */
  verify(): { ok: boolean; records: number; firstBad?: { seq: number; id: string; reason: string } } {
    let prev = GENESIS;
    let expectedSeq = 1;
    let count = 0;
    for (const row of this.db.prepare('SELECT * FROM audit ORDER BY seq').iterate() as IterableIterator<AuditRow>) {
      count++;
      const { hash, ...rest } = row;
      if (row.seq !== expectedSeq) {
        return { ok: false, records: count, firstBad: { seq: row.seq, id: row.id, reason: `record ${expectedSeq}${row.seq > expectedSeq + 1 ? ` to ${row.seq - 1}` : ''} before it is missing` } };
      }
      if (row.prev_hash !== prev) return { ok: false, records: count, firstBad: { seq: row.seq, id: row.id, reason: 'it does not follow the record before it (deleted, inserted or reordered records)' } };
      if (hashOf(rest) !== hash) return { ok: false, records: count, firstBad: { seq: row.seq, id: row.id, reason: 'its contents do not match its hash (edited)' } };
      prev = hash;
      expectedSeq++;
    }
    return { ok: true, records: count };
  }
}
