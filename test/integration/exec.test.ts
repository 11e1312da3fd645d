import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { hostProcessesWith, startDaemon, type TestDaemon } from '../helpers/daemon.js';

/** A shell command line that runs until killed and carries `marker` in its own argv. */
function spin(marker: string): string {
  return `sh -c 'while :; do sleep 1; done' ${marker}`;
}

describe('exec (real crun)', () => {
  let d: TestDaemon;
  let sb: Sandbox;

  before(async () => {
    d = await startDaemon();
    sb = await d.client.sandboxes.create({ name: 'ex', image: 'minimal', env: { FROM_CREATE: 'yes' } });
  });
  after(async () => d.teardown());

  it('returns exit code, stdout and stderr', async () => {
    const r = await sb.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.exitCode, 3);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal(r.timedOut, false);
    assert.equal(r.truncated, false);
  });

  it('streams output as it is produced', async () => {
    const seen: { at: number; text: string }[] = [];
    const start = Date.now();
    await sb.exec(['sh', '-c', 'echo first; sleep 1; echo second'], { onStdout: (b) => seen.push({ at: Date.now() - start, text: b.toString() }) });
    assert.equal(seen.map((s) => s.text).join(''), 'first\nsecond\n');
    assert.ok((seen[0]?.at ?? Infinity) < 800, `first line arrived after ${seen[0]?.at} ms, not as it was written`);
  });

  it('kills the whole process tree on timeout, daemonised children included', async () => {
    const marker = `marker-${Date.now()}`;
    const r = await sb.exec(['sh', '-c', `(setsid ${spin(marker)} &); ${spin(marker)} & echo started; sleep 302`], { timeoutMs: 1000 });
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, 124);
    assert.equal(r.stdout, 'started\n');
    assert.ok(r.durationMs >= 1000 && r.durationMs < 5000, `took ${r.durationMs} ms`);
    const ps = await sb.exec(['ps', '-o', 'args']);
    assert.doesNotMatch(ps.stdout, new RegExp(marker));
    assert.deepEqual(hostProcessesWith(marker), []);
  });

  it('leaves nothing running after a command ends', async () => {
    const marker = `left-${Date.now()}`;
    const r = await sb.exec(['sh', '-c', `${spin(marker)} & sleep 0.5; echo bg`]);
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'bg\n');
    assert.deepEqual(hostProcessesWith(marker), []);
  });

  it('bounds captured output and flags it', async () => {
    const r = await sb.exec(['sh', '-c', 'head -c 100000 /dev/zero | tr "\\0" a'], { maxOutputBytes: 1000 });
    assert.equal(r.truncated, true);
    assert.equal(r.stdout.length, 1000);
    assert.equal(r.exitCode, 0);
  });

  it('passes stdin, env, cwd and user', async () => {
    assert.equal((await sb.exec(['cat'], { stdin: 'from stdin' })).stdout, 'from stdin');
    assert.equal((await sb.exec(['sh', '-c', 'echo $FOO-$FROM_CREATE'], { env: { FOO: 'bar' } })).stdout, 'bar-yes\n');
    assert.equal((await sb.exec(['pwd'])).stdout, '/work\n');
    assert.equal((await sb.exec(['pwd'], { cwd: '/tmp' })).stdout, '/tmp\n');
    assert.equal((await sb.exec(['id', '-un'], { user: 'nobody' })).stdout, 'nobody\n');
    assert.equal((await sb.exec(['id', '-u'], { user: '1234:1234' })).stdout, '1234\n');
    const bad = await sb.exec(['id'], { user: 'nosuchuser' });
    assert.equal(bad.exitCode, 125);
    assert.match(bad.stderr, /does not exist/);
  });

  it('reports a missing command as 127', async () => {
    const r = await sb.exec(['/no/such/binary']);
    assert.equal(r.exitCode, 127);
    assert.match(r.stderr, /No such file/);
  });

  it('reports death by signal', async () => {
    const r = await sb.exec(['sh', '-c', 'kill -9 $$']);
    assert.equal(r.exitCode, 137);
    assert.equal(r.signal, 'SIGKILL');
  });

  it('kills the command when the caller aborts', async () => {
    const marker = `abort-${Date.now()}`;
    const controller = new AbortController();
    setTimeout(() => {
      assert.notDeepEqual(hostProcessesWith(marker), [], 'the command should be running before the abort');
      controller.abort();
    }, 1000);
    await assert.rejects(sb.exec(['sh', '-c', spin(marker)], { signal: controller.signal }));
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(hostProcessesWith(marker), []);
  });

  it('runs concurrent execs independently', async () => {
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => sb.exec(['sh', '-c', `sleep 0.2; echo ${i}`])));
    assert.deepEqual(results.map((r) => r.stdout.trim()), ['1', '2', '3', '4', '5']);
  });
});
