/**
 * Load on one 2-core host: 50 sandboxes taking 20 concurrent execs each, twice, then 500
 * idle sandboxes held at once. Asserts zero errors and correct output; the latencies are
 * printed for docs/reliability.md, never asserted (timing targets live in benchmarks).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return Math.round((s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0) * 10) / 10;
}

async function inBatches<T>(count: number, size: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < count; i += size) out.push(...(await Promise.all(Array.from({ length: Math.min(size, count - i) }, (_, j) => make(i + j)))));
  return out;
}

describe('load', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
    await d.client.images.build({ preset: 'minimal' });
  });
  after(async () => d.teardown());

  it('50 sandboxes x 20 concurrent execs, twice: every exec answers correctly', async () => {
    const sandboxes: Sandbox[] = await inBatches(50, 10, (i) => d.client.sandboxes.create({ name: `load-${i}`, image: 'minimal' }));
    const latencies: number[] = [];
    let wrong = 0;
    for (let round = 0; round < 2; round++) {
      await Promise.all(
        sandboxes.map((sb, i) =>
          Promise.all(
            Array.from({ length: 20 }, async (_, j) => {
              const t0 = performance.now();
              const r = await sb.exec(['echo', `${i}-${j}`]);
              latencies.push(performance.now() - t0);
              if (r.stdout !== `${i}-${j}\n` || r.exitCode !== 0) wrong++;
            }),
          ),
        ),
      );
    }
    assert.equal(latencies.length, 2000);
    assert.equal(wrong, 0);
    process.stdout.write(`# load: 2000 execs (1000 in flight), p50 ${pct(latencies, 0.5)} ms, p99 ${pct(latencies, 0.99)} ms\n`);
    await inBatches(50, 10, async (i) => void (await sandboxes[i]?.destroy()));
  });

  it('holds 500 idle sandboxes at once', async () => {
    const avail = (): number => Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
    const before = avail();
    const started = performance.now();
    const sandboxes = await inBatches(500, 10, (i) => d.client.sandboxes.create({ name: `idle-${i}`, image: 'minimal' }));
    const createMs = performance.now() - started;
    assert.equal((await d.client.sandboxes.list({ state: 'running' })).length, 500);
    assert.equal((await sandboxes[499]?.exec(['echo', 'last']))?.stdout, 'last\n');
    assert.equal((await sandboxes[0]?.exec(['echo', 'first']))?.stdout, 'first\n');
    const perSandboxMiB = (before - avail()) / 1024 / 1024 / 500;
    process.stdout.write(`# load: 500 idle sandboxes created in ${Math.round(createMs)} ms, ${perSandboxMiB.toFixed(2)} MiB host memory each\n`);
    await inBatches(500, 20, async (i) => void (await sandboxes[i]?.destroy()));
    assert.equal((await d.client.sandboxes.list()).length, 0);
  });
});
