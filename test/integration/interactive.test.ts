import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NookEvent } from '../../src/api/schemas.js';
import type { Sandbox } from '../../src/sdk/client.js';
import { run } from '../../src/util/proc.js';
import { rejectsWith } from '../helpers/assert.js';
import { CLI_MAIN, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

/** Collects terminal output and waits for a pattern in it. */
class Screen {
  text = '';
  push = (b: Buffer): void => {
    this.text += b.toString();
  };
  async waitFor(re: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = re.exec(this.text);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`terminal never showed ${re}: ${JSON.stringify(this.text.slice(-500))}`);
  }
}

describe('terminals, background processes, logs and events', () => {
  let d: TestDaemon;
  let sb: Sandbox;
  const events: NookEvent[] = [];
  const stopEvents = new AbortController();

  before(async () => {
    d = await startDaemon();
    void (async () => {
      for await (const e of d.client.events({ signal: stopEvents.signal })) events.push(e);
    })().catch(() => undefined);
    sb = await d.client.sandboxes.create({ name: 'term', image: 'minimal' });
  });
  after(async () => {
    stopEvents.abort();
    await d.teardown();
  });

  it('a PTY session sees its size, follows resizes, passes Ctrl-C, and returns the exit code', async () => {
    const screen = new Screen();
    const t = await sb.pty.create({ cols: 100, rows: 40, onData: screen.push });
    // Type only once the shell prompts, as a person would: ash sets up line editing (and may
    // flush pending input) before its first prompt.
    await screen.waitFor(/# (\x1b\[6n)?$/);
    t.write('stty size\n');
    await screen.waitFor(/\r\n40 100\r\n/);
    t.resize(132, 50);
    t.write('stty size\n');
    await screen.waitFor(/\r\n50 132\r\n/);
    t.write('sleep 300; echo interrupted=$?\n');
    await new Promise((r) => setTimeout(r, 300));
    const sent = Date.now();
    t.write('\x03');
    await screen.waitFor(/\^C/);
    assert.ok(Date.now() - sent < 3000, 'Ctrl-C ended the foreground sleep at once');
    t.write('tty; exit 3\n');
    await screen.waitFor(/\/dev\/pts\/\d+/);
    assert.deepEqual(await t.wait(), { exitCode: 3, signal: null });
  });

  it('nook shell works under a real pseudo-terminal and exits with the shell\'s code', async () => {
    // A Python pty driver stands in for a person's terminal: fixed size, keystrokes, exit status.
    const driver = `
import os, pty, sys, time, fcntl, termios, struct, select
pid, fd = pty.fork()
if pid == 0:
    os.execvpe(sys.argv[1], sys.argv[1:], os.environ)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 33, 77, 0, 0))
out = b''
def read_until(token, timeout=10):
    global out
    end = time.time() + timeout
    while token not in out and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try: out += os.read(fd, 4096)
            except OSError: break
time.sleep(0.5)
os.write(fd, b'stty size\\r')
read_until(b'33 77')
os.write(fd, b'exit 7\\r')
read_until(b'__never__', 5)
_, status = os.waitpid(pid, 0)
sys.stdout.write(repr(out) + '\\n' + str(os.waitstatus_to_exitcode(status)) + '\\n')
`;
    const r = await run(['python3', '-c', driver, process.execPath, CLI_MAIN, 'shell', 'term'], { env: d.env, timeoutMs: 30_000 });
    const [screen = '', code = ''] = r.stdout.trim().split('\n');
    assert.match(screen, /33 77/, `the shell saw the driver's window size: ${screen}`);
    assert.equal(code, '7', r.stderr);
  });

  it('a background process keeps serving after the client that started it has gone', async () => {
    await sb.exec(['sh', '-c', 'mkdir -p /work/www && echo from-background > /work/www/index.html']);
    const started = await d.cli(['exec', 'term', '--detach', '--name', 'web', '--', 'httpd', '-f', '-p', '8000', '-h', '/work/www']);
    assert.equal(started.stdout, 'web\n');
    await waitFor(async () => (await sb.exec(['wget', '-q', '-O', '-', 'http://127.0.0.1:8000/'])).stdout === 'from-background\n', 5000, 'the server');
    const ps = await d.cli(['ps', 'term']);
    assert.match(ps.stdout, /proc_\w+\s+web\s+running/);
    const killed = await d.cli(['kill', 'term', 'web']);
    assert.equal(killed.stdout, 'web killed (exit 137)\n');
    assert.notEqual((await sb.exec(['wget', '-q', '-O', '-', 'http://127.0.0.1:8000/'])).exitCode, 0);
  });

  it('logs -f shows lines as they are written and ends when the process exits', async () => {
    const p = await sb.processes.start(['sh', '-c', 'for i in 1 2 3 4; do echo line-$i; sleep 0.4; done; echo oops >&2; exit 5'], { name: 'counter' });
    assert.equal(p.state, 'running');
    const started = Date.now();
    const arrivals: number[] = [];
    const cli = run([process.execPath, CLI_MAIN, 'logs', 'term', 'counter', '-f'], { env: d.env, allowFail: true, onStdoutLine: () => arrivals.push(Date.now() - started) });
    const r = await cli;
    assert.equal(r.stdout, 'line-1\nline-2\nline-3\nline-4\n');
    assert.equal(r.stderr, 'oops\n');
    assert.ok((arrivals[1] ?? 0) < (arrivals[3] ?? 0) - 500, `lines arrived as written: ${arrivals.join(', ')}`);
    const after = await sb.processes.get('counter');
    assert.deepEqual([after.state, after.exitCode], ['exited', 5]);
    assert.equal((await d.cli(['logs', 'term', 'counter', '--tail', '2'])).stdout, 'line-4\n');
    assert.equal((await d.cli(['logs', 'term', 'counter', '--tail', '2'])).stderr, 'oops\n');
  });

  it('kill ends the whole tree, with no orphans left in the sandbox', async () => {
    const marker = `tree-${Date.now()}`;
    await sb.processes.start(['sh', '-c', `(setsid sh -c 'while :; do sleep 1; done' ${marker} &); sh -c 'while :; do sleep 1; done' ${marker} & wait`], { name: 'tree' });
    await waitFor(async () => (await sb.exec(['ps', '-o', 'args'])).stdout.split(marker).length - 1 >= 2, 5000, 'the tree to start');
    const p = await sb.processes.kill('tree');
    assert.equal(p.state, 'killed');
    assert.doesNotMatch((await sb.exec(['ps', '-o', 'args'])).stdout, new RegExp(marker));
    await rejectsWith(sb.processes.kill('no-such-process'), 'PROCESS_NOT_FOUND');
  });

  it('a process declared restart on-resume comes back after stop and resume; others end with the sandbox', async () => {
    await sb.processes.start(['sh', '-c', 'while :; do sleep 1; done'], { name: 'keeper', restart: 'on-resume' });
    await sb.processes.start(['sh', '-c', 'while :; do sleep 1; done'], { name: 'once' });
    await sb.stop();
    const stopped = await sb.processes.list();
    assert.deepEqual(stopped.filter((p) => ['keeper', 'once'].includes(p.name ?? '')).map((p) => [p.name, p.state, p.signal]), [
      ['keeper', 'exited', 'SIGTERM'],
      ['once', 'exited', 'SIGTERM'],
    ]);
    await sb.resume();
    const keeper = await sb.processes.get('keeper');
    assert.deepEqual([keeper.state, keeper.runs], ['running', 2]);
    assert.equal((await sb.processes.get('once')).state, 'exited');
    await sb.processes.kill('keeper');
  });

  it('streams lifecycle events as they happen', async () => {
    const ttl = await d.client.sandboxes.create({ name: 'short', image: 'minimal', ttlMs: 1000 });
    await waitFor(() => events.some((e) => e.type === 'sandbox.stopped' && e.sandbox === 'short'), 10_000, 'the TTL stop event');
    const types = events.map((e) => `${e.type} ${e.sandbox ?? ''}`);
    assert.ok(types.includes('sandbox.created term'));
    assert.ok(types.includes('process.exited term'));
    assert.deepEqual(events.find((e) => e.type === 'sandbox.stopped' && e.sandbox === 'short')?.detail, { reason: 'ttl' });
    await ttl.destroy();
  });
});
