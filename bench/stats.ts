/** Medians and p90s of timed samples. */
export interface Stat {
  name: string;
  medianMs: number;
  p90Ms: number;
  n: number;
}

export function stat(name: string, samples: number[]): Stat {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { name, medianMs: round(at(0.5)), p90Ms: round(at(0.9)), n: s.length };
}

export function round(x: number): number {
  return Math.round(x * 100) / 100;
}

export async function timeIt(n: number, fn: (i: number) => Promise<void>, untimed?: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push(performance.now() - t0);
    if (untimed) await untimed(i);
  }
  return out;
}

