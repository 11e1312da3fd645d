import { log } from '../util/log.js';
import type { SandboxManager } from './sandboxes.js';

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * One timer for the earliest TTL expiry, re-armed on every change. Expiries live in the
 * database, so they survive a daemon restart: `start()` applies those already past.
 */
export class TtlScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly sandboxes: SandboxManager) {}

  start(): void {
    this.running = true;
    this.reschedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  reschedule(): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    const next = this.sandboxes.nextExpiry();
    if (next === null) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, next - Date.now()));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.expireDue().finally(() => this.reschedule());
    }, delay);
  }

  /** Applies every expired TTL, one at a time; a failure is logged and the rest still go. */
  async expireDue(now = Date.now()): Promise<void> {
    for (const d of this.sandboxes.dueExpiries(now)) {
      try {
        log('ttl expired', d);
        if (d.action === 'stop') await this.sandboxes.stop(d.id, 'ttl');
        else await this.sandboxes.destroy(d.id, { reason: 'ttl' });
      } catch (e) {
        log('ttl action failed', { id: d.id, error: (e as Error).message });
      }
    }
  }
}
