/**
 * E2B's own SDK (npm e2b, unmodified) against a real nookd with NOOK_E2B_LISTEN: the control
 * plane, commands, PTY, files, listing, timeouts, pause/resume and getHost.
 */
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { CommandExitError, Sandbox, TimeoutError, NotFoundError, SandboxNotFoundError } from 'e2b';
import type { TestDaemon } from '../helpers/daemon.js';
import { startE2bDaemon } from '../helpers/e2b.js';

describe('E2B SDK on nook', () => {
  let d: TestDaemon;
  let url: string;
  let opts: { apiUrl: string; sandboxUrl: string; apiKey: string };
  let sbx: Sandbox;

  before(async () => {
    ({ d, url, opts } = await startE2bDaemon());
    sbx = await Sandbox.create({ ...opts, metadata: { suite: 'e2b', run: 'one' } });
  });
  after(async () => {
    await d.teardown();
  });

  it('creates a base sandbox: an id of 20 [a-z0-9], bash, python3, user `user` in /home/user, shown by nook ls', async () => {
    assert.match(sbx.sandboxId, /^[a-z0-9]{20}$/);
    const r = await sbx.commands.run('echo "$(id -un):$(id -u):$(pwd):$HOME"; python3 -c "print(6*7)"; command -v sudo');
    assert.equal(r.exitCode, 0);
    assert.match(r.stdout, /^user:1000:\/home\/user:\/home\/user\n42\n\/usr\/bin\/sudo\n$/);
    const root = await sbx.commands.run('id -u', { user: 'root' });
    assert.equal(root.stdout.trim(), '0');
    const ls = await d.cli(['ls', '--json']);
    const parsed = JSON.parse(ls.stdout) as { name: string; labels: Record<string, string> }[] | { sandboxes: { name: string; labels: Record<string, string> }[] };
    const listed = (Array.isArray(parsed) ? parsed : parsed.sandboxes).find((s) => s.name === sbx.sandboxId);
    assert.equal(listed?.labels['e2b.id'], sbx.sandboxId);
    assert.equal(listed?.labels['e2b.meta.suite'], 'e2b');
    const info = await sbx.getInfo();
    assert.equal(info.templateId, 'base');
    assert.deepEqual(info.metadata, { suite: 'e2b', run: 'one' });
    assert.equal(info.state, 'running');
    assert.equal(await sbx.isRunning(), true);
  });

  it('runs commands: streamed output, env vars, cwd, non-zero exit as CommandExitError', async () => {
    const out: string[] = [];
    const r = await sbx.commands.run('echo a; echo b >&2; echo "$GREETING"', { envs: { GREETING: 'hello' }, onStdout: (s) => void out.push(s), cwd: '/tmp' });
    assert.equal(r.stdout, 'a\nhello\n');
    assert.equal(r.stderr, 'b\n');
    assert.equal(out.join(''), 'a\nhello\n');
    await assert.rejects(sbx.commands.run('echo oops >&2; exit 3'), (e: unknown) => {
      assert.ok(e instanceof CommandExitError);
      assert.equal(e.exitCode, 3);
      assert.equal(e.stderr, 'oops\n');
      return true;
    });
  });

  it('times a command out with TimeoutError and kills it', async () => {
    const t0 = Date.now();
    await assert.rejects(sbx.commands.run('sleep 30', { timeoutMs: 1500 }), (e: unknown) => e instanceof TimeoutError);
    assert.ok(Date.now() - t0 < 10_000);
    const ps = await sbx.commands.run('ps -eo args | grep -c "^sleep 30" || true');
    assert.equal(ps.stdout.trim(), '0');
  });

  it('background commands: list, stdin, closeStdin, kill', async () => {
    const h = await sbx.commands.run('cat', { background: true, stdin: true, timeoutMs: 0 });
    assert.ok(h.pid > 0);
    const listed = await sbx.commands.list();
    assert.ok(listed.some((p) => p.pid === h.pid && p.args.includes('cat')));
    await sbx.commands.sendStdin(h.pid, 'through stdin\n');
    await h.closeStdin();
    const done = await h.wait();
    assert.equal(done.stdout, 'through stdin\n');
    const sleeper = await sbx.commands.run('sleep 60', { background: true, timeoutMs: 0 });
    assert.equal(await sbx.commands.kill(sleeper.pid), true);
    await assert.rejects(sleeper.wait(), (e: unknown) => e instanceof CommandExitError);
    assert.equal(await sbx.commands.kill(999_999), false);
  });

  it('connects to a running command by pid', async () => {
    const h = await sbx.commands.run('sleep 1; echo late', { background: true, timeoutMs: 0 });
    const again = await sbx.commands.connect(h.pid);
    const r = await again.wait();
    assert.equal(r.stdout, 'late\n');
  });

  it('PTY: create, input, resize, output', async () => {
    const chunks: Buffer[] = [];
    const pty = await sbx.pty.create({ cols: 80, rows: 24, onData: (b) => void chunks.push(Buffer.from(b)), timeoutMs: 30_000 });
    await sbx.pty.resize(pty.pid, { cols: 100, rows: 30 });
    await sbx.pty.sendInput(pty.pid, new TextEncoder().encode('stty size; echo pty-$((6*7)); exit\n'));
    await pty.wait().catch(() => undefined);
    const text = Buffer.concat(chunks).toString();
    assert.match(text, /30 100/);
    assert.match(text, /pty-42/);
  });

  it('files: write, read, list, exists, getInfo, makeDir, rename, remove, gzip upload', async () => {
    const info = await sbx.files.write('notes/a.txt', 'alpha');
    assert.equal(info.path, '/home/user/notes/a.txt');
    assert.equal(await sbx.files.read('/home/user/notes/a.txt'), 'alpha');
    const owner = await sbx.commands.run('stat -c %U /home/user/notes/a.txt; echo more >> /home/user/notes/a.txt');
    assert.equal(owner.stdout.trim(), 'user');
    await sbx.files.write([
      { path: '/tmp/m/one.txt', data: '1' },
      { path: '/tmp/m/two.txt', data: '2' },
    ]);
    const names = (await sbx.files.list('/tmp/m')).map((e) => e.name).sort();
    assert.deepEqual(names, ['one.txt', 'two.txt']);
    assert.equal(await sbx.files.exists('/tmp/m/one.txt'), true);
    assert.equal(await sbx.files.exists('/tmp/m/nope'), false);
    const st = await sbx.files.getInfo('/tmp/m/two.txt');
    assert.equal(st.type, 'file');
    assert.equal(st.size, 1);
    assert.equal(await sbx.files.makeDir('/tmp/m/d/e'), true);
    assert.equal(await sbx.files.makeDir('/tmp/m/d/e'), false);
    const deep = await sbx.files.list('/tmp/m', { depth: 3 });
    assert.ok(deep.some((e) => e.path === '/tmp/m/d/e' && e.type === 'dir'));
    const moved = await sbx.files.rename('/tmp/m/one.txt', '/tmp/m/d/uno.txt');
    assert.equal(moved.path, '/tmp/m/d/uno.txt');
    await sbx.files.remove('/tmp/m/d');
    assert.equal(await sbx.files.exists('/tmp/m/d'), false);
    await assert.rejects(sbx.files.read('/tmp/m/missing'), (e: unknown) => e instanceof NotFoundError);
    const big = 'z'.repeat(200_000);
    await sbx.files.write('/tmp/big.txt', big, { gzip: true });
    assert.equal((await sbx.files.read('/tmp/big.txt')).length, big.length);
    const bytes = await sbx.files.read('/tmp/big.txt', { format: 'bytes' });
    assert.equal(bytes.length, 200_000);
    assert.ok(gzipSync(big).length < big.length);
  });

  it('watches a directory', async () => {
    await sbx.files.makeDir('/tmp/w');
    const events: { name: string; type: string }[] = [];
    const w = await sbx.files.watchDir('/tmp/w', (e) => void events.push({ name: e.name, type: e.type }), { timeoutMs: 20_000 });
    await sbx.files.write('/tmp/w/new.txt', 'x');
    for (let i = 0; i < 50 && !events.some((e) => e.name === 'new.txt'); i++) await new Promise((r) => setTimeout(r, 100));
    await w.stop();
    assert.ok(events.some((e) => e.name === 'new.txt' && e.type === 'create'), JSON.stringify(events));
  });

  it('lists with the metadata filter, the state filter and X-Next-Token paging', async () => {
    const more = await Promise.all([1, 2].map((i) => Sandbox.create({ ...opts, metadata: { suite: 'e2b', page: String(i) } })));
    const ids = new Set<string>();
    const pager = Sandbox.list({ ...opts, limit: 1, query: { metadata: { suite: 'e2b' } } });
    let pages = 0;
    while (pager.hasNext) {
      for (const s of await pager.nextItems()) ids.add(s.sandboxId);
      pages++;
    }
    assert.equal(pages, 3);
    assert.deepEqual([...ids].sort(), [sbx.sandboxId, ...more.map((m) => m.sandboxId)].sort());
    const only = await Sandbox.list({ ...opts, query: { metadata: { page: '2' } } }).nextItems();
    assert.deepEqual(only.map((s) => s.sandboxId), [more[1]?.sandboxId]);
    await more[0]?.pause();
    const paused = await Sandbox.list({ ...opts, query: { state: ['paused'] } }).nextItems();
    assert.deepEqual(paused.map((s) => s.sandboxId), [more[0]?.sandboxId]);
    for (const m of more) assert.equal(await Sandbox.kill(m.sandboxId, opts), true);
    assert.equal(await Sandbox.kill(more[0]?.sandboxId ?? '', opts), false);
  });

  it('pause keeps files; connect resumes', async () => {
    const s = await Sandbox.create({ ...opts });
    await s.files.write('/home/user/kept.txt', 'kept');
    assert.equal(await s.pause(), true);
    assert.equal(await s.isRunning(), false);
    assert.equal((await s.getInfo()).state, 'paused');
    const back = await Sandbox.connect(s.sandboxId, opts);
    assert.equal(await back.files.read('/home/user/kept.txt'), 'kept');
    await back.kill();
    await assert.rejects(Sandbox.getInfo(s.sandboxId, opts), (e: unknown) => e instanceof SandboxNotFoundError);
  });

  it('a timeout kills the sandbox when it expires; setTimeout extends it', async () => {
    const s = await Sandbox.create({ ...opts, timeoutMs: 2000 });
    const keep = await Sandbox.create({ ...opts, timeoutMs: 2000 });
    await keep.setTimeout(60_000);
    await new Promise((r) => setTimeout(r, 4000));
    await assert.rejects(Sandbox.getInfo(s.sandboxId, opts), (e: unknown) => e instanceof SandboxNotFoundError);
    assert.equal((await keep.getInfo()).state, 'running');
    await keep.kill();
  });

  it('getHost reaches a port in the sandbox through the same listener', async () => {
    await sbx.commands.run('cd /tmp && echo served-by-sandbox > index.html && python3 -m http.server 8000 >/dev/null 2>&1', { background: true, timeoutMs: 0 });
    const host = sbx.getHost(8000);
    assert.match(host, new RegExp(`^8000-${sbx.sandboxId}\\.`));
    let body = '';
    for (let i = 0; i < 50 && !body.includes('served-by-sandbox'); i++) {
      const res = await fetch(`${url}/index.html`, { headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '8000', 'X-API-Key': opts.apiKey } }).catch(() => undefined);
      body = res && res.ok ? await res.text() : '';
      if (!body.includes('served-by-sandbox')) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(body, 'served-by-sandbox\n');
    const anon = await fetch(`${url}/index.html`, { headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '8000' } });
    assert.equal(anon.status, 401);
  });

  it('refuses a wrong API key with 401 and E2B error JSON; unknown templates 404; unsupported calls 501', async () => {
    const bad = await fetch(`${url}/v2/sandboxes`, { headers: { 'X-API-Key': 'e2b_0000' } });
    assert.equal(bad.status, 401);
    assert.equal(((await bad.json()) as { code: number }).code, 401);
    await assert.rejects(Sandbox.create('no-such-template', opts), (e: unknown) => /not found/.test((e as Error).message));
    const tpl = await fetch(`${url}/v3/templates`, { method: 'POST', headers: { 'X-API-Key': opts.apiKey, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(tpl.status, 501);
    assert.match(((await tpl.json()) as { message: string }).message, /nook/);
  });
});
