/**
 * Repeated denials are aggregated, so a sandbox looping on a refused destination costs the
 * host a bounded number of log lines and table rows. Per sandbox and window: the first
 * denial of each destination (up to `distinctPerWindow`) is written at once; repeats and
 * anything past that budget are counted and written when the window closes, as one record
 * per repeated destination plus one for the rest.
 */

export interface DenialSample<T> {
  key: string;
  sample: T;
}

export interface DenialSummary<T> {
  /** Destinations seen again within the window: the first sample and how many more times. */
  repeated: { sample: T; count: number }[];
  /** Denials of destinations past the window's budget, not recorded one by one. */
  others: number;
  otherKeys: number;
}

interface Window<T> {
  first: Map<string, { sample: T; count: number }>;
  others: number;
  otherKeys: Set<string>;
  timer: NodeJS.Timeout;
}

/** Distinct other destinations remembered per window (only their number is reported). */
const MAX_OTHER_KEYS = 10_000;

export class DenialAggregator<T> {
  private readonly windows = new Map<string, Window<T>>();

  constructor(
    private readonly flush: (sandboxId: string, summary: DenialSummary<T>) => void,
    private readonly windowMs = 10_000,
    private readonly distinctPerWindow = 20,
  ) {}

  /** True when this denial is to be recorded now; otherwise it was counted. */
  admit(sandboxId: string, key: string, sample: T): boolean {
    let w = this.windows.get(sandboxId);
    if (!w) {
      const timer = setTimeout(() => this.close(sandboxId), this.windowMs);
      timer.unref();
      w = { first: new Map(), others: 0, otherKeys: new Set(), timer };
      this.windows.set(sandboxId, w);
    }
    const seen = w.first.get(key);
    if (seen) {
      seen.count++;
      return false;
    }
    if (w.first.size < this.distinctPerWindow) {
      w.first.set(key, { sample, count: 0 });
      return true;
    }
    w.others++;
    if (w.otherKeys.size < MAX_OTHER_KEYS) w.otherKeys.add(key);
    return false;
  }

  /** Ends the sandbox's window now, writing its summary (if anything was held back). */
  close(sandboxId: string): void {
    const w = this.windows.get(sandboxId);
    if (!w) return;
    clearTimeout(w.timer);
    this.windows.delete(sandboxId);
    const repeated = [...w.first.values()].filter((f) => f.count > 0);
    if (repeated.length > 0 || w.others > 0) this.flush(sandboxId, { repeated, others: w.others, otherKeys: w.otherKeys.size });
  }

  /** Forgets a sandbox's window without writing (it is being destroyed). */
  drop(sandboxId: string): void {
    const w = this.windows.get(sandboxId);
    if (w) clearTimeout(w.timer);
    this.windows.delete(sandboxId);
  }

  closeAll(): void {
    for (const id of [...this.windows.keys()]) this.close(id);
  }
}
