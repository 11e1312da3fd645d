/**
 * Crash consistency under random operations: a seeded driver runs a few hundred operations
 * (create, exec writes, file copies, snapshot, fork, stop, resume, destroy, volume
 * create/unlock/mount/lock) and SIGKILLs the daemon at random points, often in the middle
 * of an operation. After each restart it checks the invariants against what was
 * acknowledged: every listed sandbox works, every acknowledged write is there, nothing
 * runs or is mounted that the database does not know, no volume is open that it says is
 * locked, and the audit chain verifies. NOOK_CRASH_SEED and NOOK_CRASH_OPS reproduce a run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolvePaths } from '../../src/core/paths.js';
import type { Sandbox } from '../../src/sdk/client.js';
import { mountsUnder } from '../../src/util/fs.js';
import { run } from '../../src/util/proc.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

const SEED = Number(process.env.NOOK_CRASH_SEED ?? 20261123);
const OPS = Number(process.env.NOOK_CRASH_OPS ?? 300);

/** mulberry32: small, seeded, good enough to pick operations reproducibly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Model {
  /** Sandboxes whose create was acknowledged, with the writes acknowledged in each. */
  sandboxes: Map<string, Map<string, string>>;
  /** Sandboxes an in-flight or failed operation may have changed in unknown ways. */
  uncertain: Set<string>;
  snapshots: Set<string>;
  volumes: Map<string, 'locked' | 'unlocked'>;
}

describe(`crash consistency: ${OPS} random operations with SIGKILLs (seed ${SEED})`, () => {
  let d: TestDaemon;
  let keyDir: string;
  const kinds = new Map<string, number>();
  const stats = { ops: 0, acknowledged: 0, failed: 0, crashes: 0, interrupted: 0, checks: 0, violations: [] as string[] };

  before(async () => {
    keyDir = mkdtempSync('/tmp/nook-crash-key-');
    d = await startDaemon({ NOOK_MASTER_KEY_FILE: join(keyDir, 'master.key') });
  });
  after(async () => {
    await d.teardown();
    rmSync(keyDir, { recursive: true, force: true });
    // Recorded for docs/reliability.md.
    console.log(`# crash driver: seed ${SEED}, ${stats.ops} operations (${stats.acknowledged} acknowledged, ${stats.failed} refused, ${stats.interrupted} cut by a crash), ${stats.crashes} SIGKILLs, ${stats.checks} invariant checks, ${stats.violations.length} violations; ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  });

  it('keeps every invariant after every crash', { timeout: 15 * 60_000 }, async () => {
    const random = rng(SEED);
    const pick = <T>(xs: T[]): T | undefined => xs[Math.floor(random() * xs.length)];
    const m: Model = { sandboxes: new Map(), uncertain: new Set(), snapshots: new Set(), volumes: new Map() };
    let serial = 0;
    const known = (): string[] => [...m.sandboxes.keys()].filter((n) => !m.uncertain.has(n));
    const get = (name: string): Promise<Sandbox> => d.client.sandboxes.get(name);

    /** One random operation; returns what to record in the model once it is acknowledged. */
    const operation = (): { name: string; run: () => Promise<void>; touches: string[] } => {
      const r = random();
      const sb = pick(known());
      const n = ++serial;
      if (!sb || r < 0.12) {
        const name = `c${n}`;
        return { name: `create ${name}`, touches: [name], run: async () => void (await d.client.sandboxes.create({ name, image: 'minimal' }), m.sandboxes.set(name, new Map())) };
      }
      if (r < 0.4) {
        const path = `/work/w${n}`;
        const text = `write-${n}-${Math.floor(random() * 1e9)}`;
        return {
          name: `exec write ${sb}`,
          touches: [sb],
          run: async () => {
            const res = await (await get(sb)).exec(['sh', '-c', `echo ${text} > ${path}.tmp && mv ${path}.tmp ${path}`]);
            if (res.exitCode !== 0) throw new Error(res.stderr);
            m.sandboxes.get(sb)?.set(path, `${text}\n`);
          },
        };
      }
      if (r < 0.5) {
        const path = `/work/cp${n}`;
        const text = `copied-${n}\n`;
        return { name: `cp into ${sb}`, touches: [sb], run: async () => void (await (await get(sb)).files.write(path, text), m.sandboxes.get(sb)?.set(path, text)) };
      }
      if (r < 0.58) {
        const snap = `s${n}`;
        return { name: `snapshot ${sb}@${snap}`, touches: [sb], run: async () => void (await (await get(sb)).snapshots.create({ name: snap }), m.snapshots.add(`${sb}@${snap}`)) };
      }
      if (r < 0.64) {
        const name = `f${n}`;
        return {
          name: `fork ${sb} -> ${name}`,
          touches: [sb, name],
          run: async () => {
            const writes = new Map(m.sandboxes.get(sb));
            await (await get(sb)).fork({ name });
            m.sandboxes.set(name, writes);
          },
        };
      }
      if (r < 0.72) return { name: `stop ${sb}`, touches: [sb], run: async () => void (await (await get(sb)).stop()) };
      if (r < 0.8) return { name: `resume ${sb}`, touches: [sb], run: async () => void (await (await get(sb)).resume()) };
      if (r < 0.86) {
        return {
          name: `destroy ${sb}`,
          touches: [sb],
          run: async () => {
            // Its snapshots outlive it (they stay in the model).
            await (await get(sb)).destroy();
            m.sandboxes.delete(sb);
          },
        };
      }
      // Volumes: create, unlock, mount into a running sandbox, lock (force unmounts).
      const vol = pick([...m.volumes.keys()]);
      if (!vol || r < 0.89) {
        const name = `v${n}`;
        return { name: `volume create ${name}`, touches: [], run: async () => void (await d.client.volumes.create(name, { sizeMiB: 32 }), m.volumes.set(name, 'locked')) };
      }
      if (m.volumes.get(vol) === 'locked') return { name: `volume unlock ${vol}`, touches: [], run: async () => void (await d.client.volumes.unlock(vol), m.volumes.set(vol, 'unlocked')) };
      if (r < 0.95) {
        return {
          name: `volume mount ${vol} in ${sb}`,
          touches: [sb],
          run: async () => {
            const s = await get(sb);
            if (s.state !== 'running') await s.resume();
            const v = await d.client.volumes.get(vol);
            if (v.mountedIn) return;
            await s.volumes.mount(vol, `/mnt/${vol}`, { rw: true });
          },
        };
      }
      return { name: `volume lock ${vol}`, touches: [], run: async () => void (await d.client.volumes.lock(vol, { force: true }), m.volumes.set(vol, 'locked')) };
    };

    const violation = (what: string): void => {
      stats.violations.push(what);
    };

    const checkInvariants = async (): Promise<void> => {
      stats.checks++;
      const paths = resolvePaths({ NOOK_STATE_DIR: d.stateDir });
      const listed = await d.client.sandboxes.list();
      const names = new Set(listed.map((s) => s.name));
      for (const name of m.sandboxes.keys()) if (!m.uncertain.has(name) && !names.has(name)) violation(`acknowledged sandbox ${name} is missing`);
      // Adopt what in-flight operations left: a listed sandbox is real from now on.
      for (const s of listed) {
        if (!m.sandboxes.has(s.name)) m.sandboxes.set(s.name, new Map());
        const res = await s.exec(['sh', '-c', 'cat /work/w* /work/cp* 2>/dev/null; true']).catch((e: Error) => e);
        if (res instanceof Error) {
          violation(`listed sandbox ${s.name} does not work: ${res.message}`);
          continue;
        }
        for (const [path, text] of m.sandboxes.get(s.name) ?? []) {
          if (m.uncertain.has(s.name)) continue;
          const got = await s.files.read(path).catch(() => null);
          if (got?.toString() !== text) violation(`acknowledged write ${s.name}:${path} is ${got === null ? 'missing' : 'different'}`);
        }
      }
      for (const name of [...m.sandboxes.keys()]) if (!names.has(name)) m.sandboxes.delete(name);
      m.uncertain.clear();
      const snaps = new Set((await d.client.snapshots.list()).map((s) => `${s.sandbox}@${s.name}`));
      for (const s of m.snapshots) if (!snaps.has(s)) violation(`acknowledged snapshot ${s} is missing`);
      for (const s of snaps) m.snapshots.add(s);
      // Nothing runs that the database does not know, and everything it says runs, does.
      // (The reads above resumed paused sandboxes: list again.)
      const running = new Set((await d.client.sandboxes.list()).filter((s) => s.state === 'running').map((s) => s.id));
      const containers = existsSync(paths.runtimeStateDir) ? readdirSync(paths.runtimeStateDir) : [];
      for (const c of containers) if (!running.has(c)) violation(`container ${c} runs but is not a running sandbox`);
      for (const id of running) if (!containers.includes(id)) violation(`running sandbox ${id} has no container`);
      const cg = join('/sys/fs/cgroup/memory', `nook-${paths.instance}`);
      const cgroups = existsSync(cg) ? readdirSync(cg, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name) : [];
      for (const c of cgroups) if (!running.has(c)) violation(`cgroup ${c} belongs to no running sandbox`);
      // Volumes: none open that the database says is locked; no stray volume mounts.
      const volumes = await d.client.volumes.list();
      const mounts = await mountsUnder(join(d.stateDir, 'volumes'));
      for (const v of volumes) {
        const open = mounts.some((p) => p.includes(v.id));
        if (v.state === 'locked' && open) violation(`volume ${v.name} is mounted on the host but listed as locked`);
        if (m.volumes.get(v.name) === 'locked' && v.state !== 'locked') violation(`volume ${v.name} was acknowledged locked but is ${v.state}`);
        m.volumes.set(v.name, v.state);
      }
      for (const p of mounts) if (!volumes.some((v) => p.includes(v.id))) violation(`mount ${p} belongs to no volume`);
      for (const name of m.volumes.keys()) if (!volumes.some((v) => v.name === name)) violation(`acknowledged volume ${name} is missing`);
      // One loop device for the pool, one per open volume.
      const loops = (await run(['losetup', '-a'])).stdout.split('\n').filter((l) => l.includes(d.stateDir));
      const openVolumes = volumes.filter((v) => v.state === 'unlocked').length;
      if (loops.length > 1 + openVolumes) violation(`${loops.length} loop devices for ${openVolumes} open volume(s) and the pool`);
      const audit = await d.client.audit.verify();
      if (!audit.ok) violation(`audit chain broken at ${JSON.stringify(audit)}`);
    };

    let nextCrash = 8 + Math.floor(random() * 20);
    for (let i = 0; i < OPS; i++) {
      const op = operation();
      stats.ops++;
      const kind = op.name.split(' ').slice(0, op.name.startsWith('volume') ? 2 : 1).join(' ');
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      if (i === nextCrash) {
        // Kill the daemon while this operation is in flight, after a random delay.
        const pending = op.run().then(
          () => 'done',
          () => 'failed',
        );
        await new Promise((r) => setTimeout(r, Math.floor(random() * 15)));
        await d.restart();
        stats.crashes++;
        const outcome = await pending;
        if (outcome === 'done') stats.acknowledged++;
        else {
          stats.interrupted++;
          for (const t of op.touches) m.uncertain.add(t);
          // A volume op cut short: take the daemon's word after restart.
          if (op.name.startsWith('volume')) m.volumes.clear();
        }
        await checkInvariants();
        nextCrash = i + 8 + Math.floor(random() * 20);
        continue;
      }
      try {
        await op.run();
        stats.acknowledged++;
      } catch {
        // Refusals (a stopped sandbox, a volume in use, ...) are expected in a random walk.
        stats.failed++;
        for (const t of op.touches) m.uncertain.add(t);
      }
    }
    await checkInvariants();
    writeFileSync(join(keyDir, 'stats.json'), JSON.stringify(stats));
    assert.deepEqual(stats.violations, [], `invariant violations:\n${stats.violations.join('\n')}`);
    assert.ok(stats.crashes >= 8, `only ${stats.crashes} crashes`);
  });
});
