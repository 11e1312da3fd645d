import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

describe('isolation (real crun)', () => {
  let d: TestDaemon;
  let sb: Sandbox;

  before(async () => {
    d = await startDaemon();
    sb = await d.client.sandboxes.create({ name: 'iso', image: 'minimal' });
  });
  after(async () => d.teardown());

  it('maps sandbox root to an unprivileged host range', async () => {
    const r = await sb.exec(['cat', '/proc/self/uid_map']);
    const [inside, outside, size] = r.stdout.trim().split(/\s+/).map(Number);
    assert.equal(inside, 0);
    assert.ok((outside ?? 0) >= 100_000, `root maps to host uid ${outside}`);
    assert.ok((size ?? 0) <= 65_536);
    assert.equal((await sb.exec(['id', '-u'])).stdout.trim(), '0');
  });

  it('has only a loopback interface', async () => {
    const r = await sb.exec(['ls', '/sys/class/net']);
    assert.deepEqual(r.stdout.trim().split(/\s+/), ['lo']);
    const ping = await sb.exec(['sh', '-c', 'echo x | nc -w 1 1.1.1.1 80'], { timeoutMs: 5000 });
    assert.notEqual(ping.exitCode, 0, 'a connection off the host must fail');
  });

  it('runs exec\'d processes with seccomp and no_new_privs', async () => {
    const r = await sb.exec(['grep', '-E', '^(Seccomp|NoNewPrivs):', '/proc/self/status']);
    assert.match(r.stdout, /NoNewPrivs:\s+1/);
    assert.match(r.stdout, /Seccomp:\s+2/);
  });

  it('cannot mount, unshare or load keys', async () => {
    const mount = await sb.exec(['mount', '-t', 'tmpfs', 'x', '/mnt']);
    assert.notEqual(mount.exitCode, 0);
    const unshare = await sb.exec(['unshare', '-U', 'true']);
    assert.notEqual(unshare.exitCode, 0);
    assert.match(unshare.stderr, /not permitted/i);
  });

  it('sees no host processes', async () => {
    const r = await sb.exec(['ps', '-o', 'pid,args']);
    const lines = r.stdout.trim().split('\n').slice(1);
    assert.ok(lines.length <= 3, `sandbox sees ${lines.length} processes:\n${r.stdout}`);
    assert.match(lines[0] ?? '', /^\s*1\s+\/\.nook\/nook-init init/);
    assert.doesNotMatch(r.stdout, /node|nookd|crun/);
  });

  it('masks sensitive /proc paths and keeps /proc/sys read-only', async () => {
    const kcore = await sb.exec(['sh', '-c', 'cat /proc/kcore | wc -c']);
    assert.equal(kcore.stdout.trim(), '0', `kcore gave ${kcore.stdout} ${kcore.stderr}`);
    const sysrq = await sb.exec(['sh', '-c', 'echo h > /proc/sysrq-trigger']);
    assert.notEqual(sysrq.exitCode, 0);
    const sys = await sb.exec(['sh', '-c', 'echo 1 > /proc/sys/kernel/panic']);
    assert.notEqual(sys.exitCode, 0);
  });

  it('gives each sandbox its own filesystem', async () => {
    const other = await d.client.sandboxes.create({ name: 'iso-2', image: 'minimal' });
    await sb.exec(['sh', '-c', 'echo secret > /work/only-here']);
    const r = await other.exec(['ls', '/work']);
    assert.equal(r.stdout.trim(), '');
    await other.destroy();
  });
});
