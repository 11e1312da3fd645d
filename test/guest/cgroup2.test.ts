/**
 * nook on a cgroup-v2-only host. Runs in the QEMU guest (`npm run test:cgroup2`); skipped on
 * v1/hybrid hosts. What a user of a v2 host checks: limits land in memory.max, memory.swap.max,
 * pids.max and cpu.max; OOM kills only the offender; a snapshot of a running sandbox freezes it
 * (cgroup.freeze) and thaws it; `nook usage` reads the cgroup; a crash's orphan cgroups (with
 * processes still inside) are killed and removed; two daemons never touch each other's cgroups;
 * a systemd host that has not delegated a subtree gets NOT_SUPPORTED naming the fix.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolvePaths } from '../../src/core/paths.js';
import { detectCgroupKind } from '../../src/runtime/cgroups.js';
import { DAEMON_MAIN, forceClean, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

const CG = '/sys/fs/cgroup';
const skip = detectCgroupKind() === 'v2' ? false : 'needs a cgroup v2 host: npm run test:cgroup2 boots one';

function read(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

describe('cgroup v2 host', { skip }, () => {
  let d: TestDaemon;
  let parent = '';

  before(async () => {
    d = await startDaemon();
    parent = join(CG, `nook-${resolvePaths({ NOOK_STATE_DIR: d.stateDir }).instance}`);
  });
  after(async () => d.teardown());

  it('reports the host kind, with crun needing no hybrid workaround', async () => {
    assert.equal((await d.client.health()).cgroup, 'v2');
    const status = await d.cli(['status']);
    assert.match(status.stdout, /cgroup:\s+v2/);
    // Without systemd the daemon takes /nook-<instance> at the root, controllers handed down.
    assert.deepEqual(read(join(parent, 'cgroup.subtree_control')).split(' ').sort(), ['cpu', 'memory', 'pids']);
  });

  it('writes the limits into memory.max, memory.swap.max, pids.max and cpu.max', async () => {
    const sb = await d.client.sandboxes.create({ name: 'limits', image: 'minimal', memoryMiB: 96, cpus: 0.5, pids: 40 });
    const dir = join(parent, sb.id);
    assert.equal(read(join(dir, 'memory.max')), String(96 * 1024 * 1024));
    if (existsSync(join(dir, 'memory.swap.max'))) assert.equal(read(join(dir, 'memory.swap.max')), '0');
    assert.equal(read(join(dir, 'pids.max')), '40');
    assert.equal(read(join(dir, 'cpu.max')), '50000 100000');
    // Inside, the sandbox sees its own cgroup as the root of a read-only cgroup2 mount.
    const inside = await sb.exec(['cat', '/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/pids.max']);
    assert.deepEqual(inside.stdout.trim().split('\n'), [String(96 * 1024 * 1024), '40']);
    const write = await sb.exec(['sh', '-c', 'echo max > /sys/fs/cgroup/pids.max']);
    assert.notEqual(write.exitCode, 0, 'the sandbox raised its own pids limit');
    assert.equal(read(join(dir, 'pids.max')), '40');
    await sb.destroy();
    assert.equal(existsSync(dir), false, 'destroy left the cgroup');
  });

  it('OOM-kills only the offender; the pids limit stops a fork bomb; the sandbox lives on', async () => {
    const sb = await d.client.sandboxes.create({ name: 'oom', image: 'minimal', memoryMiB: 64, pids: 32 });
    // A bystander in the same exec, the offender beside it: only the offender may die.
    const r = await sb.exec(['sh', '-c', 'sleep 600 & awk \'BEGIN { s = "x"; while (1) s = s s }\'; echo "awk=$?"; kill -0 $! && echo bystander-alive'], {
      timeoutMs: 60_000,
    });
    assert.equal(r.timedOut, false);
    assert.match(r.stdout, /^awk=137$/m, `stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.match(r.stdout, /^bystander-alive$/m);
    assert.ok(Number(/oom_kill (\d+)/.exec(read(join(parent, sb.id, 'memory.events')))?.[1]) >= 1);
    const bomb = await sb.exec(['sh', '-c', 'b() { b | b; }; b'], { timeoutMs: 30_000 });
    assert.match(bomb.stderr, /can't fork/);
    assert.equal((await sb.exec(['echo', 'alive'])).stdout, 'alive\n');
    assert.equal((await sb.refresh()).state, 'running');
    await sb.destroy();
  });

  it('kills a timed-out exec tree, daemonised children included', async () => {
    const sb = await d.client.sandboxes.create({ name: 'tree', image: 'minimal' });
    const procs = (): number => Number(read(join(parent, sb.id, 'pids.current')));
    const idle = procs();
    const r = await sb.exec(['sh', '-c', '(setsid sleep 301 &); sleep 302 & echo started; sleep 303'], { timeoutMs: 3000 });
    assert.equal(r.timedOut, true);
    assert.equal(r.stdout, 'started\n');
    await waitFor(() => procs() <= idle, 10_000, 'the exec tree to be gone from the sandbox cgroup');
    const usage = await d.cli(['usage', 'tree', '--json']);
    const live = (JSON.parse(usage.stdout) as { live: { memoryBytes: number; cpuSeconds: number; pids: number } }).live;
    assert.ok(live.memoryBytes > 0 && live.cpuSeconds > 0 && live.pids >= 1, usage.stdout);
    await sb.destroy();
  });

  it('a snapshot of a running sandbox freezes it (cgroup.freeze) and thaws it; the fork runs', async () => {
    const sb = await d.client.sandboxes.create({ name: 'snap', image: 'minimal' });
    await sb.exec(['sh', '-c', 'seq 1 5000 > /root/n']);
    await sb.snapshots.create({ name: 's1' });
    assert.equal(read(join(parent, sb.id, 'cgroup.freeze')), '0');
    assert.match(read(join(parent, sb.id, 'cgroup.events')), /^frozen 0$/m);
    const [fork] = await sb.fork({ name: 'snap-fork' });
    assert.ok(fork);
    assert.equal((await fork.exec(['wc', '-l', '/root/n'])).stdout.trim().split(/\s+/)[0], '5000');
    assert.ok(existsSync(join(parent, fork.id)));
    await sb.stop();
    assert.equal(existsSync(join(parent, sb.id)), false, 'stop left the cgroup');
    assert.equal((await sb.exec(['wc', '-l', '/root/n'])).stdout.trim().split(/\s+/)[0], '5000');
    await fork.destroy();
    await sb.destroy({ withSnapshots: true });
  });

  it('after a crash, kills and removes orphan cgroups, and keeps the sandboxes it knows', async () => {
    const kept = await d.client.sandboxes.create({ name: 'kept', image: 'minimal' });
    await d.kill9();
    // An orphan a crashed daemon left: a sandbox cgroup nobody lists, a process still inside.
    const orphan = join(parent, 'sb-orphan-test');
    mkdirSync(orphan);
    const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    writeFileSync(join(orphan, 'cgroup.procs'), String(sleeper.pid));
    const died = new Promise((r) => sleeper.once('exit', r));
    await d.start();
    await died;
    await waitFor(() => !existsSync(orphan), 30_000, 'the orphan cgroup to be removed');
    assert.equal((await kept.exec(['echo', 'ok'])).stdout, 'ok\n');
    await kept.destroy();
  });

  it('two daemons keep to their own cgroups', async () => {
    const other = await startDaemon();
    try {
      const a = await d.client.sandboxes.create({ name: 'mine', image: 'minimal' });
      const b = await other.client.sandboxes.create({ name: 'theirs', image: 'minimal' });
      const otherParent = join(CG, `nook-${resolvePaths({ NOOK_STATE_DIR: other.stateDir }).instance}`);
      assert.notEqual(otherParent, parent);
      assert.deepEqual(readdirSync(otherParent).filter((n) => n.startsWith('sb') || n === b.id), [b.id]);
      await other.restart(); // its reconcile must not see (or remove) ours
      assert.equal((await a.exec(['echo', 'still'])).stdout, 'still\n');
      assert.ok(existsSync(join(parent, a.id)));
      await a.destroy();
    } finally {
      await other.teardown();
    }
  });

  it('a kernel with user namespaces switched off gets NOT_SUPPORTED naming the sysctl', async () => {
    // Safe only in the throwaway guest: the host's own setting is never touched.
    const file = '/proc/sys/user/max_user_namespaces';
    const saved = read(file);
    const stateDir = mkdtempSync('/tmp/nookt-');
    writeFileSync(file, '0');
    try {
      const out = await startFailing(stateDir);
      assert.match(out.log, /user namespaces are disabled/);
      assert.match(out.log, /max_user_namespaces=/);
    } finally {
      writeFileSync(file, saved);
      await forceClean(stateDir);
    }
  });

  it('under systemd without a delegated subtree, refuses to start, naming Delegate=yes', { skip: existsSync('/run/systemd') && 'a real systemd host' }, async () => {
    // /run/systemd/system is how systemd says it is PID 1 (here faked on the guest's tmpfs /run);
    // nookd's cgroup is then not a delegated unit.
    mkdirSync('/run/systemd/system', { recursive: true });
    const stateDir = mkdtempSync('/tmp/nookt-');
    try {
      const out = await startFailing(stateDir);
      assert.match(out.log, /not delegated/);
      assert.match(out.log, /Delegate=yes/);
      assert.match(out.log, /nookd\.service/);
      assert.equal(existsSync(join(CG, `nook-${resolvePaths({ NOOK_STATE_DIR: stateDir }).instance}`)), false, 'it wrote into a cgroup it does not own');
    } finally {
      rmSync('/run/systemd', { recursive: true, force: true });
      await forceClean(stateDir);
    }
  });
});

/** Starts nookd expecting it to refuse; returns its output (it must exit non-zero, never serve). */
async function startFailing(stateDir: string): Promise<{ log: string }> {
  let log = '';
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn(process.execPath, [DAEMON_MAIN], { env: { ...process.env, NOOK_STATE_DIR: stateDir, NOOK_SOCKET: join(stateDir, 'nook.sock') }, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.on('data', (b: Buffer) => (log += b.toString()));
    p.stderr.on('data', (b: Buffer) => (log += b.toString()));
    p.on('exit', resolve);
  });
  assert.equal(code, 1, log);
  return { log };
}
