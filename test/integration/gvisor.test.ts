import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { which } from '../../src/util/proc.js';
import type { Sandbox } from '../../src/sdk/client.js';

const HAS_RUNSC = (await which('runsc')) !== null;
const skip = HAS_RUNSC ? false : 'runsc (gVisor) is not installed: apt-get install runsc';

/** A shell loop that counts in its own memory (never reading the file back) and shows it. */
const COUNTER = 'tok=$RANDOM$RANDOM; i=0; (while true; do i=$((i+1)); echo "$tok $i" > /tmp/c; sleep 0.05; done) >/dev/null 2>&1 </dev/null &';

async function counter(sb: Sandbox): Promise<{ tok: string; n: number }> {
  const [tok, n] = (await sb.exec(['cat', '/tmp/c'])).stdout.trim().split(' ');
  return { tok: tok ?? '', n: Number(n) };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('gVisor runtime (real runsc, real btrfs)', { skip }, () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('runs a sandbox on gVisor: exec, files both ways, stop and resume, inspect says gvisor', async () => {
    const sb = await d.client.sandboxes.create({ name: 'gv-life', image: 'minimal', runtime: 'gvisor' });
    assert.equal(sb.data.runtime, 'gvisor');
    assert.equal((await d.client.sandboxes.list()).find((s) => s.name === 'gv-life')?.data.runtime, 'gvisor');
    // The guest kernel is gVisor's sentry, not the host's.
    const dmesg = await sb.exec(['dmesg']);
    assert.match(dmesg.stdout, /gVisor/);
    const r = await sb.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual([r.stdout, r.stderr, r.exitCode], ['out\n', 'err\n', 3]);
    await sb.files.write('/work/in.txt', 'from host');
    assert.equal((await sb.exec(['cat', '/work/in.txt'])).stdout, 'from host');
    await sb.exec(['sh', '-c', 'echo from guest > /work/out.txt']);
    assert.equal((await sb.files.read('/work/out.txt')).toString(), 'from guest\n');
    await sb.stop();
    assert.equal(sb.data.state, 'paused');
    assert.equal(sb.data.memory ?? null, null);
    // exec resumes a paused sandbox; the files are there.
    assert.equal((await sb.exec(['cat', '/work/out.txt'])).stdout, 'from guest\n');
    await sb.destroy();
  });

  it('a terminal and a background process work on gVisor', async () => {
    const sb = await d.client.sandboxes.create({ name: 'gv-term', image: 'minimal', runtime: 'gvisor' });
    let screen = '';
    const t = await sb.pty.create({ cols: 90, rows: 30, onData: (b: Buffer) => (screen += b.toString()) });
    const waitScreen = async (re: RegExp): Promise<void> => {
      for (let i = 0; i < 200 && !re.test(screen); i++) await sleep(25);
      assert.match(screen, re);
    };
    await waitScreen(/# (\x1b\[6n)?$/);
    t.write('stty size; exit 4\n');
    await waitScreen(/30 90/);
    assert.deepEqual(await t.wait(), { exitCode: 4, signal: null });
    const p = await sb.processes.spawn(['sh', '-c', 'echo from-bg; sleep 0.2; echo done-bg']);
    const ended = await p.wait();
    assert.equal(ended.exitCode, 0);
    let out = '';
    for await (const e of sb.processes.logs(ended.id)) if (e.type === 'stdout') out += Buffer.from(e.data, 'base64').toString();
    assert.match(out, /from-bg[\s\S]*done-bg/);
    await sb.destroy();
  });

  it('survives a daemon crash: the restarted daemon still routes to gVisor, and a cold-stopped sandbox resumes with its memory', async () => {
    await d.client.sandboxes.create({ name: 'gv-crash', image: 'minimal', runtime: 'gvisor' });
    const cold = await d.client.sandboxes.create({ name: 'gv-crash-cold', image: 'minimal', runtime: 'gvisor' });
    await cold.exec(['sh', '-c', COUNTER]);
    await sleep(300);
    await cold.stop({ memory: true });
    await d.restart();
    const again = await d.client.sandboxes.get('gv-crash');
    assert.equal(again.data.state, 'running');
    assert.equal((await again.exec(['echo', 'still'])).stdout, 'still\n');
    const c = await d.client.sandboxes.get('gv-crash-cold');
    assert.ok(c.data.memory);
    await c.resume();
    assert.ok((await counter(c)).n > 2);
    await again.destroy();
    await c.destroy();
  });

  it('the CLI: create --runtime gvisor, stop --memory, ls shows both, resume, snapshot create --memory, cp a directory both ways', async () => {
    const created = await d.cli(['create', '--name', 'gv-cli', '--image', 'minimal', '--runtime', 'gvisor', '--json']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal((JSON.parse(created.stdout) as { runtime: string }).runtime, 'gvisor');
    const bad = await d.cli(['create', '--runtime', 'kvm']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /crun, gvisor/);
    const host = mkdtempSync('/tmp/nook-gv-cp-');
    writeFileSync(join(host, 'a.txt'), 'dir copy');
    try {
      assert.equal((await d.cli(['cp', host, 'gv-cli:/work/d'])).code, 0);
      assert.equal((await d.cli(['exec', 'gv-cli', '--', 'cat', '/work/d/a.txt'])).stdout, 'dir copy');
      assert.equal((await d.cli(['cp', 'gv-cli:/work/d', join(host, 'back')])).code, 0);
      assert.equal(readFileSync(join(host, 'back', 'a.txt'), 'utf8'), 'dir copy');
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
    const stopped = await d.cli(['stop', 'gv-cli', '--memory', '--json']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.ok(((JSON.parse(stopped.stdout) as { memory?: { sizeBytes: number } }).memory?.sizeBytes ?? 0) > 0);
    const ls = await d.cli(['ls']);
    assert.match(ls.stdout, /gv-cli\s+paused\+memory\s+minimal\s+gvisor/);
    assert.equal((await d.cli(['resume', 'gv-cli'])).code, 0);
    const snap = await d.cli(['snapshot', 'create', 'gv-cli', '--name', 'warm', '--memory', '--json']);
    assert.equal(snap.code, 0, snap.stderr);
    assert.ok(((JSON.parse(snap.stdout) as { memoryBytes?: number }).memoryBytes ?? 0) > 0);
    assert.equal((await d.cli(['destroy', 'gv-cli', '--with-snapshots'])).code, 0);
  });

  it('a profile can make gVisor the default of its sandboxes', async () => {
    await d.client.profiles.save('untrusted', { runtime: 'gvisor' });
    await d.client.profiles.publish('untrusted');
    const sb = await d.client.sandboxes.create({ name: 'gv-prof', image: 'minimal', profile: 'untrusted' });
    assert.equal(sb.data.runtime, 'gvisor');
    assert.match((await sb.exec(['dmesg'])).stdout, /gVisor/);
    await sb.destroy();
  });

  it('a timed-out command loses its whole process tree, and the output is bounded', async () => {
    const sb = await d.client.sandboxes.create({ name: 'gv-tree', image: 'minimal', runtime: 'gvisor' });
    const r = await sb.exec(['sh', '-c', 'sleep 300 & sleep 300 & wait'], { timeoutMs: 500 });
    assert.equal(r.timedOut, true);
    const ps = await sb.exec(['ps', '-o', 'comm']);
    assert.doesNotMatch(ps.stdout, /sleep/);
    const big = await sb.exec(['sh', '-c', 'head -c 3000000 /dev/zero'], { maxOutputBytes: 1000 });
    assert.equal(big.truncated, true);
    assert.ok(big.stdout.length <= 1000);
    await sb.destroy();
  });

  it('answers NOT_SUPPORTED with a hint for what gVisor lacks here, and leaves nothing half-made', async () => {
    await rejectsWith(d.client.sandboxes.create({ name: 'gv-egress', image: 'minimal', runtime: 'gvisor', network: 'allowlist', allowHosts: ['example.test'] }), 'NOT_SUPPORTED', /egress/);
    assert.equal((await d.client.sandboxes.list()).some((s) => s.name === 'gv-egress'), false);
    const sb = await d.client.sandboxes.create({ name: 'gv-ns', image: 'minimal', runtime: 'gvisor' });
    const e = await rejectsWith(sb.expose(8080), 'NOT_SUPPORTED');
    assert.match(e.hint ?? '', /crun/);
    assert.equal((await sb.exec(['true'])).exitCode, 0);
    await sb.destroy();
  });

  it('crun sandboxes answer NOT_SUPPORTED to --memory, naming --runtime gvisor', async () => {
    const sb = await d.client.sandboxes.create({ name: 'crun-mem', image: 'minimal' });
    assert.equal(sb.data.runtime, 'crun');
    const e1 = await rejectsWith(sb.snapshots.create({ name: 's', memory: true }), 'NOT_SUPPORTED');
    assert.match(e1.hint ?? '', /--runtime gvisor/);
    const e2 = await rejectsWith(sb.stop({ memory: true }), 'NOT_SUPPORTED');
    assert.match(e2.hint ?? '', /--runtime gvisor/);
    assert.equal((await sb.refresh()).data.state, 'running');
    await sb.destroy();
  });

  it('cold stop keeps process memory: resume continues the counter where it was', async () => {
    const sb = await d.client.sandboxes.create({ name: 'gv-cold', image: 'minimal', runtime: 'gvisor' });
    await sb.exec(['sh', '-c', COUNTER]);
    await sleep(500);
    await sb.stop({ memory: true });
    assert.equal(sb.data.state, 'paused');
    assert.ok((sb.data.memory?.sizeBytes ?? 0) > 0, 'inspect says how much memory it holds');
    const image = join(d.stateDir, 'memory', sb.data.id);
    assert.equal(statSync(image).mode & 0o777, 0o700);
    for (const f of readdirSync(image)) assert.equal(statSync(join(image, f)).mode & 0o777, 0o600);
    // Files of a paused sandbox read without starting it would show the saved instant.
    await sleep(300);
    await sb.resume();
    const a = await counter(sb);
    await sleep(300);
    const b = await counter(sb);
    assert.ok(a.n > 3, `the counter went on from its saved value (${a.n}), not from 0`);
    assert.equal(a.tok, b.tok, 'the same process, with its in-memory token, goes on');
    assert.ok(b.n > a.n);
    assert.equal((await sb.refresh()).data.memory ?? null, null, 'the image is consumed by the resume');
    await sb.destroy();
    assert.equal(existsSync(image), false);
  });

  it('a memory snapshot restores into a sandbox whose processes continue from that instant', async () => {
    const sb = await d.client.sandboxes.create({ name: 'gv-snap', image: 'minimal', runtime: 'gvisor' });
    await sb.exec(['sh', '-c', COUNTER]);
    await sleep(400);
    const before = await counter(sb);
    const snap = await sb.snapshots.create({ name: 'm', memory: true });
    assert.ok((snap.memoryBytes ?? 0) > 0);
    // The source went on too, with the same process.
    const src = await counter(sb);
    assert.equal(src.tok, before.tok);
    assert.ok(src.n >= before.n);
    const restored = await d.client.sandboxes.create({ name: 'gv-snap-r', snapshot: 'gv-snap@m' });
    assert.equal(restored.data.runtime, 'gvisor');
    const r = await counter(restored);
    assert.equal(r.tok, before.tok, 'the restored process is the saved one');
    assert.ok(r.n >= before.n);
    const retained = await d.client.retained();
    assert.ok(retained.some((i) => i.kind === 'memory' && i.id === snap.id), 'nook retained lists the memory image');
    await restored.destroy();
    await sb.destroy({ withSnapshots: true });
    assert.equal(existsSync(join(d.stateDir, 'memory', snap.id)), false);
  });

  it('fork --count 2 of a running gVisor sandbox: both continue from the same instant, then diverge', async () => {
    const sb = await d.client.sandboxes.create({ name: 'gv-src', image: 'minimal', runtime: 'gvisor' });
    await sb.exec(['sh', '-c', COUNTER]);
    await sleep(400);
    const at = await counter(sb);
    const forks = await sb.fork({ name: 'gv-f', count: 2 });
    assert.equal(forks.length, 2);
    const [f1, f2] = forks as [Sandbox, Sandbox];
    const c1 = await counter(f1);
    const c2 = await counter(f2);
    assert.equal(c1.tok, at.tok);
    assert.equal(c2.tok, at.tok);
    assert.ok(c1.n >= at.n && c2.n >= at.n);
    await f1.exec(['sh', '-c', 'echo one > /tmp/mine']);
    assert.notEqual((await f2.exec(['cat', '/tmp/mine'])).exitCode, 0, 'the forks diverge: one does not see the other');
    assert.equal((await counter(sb)).tok, at.tok, 'the source goes on with its own process');
    for (const f of forks) await f.destroy();
    await sb.destroy();
  });

  it('refuses a checkpoint while a background process is attached, and the sandbox runs on', async () => {
    const sb = await d.client.sandboxes.create({ name: 'gv-busy', image: 'minimal', runtime: 'gvisor' });
    await sb.processes.start(['sleep', '300']);
    await rejectsWith(sb.snapshots.create({ name: 'm', memory: true }), 'INVALID_STATE', /attached/);
    assert.equal((await sb.refresh()).data.state, 'running');
    assert.equal((await sb.exec(['echo', 'alive'])).stdout, 'alive\n');
    await sb.destroy();
  });

  it('a damaged memory image fails resume with a clear error; the sandbox stays paused with its files', async () => {
    const sb = await d.client.sandboxes.create({ name: 'gv-damaged', image: 'minimal', runtime: 'gvisor' });
    await sb.exec(['sh', '-c', `echo kept > /work/f; ${COUNTER}`]);
    await sb.stop({ memory: true });
    truncateSync(join(d.stateDir, 'memory', sb.data.id, 'checkpoint.img'), 1000);
    await rejectsWith(sb.resume(), 'RUNTIME_ERROR', /memory .*could not be restored/);
    assert.equal((await sb.refresh()).data.state, 'paused');
    // The next resume starts afresh on the kept files.
    await sb.resume();
    assert.equal((await sb.exec(['cat', '/work/f'])).stdout, 'kept\n');
    await sb.destroy();
  });

  it('a symlink planted in place of the agent socket never steers the daemon to a host socket', async () => {
    const target = join(d.stateDir, 'target.sock');
    let connections = 0;
    const server = createServer((c) => {
      connections++;
      c.destroy();
    });
    await new Promise<void>((r) => server.listen(target, r));
    try {
      const sb = await d.client.sandboxes.create({ name: 'gv-link', image: 'minimal', runtime: 'gvisor' });
      // Root in the sandbox makes entries in the directory it shares with the host: a link
      // it plants there is a real host symlink, pointing wherever it likes.
      await sb.exec(['ln', '-s', target, '/.nook-run/evil']);
      const runDir = join(d.stateDir, 'run', 'bundles-gvisor', sb.data.id, 'run');
      assert.ok(lstatSync(join(runDir, 'evil')).isSymbolicLink());
      // It cannot touch the bound socket, but a restore gives it a window (a fresh directory,
      // init not yet bound again) in which the link can take the socket's name: do that.
      renameSync(join(runDir, 'evil'), join(runDir, 'agent.sock'));
      await rejectsWith(sb.exec(['true']), 'RUNTIME_ERROR', /not a socket/);
      assert.equal(connections, 0, 'the daemon connected to the host socket the sandbox named');
      await sb.destroy();
    } finally {
      server.close();
      if (existsSync(target)) unlinkSync(target);
    }
  });
});

describe('a host without runsc', { skip }, () => {
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon({ NOOK_RUNSC_PATH: 'none' });
  });
  after(async () => d.teardown());

  it('answers NOT_SUPPORTED to --runtime gvisor with the install hint, creating nothing', async () => {
    const e = await rejectsWith(d.client.sandboxes.create({ name: 'want-gv', image: 'minimal', runtime: 'gvisor' }), 'NOT_SUPPORTED');
    assert.match(e.hint ?? '', /apt-get install runsc/);
    assert.equal((await d.client.sandboxes.list()).length, 0);
  });
});
