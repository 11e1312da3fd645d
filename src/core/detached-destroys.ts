/**
 * Destroys that finish after the caller has its answer: a one-shot run answers as soon as
 * its command's result is known, and its sandbox goes in the background.
 *
 * Honest about it (SandboxManager.destroyAfterAnswer): before the answer leaves, the sandbox
 * is `destroying` in the database (get and ls show it so, every operation on it is refused,
 * exactly as during any destroy) and the destroy's opening audit record is written. A
 * daemon killed before the destroy ends leaves a `destroying` row, which the startup
 * reconcile finishes (sandbox-reconcile.ts); a graceful stop waits for them (drain).
 *
 * Bounded: at most `max` destroys are pending; a run finishing when all slots are taken
 * waits for one before it answers, so a burst of runs cannot pile up destroys (and their
 * containers, cgroups, subvolumes) faster than the host removes them.
 */
import { NookError } from '../api/errors.js';
import { log } from '../util/log.js';
import { AuditLog } from './audit.js';

/** Destroys pending at once: enough to overlap one destroy's process starts with the next run, small enough that a burst is felt as back-pressure. */
export const DETACHED_DESTROYS_MAX = 4;

export class DetachedDestroys {
  private readonly pending = new Set<Promise<void>>();
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly max = DETACHED_DESTROYS_MAX) {}

  /** Destroys running in the background now. */
  get count(): number {
    return this.pending.size;
  }

  /**
   * Waits for a free slot, then calls `begin` at once (in the same tick as the slot check,
   * so no two callers take one slot). `begin` marks what it destroys synchronously and
   * returns the rest of the work, which is tracked; or null when it chose not to detach.
   * A throw from `begin` reaches the caller and takes no slot.
   */
  async start(begin: () => Promise<void> | null): Promise<void> {
    while (this.pending.size >= this.max) await new Promise<void>((resolve) => this.waiters.push(resolve));
    const work = begin();
    if (!work) {
      this.waiters.shift()?.();
      return;
    }
    const tracked: Promise<void> = work
      .catch((e: Error) => log('detached destroy failed', { error: e.message }))
      .finally(() => {
        this.pending.delete(tracked);
        this.waiters.shift()?.();
      });
    this.pending.add(tracked);
  }

  /** Resolves once every pending destroy has ended (daemon stop, release). */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}

/**
 * Runs a detached destroy as its own audited operation: the opening record is written now
 * (before the run's answer, so a crash leaves the attempt on record), the outcome when it
 * ends; notes made while destroying go to this record, not to the run's.
 */
export function auditedDestroy(audit: AuditLog, row: { id: string; name: string }, destroy: () => Promise<unknown>): Promise<void> {
  const run = audit.current();
  const ctx = {
    receipt: AuditLog.newReceipt(), actor: run?.actor ?? 'nookd', action: 'destroySandbox',
    inputs: { reason: 'run', afterAnswer: true, ...(run ? { run: run.receipt } : {}) }, result: {}, sandboxId: row.id, sandbox: row.name,
  };
  audit.begin(ctx);
  return audit.run(ctx, destroy).then(
    () => void audit.append(ctx, 'ok'),
    (e: Error) => {
      audit.append({ ...ctx, result: { error: e.message } }, 'error', e instanceof NookError ? e.code : 'INTERNAL');
      throw e;
    },
  );
}
