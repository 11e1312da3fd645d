/**
 * The warm pool with a real daemon: config, fill, take (proved by the pool's counters and by
 * the sandbox id being a member's, never by timing), a fresh identity at take, refill, the
 * normal path for what does not fit, a restart without leaks, drain. And the attacker's view:
 * what one user ran in a pooled sandbox never reaches the next one, members cannot be
 * addressed, config values are bounded.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { PoolInfo } from '../../src/api/schemas.js';
import { resolvePaths } from '../../src/core/paths.js';
import { run } from '../../src/util/proc.js';
import { rejectsWith } from '../helpers/assert.js';
import { forceClean, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

const IMAGE = 'minimal';

describe('warm pool', () => {
  let d: TestDaemon;
  let crunRoot: string;

  /** Containers crun runs for this daemon: listed sandboxes and pool members alike. */
  const containers = async (): Promise<string[]> => (await run(['crun', '--root', crunRoot, 'list', '-q'], { allowFail: true })).stdout.split('\n').filter(Boolean).sort();
  const pool = async (): Promise<PoolInfo> => {
    const p = (await d.client.pools()).find((x) => x.image === IMAGE);
    assert.ok(p, 'the pool is in status');
    return p;
  };
  const listedIds = async (): Promise<string[]> => (await d.client.sandboxes.list()).map((s) => s.id);
  /** Members: containers nobody lists. */
  const members = async (): Promise<string[]> => {
    const listed = new Set(await listedIds());
    return (await containers()).filter((id) => !listed.has(id));
  };
  const ready = (n: number): Promise<void> => waitFor(async () => (await pool()).ready === n && (await members()).length === n, 60_000, `${n} ready pool members`);
  /** Whatever the host holds for a sandbox id: container, cgroup dirs, files. */
  const traces = async (id: string): Promise<string[]> => {
    const found = await run(['find', '/sys/fs/cgroup', resolvePaths({ NOOK_STATE_DIR: d.stateDir }).storageDir, '-name', id], { allowFail: true });
    return [...((await containers()).includes(id) ? [`container ${id}`] : []), ...found.stdout.split('\n').filter(Boolean)];
  };

  before(async () => {
    d = await startDaemon();
    crunRoot = resolvePaths({ NOOK_STATE_DIR: d.stateDir }).runtimeStateDir;
    await d.client.images.build({ preset: IMAGE });
  });
  after(async () => {
    await d.teardown();
  });

  it('config values are bounded and unknown keys are named with a hint', async () => {
    await rejectsWith(d.client.setConfig(`pool.${IMAGE}`, 33), 'INVALID_ARGUMENT', /from 0 to 32/);
    await rejectsWith(d.client.setConfig(`pool.${IMAGE}`, -1), 'INVALID_ARGUMENT', /from 0 to 32/);
    await rejectsWith(d.client.setConfig(`pool.${IMAGE}`, true), 'INVALID_ARGUMENT', /from 0 to 32/);
    await rejectsWith(d.client.setConfig('network.allowed', 4), 'INVALID_ARGUMENT', /true or false/);
    await rejectsWith(d.client.setConfig('pool.../etc', 1), 'INVALID_ARGUMENT', /not a local image name/);
    await rejectsWith(d.client.setConfig('pool.no-such-image', 1), 'IMAGE_NOT_FOUND');
    const e = await rejectsWith(d.client.setConfig('pools.python' as 'pool.python', 1), 'INVALID_ARGUMENT', /unknown setting "pools.python"/);
    assert.match(e.hint ?? '', /pool\.IMAGE/);
    const cli = await d.cli(['config', 'set', `pool.${IMAGE}`, 'lots']);
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /whole number from 0 to 32/);
    assert.deepEqual((await d.client.config()).pools, {}, 'nothing refused was stored');
  });

  it('fills in the background; members are not listed, counted or addressable', async () => {
    const set = await d.cli(['config', 'set', `pool.${IMAGE}`, '2', '--json']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal((JSON.parse(set.stdout) as { pools: Record<string, number> }).pools[IMAGE], 2);
    assert.equal((await d.cli(['config', 'get', `pool.${IMAGE}`])).stdout, `pool.${IMAGE} 2\n`);
    assert.match((await d.cli(['config', 'ls'])).stdout, new RegExp(`network.allowed true\\n[\\s\\S]*pool.${IMAGE} 2\\n$`));
    await ready(2);
    assert.deepEqual(await listedIds(), []);
    assert.equal((await d.client.health()).sandboxes, 0);
    for (const id of await members()) await rejectsWith(d.client.sandboxes.get(id), 'SANDBOX_NOT_FOUND');
    const p = await pool();
    assert.ok(p.idleMemoryBytes > 0, 'idle memory is measured from the members\' cgroups');
    const status = await d.cli(['status']);
    assert.match(status.stdout, new RegExp(`pool ${IMAGE}: 2/2 ready, idle [0-9.]+ MiB memory, [0-9.]+ MiB disk; 0 taken`));
    const json = JSON.parse((await d.cli(['status', '--json'])).stdout) as { pools: PoolInfo[] };
    assert.equal(json.pools[0]?.ready, 2);
  });

  it('create takes a member and gives it the caller\'s identity: hostname, env, labels, TTL; then refills', async () => {
    const before = await members();
    const fresh = await d.client.sandboxes.create({ name: 'fresh-ref', image: IMAGE, memoryMiB: 512, env: { SECRET: 's1' } });
    const sb = await d.client.sandboxes.create({ name: 'alice', image: IMAGE, labels: { team: 'a' }, env: { SECRET: 's1' }, ttlMs: 600_000 });
    assert.equal((await pool()).takes, 1, 'served from the pool');
    assert.ok(before.includes(sb.id), 'its id is a member\'s (never seen by anyone before)');
    assert.equal(sb.data.name, 'alice');
    assert.deepEqual(sb.data.labels, { team: 'a' });
    assert.deepEqual(sb.data.envKeys, ['SECRET']);
    assert.equal(sb.data.ttlMs, 600_000);
    assert.ok(sb.data.expiresAt && Date.parse(sb.data.expiresAt) > Date.now() + 590_000);
    assert.ok(Date.now() - Date.parse(sb.data.createdAt) < 60_000, 'created at take time');
    const r = await sb.exec(['sh', '-c', 'hostname; cat /proc/sys/kernel/hostname; echo $SECRET']);
    assert.equal(r.stdout, 'alice\nalice\ns1\n');
    const environ = ['sh', '-c', 'tr "\\0" "\\n" < /proc/1/environ | sort; cat /proc/1/cmdline | tr "\\0" " "'];
    const pid1 = (await sb.exec(environ)).stdout;
    assert.equal(pid1, (await fresh.exec(environ)).stdout, 'PID 1\'s environment and command line are a fresh sandbox\'s');
    assert.doesNotMatch(pid1, /SECRET|s1|sb-/);
    const etc = await sb.exec(['sh', '-c', 'cat /etc/hostname 2>&1; ls /work /tmp']);
    const etcRef = await fresh.exec(['sh', '-c', 'cat /etc/hostname 2>&1; ls /work /tmp']);
    assert.equal(etc.stdout, etcRef.stdout, '/etc/hostname and the scratch dirs are as in a fresh sandbox');
    // Without a name, the name it gets is its hostname too.
    const anon = await d.client.sandboxes.create({ image: IMAGE });
    assert.equal((await pool()).takes, 2);
    assert.equal((await anon.exec(['hostname'])).stdout.trim(), anon.data.name);
    await ready(2);
    assert.equal((await pool()).fills, 4, 'refilled after each take');
    await fresh.destroy();
    await anon.destroy();
  });

  it('requests that need another start go the normal way', async () => {
    const taken = (await pool()).takes;
    const memberIds = await members();
    const other = [
      await d.client.sandboxes.create({ name: 'small', image: IMAGE, memoryMiB: 256 }),
      await d.client.sandboxes.create({ name: 'persisting', image: IMAGE, persist: ['/data'] }),
      await d.client.sandboxes.create({ name: 'disk', image: IMAGE, diskMiB: 64 }),
    ];
    assert.equal((await pool()).takes, taken);
    for (const s of other) {
      assert.ok(!memberIds.includes(s.id));
      assert.equal((await s.exec(['hostname'])).stdout.trim(), s.data.name);
      await s.destroy();
    }
    assert.deepEqual((await members()).sort(), memberIds.sort(), 'the pool was left alone');
  });

  it('attack: what one user left in a pooled sandbox never reaches another; a used member is destroyed, never returned', async () => {
    const alice = await d.client.sandboxes.get('alice');
    await alice.exec(['sh', '-c', 'echo alice-secret > /work/mark; echo x > /tmp/mark; (sleep 1000 &)']);
    const aliceId = alice.id;
    await alice.destroy();
    assert.deepEqual(await traces(aliceId), [], 'alice\'s sandbox is gone from the host');
    // Bob takes every member, twice over (refills included), and a one-shot run takes one too.
    const seen: string[] = [];
    for (let round = 0; round < 2; round++) {
      await ready(2);
      for (const name of [`bob-${round}-a`, `bob-${round}-b`]) {
        const bob = await d.client.sandboxes.create({ name, image: IMAGE });
        seen.push(bob.id);
        const r = await bob.exec(['sh', '-c', 'cat /work/mark /tmp/mark 2>&1; ps -o args | grep -c "sleep 100[0]"']);
        assert.match(r.stdout, /No such file[\s\S]*No such file[\s\S]*\n0\n$/, 'nothing of alice\'s');
        await bob.destroy();
      }
    }
    await ready(2);
    const takes = (await pool()).takes;
    const one = await d.client.run(['sh', '-c', 'hostname; cat /work/mark 2>&1'], { image: IMAGE });
    assert.equal((await pool()).takes, takes + 1, 'run took from the pool');
    assert.match(one.stdout, /^sb-[a-z0-9]+\n.*No such file/);
    assert.equal(new Set(seen).size, seen.length);
    assert.ok(!seen.includes(aliceId), 'alice\'s sandbox was never handed out again');
    for (const id of seen) assert.deepEqual(await traces(id), [], `used member ${id} left nothing`);
    await ready(2);
    for (const id of await members()) assert.ok(!seen.includes(id) && id !== aliceId, 'no used sandbox is back in the pool');
  });

  it('after a daemon crash the old members are removed (no container, cgroup or files) and the pool refills', async () => {
    const kept = await d.client.sandboxes.create({ name: 'kept', image: IMAGE, memoryMiB: 512 });
    await ready(2);
    const old = await members();
    await d.restart();
    for (const id of old) assert.deepEqual(await traces(id), [], `orphan member ${id} removed at startup`);
    assert.deepEqual(await listedIds(), [kept.id], 'the user\'s sandbox is kept, no member was adopted as a sandbox');
    await ready(2);
    assert.ok((await members()).every((id) => !old.includes(id)));
    await kept.destroy();
  });

  it('attack: renaming a taken member enters only its own PID 1: the pid file is checked against cgroup and start time, a recycled pid is refused', async () => {
    await ready(2);
    const named = await d.client.sandboxes.create({ name: 'renamed', image: IMAGE });
    assert.equal((await named.exec(['hostname'])).stdout, 'renamed\n');
    assert.doesNotMatch(d.log, /PID 1 from the pid file not in the sandbox/, 'PID 1 was recorded at start (no crun state needed)');
    // nook-init with the start time the daemon recorded: a process whose start time differs
    // (what a recycled pid would be) is refused, and nothing is renamed.
    const paths = resolvePaths({ NOOK_STATE_DIR: d.stateDir });
    const pid = (JSON.parse((await run(['crun', '--root', crunRoot, 'state', named.id])).stdout) as { pid: number }).pid;
    assert.equal((await run(['cat', `${paths.bundlesDir}/${named.id}/init.pid`])).stdout.trim(), String(pid), 'crun\'s pid file names PID 1');
    const ticks = (await run(['cat', `/proc/${pid}/stat`])).stdout.split(') ')[1]?.split(' ')[19] ?? '';
    const helper = `${paths.initDir}/nook-init`;
    const wrong = await run([helper, 'sethostname', String(pid), 'evil', String(Number(ticks) + 1)], { allowFail: true });
    assert.equal(wrong.code, 125);
    assert.match(wrong.stderr, /not the one expected/);
    assert.equal((await named.exec(['hostname'])).stdout, 'renamed\n', 'nothing renamed');
    const right = await run([helper, 'sethostname', String(pid), 'renamed2', ticks], { allowFail: true });
    assert.equal(right.code, 0, right.stderr);
    assert.equal((await named.exec(['hostname'])).stdout, 'renamed2\n');
    await named.destroy();
  });

  it('size 0 drains the pool before answering; a release leaves nothing behind', async () => {
    const old = await members();
    const r = await d.cli(['config', 'set', `pool.${IMAGE}`, '0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await members(), []);
    for (const id of old) assert.deepEqual(await traces(id), []);
    assert.equal((await d.cli(['config', 'get', `pool.${IMAGE}`])).stdout, `pool.${IMAGE} 0\n`);
    // Filled again, then the daemon is stopped with --release: the members go with it.
    await d.client.setPoolSize(IMAGE, 1);
    await ready(1);
    const stateDir = d.stateDir;
    const proc = d.proc;
    const exited = new Promise((res) => proc?.once('exit', res));
    await d.client.shutdown({ release: true });
    await exited;
    assert.deepEqual(await forceClean(stateDir), [], 'no container, mount, cgroup or loop device left');
    assert.ok(!existsSync(stateDir));
  });
});
