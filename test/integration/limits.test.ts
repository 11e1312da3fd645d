import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { detectCgroupKind } from '../../src/runtime/cgroups.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

/** Inside a sandbox its cgroup is the root of /sys/fs/cgroup: per controller on v1, unified on v2. */
const V2 = detectCgroupKind() === 'v2';

describe('resource limits (real cgroups)', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('OOM-kills the offender, and the sandbox lives on', async () => {
    const sb = await d.client.sandboxes.create({ name: 'oom', image: 'minimal', memoryMiB: 64 });
    // awk doubles a string until the 64 MiB limit is hit.
    const r = await sb.exec(['awk', 'BEGIN { s = "x"; while (1) s = s s }'], { timeoutMs: 20_000 });
    assert.equal(r.timedOut, false);
    assert.equal(r.exitCode, 137, `exit ${r.exitCode}: ${r.stderr}`);
    assert.equal(r.signal, 'SIGKILL');
    const after = await sb.exec(['echo', 'alive']);
    assert.equal(after.stdout, 'alive\n');
    assert.equal((await sb.refresh()).state, 'running');
    await sb.destroy();
  });

  it('the pids limit stops a fork bomb, and the sandbox lives on', async () => {
    const sb = await d.client.sandboxes.create({ name: 'forkbomb', image: 'minimal', pids: 32 });
    const r = await sb.exec(['sh', '-c', 'i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; wait'], { timeoutMs: 5000 });
    assert.match(r.stderr, /fork|resource|again/i, `stderr: ${r.stderr}`);
    const bomb = await sb.exec(['sh', '-c', 'b() { b | b; }; b'], { timeoutMs: 5000 });
    assert.match(bomb.stderr, /can't fork/);
    const pids = await sb.exec(['cat', V2 ? '/sys/fs/cgroup/pids.max' : '/sys/fs/cgroup/pids/pids.max']);
    assert.equal(pids.stdout.trim(), '32');
    const after = await sb.exec(['echo', 'alive']);
    assert.equal(after.stdout, 'alive\n');
    await sb.destroy();
  });

  it('applies the CPU quota', async () => {
    const sb = await d.client.sandboxes.create({ name: 'cpu', image: 'minimal', cpus: 0.5 });
    const r = await sb.exec(['cat', ...(V2 ? ['/sys/fs/cgroup/cpu.max'] : ['/sys/fs/cgroup/cpu/cpu.cfs_quota_us', '/sys/fs/cgroup/cpu/cpu.cfs_period_us'])]);
    assert.deepEqual(r.stdout.trim().split(/\s+/).map(Number), [50_000, 100_000]);
    await sb.destroy();
  });
});
