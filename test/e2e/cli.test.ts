import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NookClient } from '../../src/sdk/client.js';
import { run } from '../../src/util/proc.js';
import { CLI_MAIN, forceClean, startDaemon, TestDaemon, waitFor } from '../helpers/daemon.js';

describe('nook CLI end to end', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('runs real Python one-shot on the default image (the README job)', async () => {
    const r = await d.cli(['run', '--timeout', '10', '--', 'python3', '-c', 'print(2 + 2)']);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, '4\n');
    assert.equal(r.code, 0);
    // The answer comes before the destroy ends: right after, the sandbox may still be listed,
    // but only as destroying; then it is gone.
    const listed = async (): Promise<{ state: string }[]> => (JSON.parse((await d.cli(['ls', '--json'])).stdout) as { sandboxes: { state: string }[] }).sandboxes;
    assert.deepEqual((await listed()).filter((s) => s.state !== 'destroying'), [], 'run leaves no live sandbox');
    await waitFor(async () => (await listed()).length === 0, 30_000, 'the run\'s sandbox to be destroyed');
  });

  it('walks a persistent sandbox through its lifecycle', async () => {
    const created = await d.cli(['create', '--name', 'agent', '--ttl', '1h', '--memory-mib', '512', '--label', 'team=x', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const sb = JSON.parse(created.stdout) as { name: string; state: string; limits: { memoryMiB: number }; expiresAt: string; image: string };
    assert.equal(sb.state, 'running');
    assert.equal(sb.image, 'python');
    assert.equal(sb.limits.memoryMiB, 512);
    assert.ok(Date.parse(sb.expiresAt) - Date.now() > 3_500_000);

    const w = await d.cli(['exec', 'agent', '--timeout', '120', '--', 'sh', '-lc', 'echo hi > /work/x']);
    assert.equal(w.code, 0, w.stderr);
    assert.equal((await d.cli(['stop', 'agent'])).stdout, 'agent paused\n');
    assert.equal((await d.cli(['resume', 'agent'])).stdout, 'agent running\n');
    const read = await d.cli(['exec', 'agent', '--', 'cat', '/work/x']);
    assert.equal(read.stdout, 'hi\n');

    const table = await d.cli(['ls']);
    assert.match(table.stdout, /^NAME\s+STATE/);
    assert.match(table.stdout, /agent\s+running\s+python/);
    assert.match((await d.cli(['ls', '--label', 'team=y'])).stdout, /^NAME[^\n]*\n$/);
    const inspect = JSON.parse((await d.cli(['inspect', 'agent', '--json'])).stdout) as { labels: Record<string, string> };
    assert.deepEqual(inspect.labels, { team: 'x' });

    const py = await d.cli(['exec', 'agent', '--', 'python3', '-c', 'import sys; print(sys.version_info[0])']);
    assert.equal(py.stdout, '3\n');
    assert.equal((await d.cli(['destroy', 'agent'])).stdout, 'agent destroyed\n');
  });

  it('exits with the command\'s code, 124 on timeout, and streams stdout and stderr apart', async () => {
    await d.cli(['create', '--name', 'codes', '--image', 'minimal']);
    const r = await d.cli(['exec', 'codes', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    assert.equal(r.code, 7);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    const t = await d.cli(['exec', 'codes', '--timeout', '1s', '--', 'sleep', '30']);
    assert.equal(t.code, 124);
    assert.match(t.stderr, /timed out/);
    const j = JSON.parse((await d.cli(['exec', 'codes', '--json', '--max-output', '3', '--', 'echo', 'truncated'])).stdout) as { stdout: string; truncated: boolean };
    assert.deepEqual([j.stdout, j.truncated], ['tru', true]);
    const stdin = await d.cli(['exec', 'codes', '-i', '--', 'wc', '-c'], { input: 'four' });
    assert.equal(stdin.stdout.trim(), '4');
    await d.cli(['destroy', 'codes']);
  });

  it('names the fix in errors, and gives the API error object with --json', async () => {
    const r = await d.cli(['exec', 'missing', '--', 'true']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no sandbox named missing \[SANDBOX_NOT_FOUND\]/);
    assert.match(r.stderr, /hint: .*nook ls/);
    const j = await d.cli(['inspect', 'missing', '--json']);
    assert.equal(j.code, 1);
    assert.equal((JSON.parse(j.stderr) as { code: string }).code, 'SANDBOX_NOT_FOUND');
    const bad = await d.cli(['create', '--name', 'x', '--ttl', 'soon']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not a duration/);
    const nocmd = await d.cli(['exec', 'x']);
    assert.match(nocmd.stderr, /no command given/);
  });

  it('snapshots, restores, forks, commits, exports and imports', async () => {
    assert.equal((await d.cli(['create', '--name', 'st', '--image', 'minimal'])).code, 0);
    await d.cli(['exec', 'st', '--', 'sh', '-c', 'echo v1 > /work/f']);
    const snap = await d.cli(['snapshot', 'create', 'st', '--name', 'after deps installed']);
    assert.match(snap.stdout, /^st@after deps installed snap_\w+ \(/);
    await d.cli(['exec', 'st', '--', 'sh', '-c', 'echo v2 > /work/f']);
    const ls = await d.cli(['snapshot', 'ls', 'st']);
    assert.match(ls.stdout, /^SANDBOX\s+NAME/);
    assert.match(ls.stdout, /st\s+after deps installed/);
    assert.equal((await d.cli(['create', '--name', 'st-restored', '--snapshot', 'st@after deps installed'])).stdout, 'st-restored\n');
    assert.equal((await d.cli(['exec', 'st-restored', '--', 'cat', '/work/f'])).stdout, 'v1\n');
    assert.equal((await d.cli(['fork', 'st', '--name', 'st-b', '--count', '2'])).stdout, 'st-b-1\nst-b-2\n');
    assert.equal((await d.cli(['exec', 'st-b-2', '--', 'cat', '/work/f'])).stdout, 'v2\n');
    assert.match((await d.cli(['commit', 'st', '--image', 'st-image'])).stdout, /^st-image img_/);
    const tarFile = join(d.stateDir, 'st-image.oci.tar');
    assert.match((await d.cli(['image', 'export', 'st-image', '-o', tarFile])).stdout, /st-image\.oci\.tar [\d.]+ MiB/);
    assert.match((await d.cli(['image', 'import', tarFile, '--name', 'st-image-2'])).stdout, /^st-image-2 img_/);
    const destroyed = await d.cli(['destroy', 'st']);
    assert.match(destroyed.stdout, /st destroyed \(1 snapshot\(s\) kept: after deps installed/);
    assert.equal((await d.cli(['snapshot', 'rm', 'st', 'after deps installed'])).stdout, 'st@after deps installed deleted\n');
    await d.cli(['destroy', 'st-restored', 'st-b-1', 'st-b-2']);
    await d.cli(['image', 'rm', 'st-image', 'st-image-2']);
  });

  it('manages network policy and exposures', async () => {
    await d.cli(['create', '--name', 'netc', '--image', 'minimal', '--allow-host', 'pypi.org']);
    const show = JSON.parse((await d.cli(['network', 'show', 'netc', '--json'])).stdout) as { policy: { mode: string; allow: string[] } };
    assert.deepEqual(show.policy, { mode: 'allowlist', allow: ['pypi.org'] });
    assert.match((await d.cli(['network', 'allow', 'netc', '*.pythonhosted.org'])).stdout, /allow: pypi\.org, \*\.pythonhosted\.org/);
    assert.match((await d.cli(['network', 'deny', 'netc', 'pypi.org'])).stdout, /allow: \*\.pythonhosted\.org/);
    const bad = await d.cli(['network', 'allow', 'netc', 'not a host']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /is not a host pattern \[INVALID_ARGUMENT\]/);
    const url = (await d.cli(['expose', 'netc', '8000'])).stdout.trim();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=\S+$/);
    assert.match((await d.cli(['expose', 'ls', 'netc'])).stdout, /8000\s+http:\/\/127\.0\.0\.1/);
    assert.equal((await d.cli(['expose', 'rm', 'netc', '8000'])).stdout, 'netc:8000 no longer exposed\n');
    await d.cli(['destroy', 'netc']);
  });

  it('manages images', async () => {
    const ls = JSON.parse((await d.cli(['image', 'ls', '--json'])).stdout) as { images: { name: string }[] };
    assert.ok(ls.images.some((i) => i.name === 'python'));
    const built = await d.cli(['image', 'build', '--preset', 'minimal', '--name', 'tiny', '--json']);
    assert.equal(built.code, 0, built.stderr);
    assert.equal((JSON.parse(built.stdout) as { name: string }).name, 'tiny');
    assert.equal((await d.cli(['image', 'rm', 'tiny'])).stdout, 'tiny removed\n');
  });
});

describe('nook CLI starts the daemon on demand', () => {
  const stateDir = mkdtempSync('/tmp/nookt-auto-');
  const env = { NOOK_STATE_DIR: stateDir, NOOK_SOCKET: join(stateDir, 'nook.sock') };

  after(async () => {
    await new NookClient({ socketPath: env.NOOK_SOCKET }).shutdown({ release: true }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await forceClean(stateDir), [], 'the daemon released everything');
  });

  it('starts nookd in the background when the socket does not answer', async () => {
    const d = new TestDaemon(stateDir);
    const r = await d.cli(['status', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const h = JSON.parse(r.stdout) as { ok: boolean; stateDir: string; pid: number };
    assert.equal(h.ok, true);
    assert.equal(h.stateDir, stateDir);
    assert.ok(h.pid > 0);
  });
});

describe('nook CLI starts the daemon when the socket is stale', () => {
  const stateDir = mkdtempSync('/tmp/nookt-stale-');
  const env = { NOOK_STATE_DIR: stateDir, NOOK_SOCKET: join(stateDir, 'nook.sock') };

  after(async () => {
    await new NookClient({ socketPath: env.NOOK_SOCKET }).shutdown({ release: true }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await forceClean(stateDir), [], 'the daemon released everything');
  });

  it('a socket file nothing listens on (a killed daemon): the first call starts nookd and is made again', async () => {
    // A listener killed with SIGKILL leaves its socket file behind: connecting gets ECONNREFUSED.
    const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(env.NOOK_SOCKET)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => holder.stdout.once('data', r));
    const gone = new Promise((r) => holder.once('exit', r));
    holder.kill('SIGKILL');
    await gone;
    assert.ok(existsSync(env.NOOK_SOCKET), 'the stale socket file is there');

    const r = await new TestDaemon(stateDir).cli(['ls', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { sandboxes: [] });
    assert.equal((await new NookClient({ socketPath: env.NOOK_SOCKET }).health()).stateDir, stateDir);
  });
});

describe('nook daemon runs the installed nookd in the foreground', () => {
  const stateDir = mkdtempSync('/tmp/nookt-fg-');
  const env = { ...process.env, NOOK_STATE_DIR: stateDir, NOOK_SOCKET: join(stateDir, 'nook.sock'), NOOK_POOL_SIZE_GIB: '8' };
  let cli: ChildProcess | undefined;

  after(async () => {
    if (cli && cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
    // SIGTERM stops nookd without release (the pool stays mounted, as for any plain stop): clean it up.
    const leaks = await forceClean(stateDir);
    assert.deepEqual(leaks.filter((l) => !/^(mount|loop) /.test(l)), [], 'no container or cgroup left');
  });

  it('as a child with inherited stdio; SIGTERM reaches it and its exit status comes back', async () => {
    const proc = spawn(process.execPath, [CLI_MAIN, 'daemon'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    cli = proc;
    let out = '';
    proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
    proc.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const client = new NookClient({ socketPath: env.NOOK_SOCKET });
    await waitFor(() => client.health().then(() => true, () => false), 30_000, 'nookd to answer');
    const h = await client.health();
    assert.notEqual(h.pid, proc.pid, 'nookd is its own process, not the CLI');
    assert.ok(existsSync(`/proc/${h.pid}`));
    await waitFor(() => out.includes('nookd ready'), 5_000, 'nookd to log through the inherited stdio');

    // A second `nook daemon` on the same socket: nookd refuses, and its exit status is the CLI's.
    const second = await run([process.execPath, CLI_MAIN, 'daemon'], { env, allowFail: true });
    assert.equal(second.code, 1);
    assert.match(second.stderr, /a daemon already answers/);

    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0, out);
    assert.ok(!existsSync(`/proc/${h.pid}`), 'the signal reached nookd, which stopped');
    assert.ok(!existsSync(env.NOOK_SOCKET), 'and removed its socket');
  });
});
