/**
 * E2B's code interpreter SDK (npm @e2b/code-interpreter, unmodified) against a real nookd:
 * the code-interpreter-v1 template, runCode's results, output, errors and rich formats,
 * state that persists within a context and not across contexts, and the context calls.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NotFoundError, Sandbox, TimeoutError } from '@e2b/code-interpreter';
import type { TestDaemon } from '../helpers/daemon.js';
import { startE2bDaemon } from '../helpers/e2b.js';

describe('E2B code interpreter on nook', () => {
  let d: TestDaemon;
  let url: string;
  let opts: { apiUrl: string; sandboxUrl: string; apiKey: string };
  let sbx: Sandbox;

  before(async () => {
    ({ d, url, opts } = await startE2bDaemon());
    sbx = await Sandbox.create({ ...opts });
  });
  after(async () => {
    const t0 = Date.now();
    await d.teardown();
    process.stdout.write(`# teardown ${Date.now() - t0} ms\n`);
  });

  it('runCode keeps state across calls: x = 41, then x + 1 is the result text 42', async () => {
    const t0 = Date.now();
    const first = await sbx.runCode('x = 41');
    process.stdout.write(`# first runCode (runner start included): ${Date.now() - t0} ms\n`);
    assert.equal(first.error, undefined);
    assert.deepEqual(first.results, []);
    const t1 = Date.now();
    const second = await sbx.runCode('x + 1');
    process.stdout.write(`# later runCode: ${Date.now() - t1} ms\n`);
    assert.equal(second.text, '42');
    assert.equal(second.results.length, 1);
    assert.equal(second.results[0]?.isMainResult, true);
    const info = await sbx.getInfo();
    assert.equal(info.templateId, 'code-interpreter-v1');
  });

  it('print goes to stdout, sys.stderr to stderr, streamed to the callbacks; the cell runs as user in /home/user', async () => {
    const streamed: string[] = [];
    const r = await sbx.runCode('import os, sys, getpass\nprint("hello", 6 * 7)\nprint("warn", file=sys.stderr)\nprint(getpass.getuser(), os.getcwd())', { onStdout: (m) => void streamed.push(m.line) });
    assert.equal(r.error, undefined);
    assert.deepEqual(r.logs.stdout, ['hello 42\n', 'user /home/user\n']);
    assert.deepEqual(r.logs.stderr, ['warn\n']);
    assert.deepEqual(streamed, ['hello 42\n', 'user /home/user\n']);
  });

  it('an exception gives error.name, value and a traceback of the cell; the context lives on', async () => {
    const r = await sbx.runCode('def f():\n    return {}["missing"]\nf()');
    assert.equal(r.error?.name, 'KeyError');
    assert.equal(r.error?.value, "'missing'");
    assert.match(r.error?.traceback ?? '', /File "<cell>", line 2, in f/);
    assert.doesNotMatch(r.error?.traceback ?? '', /code-interpreter\.py|line \d+, in run\b/);
    const syntax = await sbx.runCode('def (');
    assert.equal(syntax.error?.name, 'SyntaxError');
    assert.equal((await sbx.runCode('x')).text, '41');
  });

  it('results carry html and png when the object offers them; env vars apply to one call', async () => {
    const r = await sbx.runCode(
      [
        'import base64',
        'class Chart:',
        '    def _repr_html_(self): return "<b>chart</b>"',
        '    def _repr_png_(self): return base64.b64decode("iVBORw0KGgo=")',
        '    def __repr__(self): return "Chart()"',
        'Chart()',
      ].join('\n'),
    );
    assert.equal(r.results[0]?.text, 'Chart()');
    assert.equal(r.results[0]?.html, '<b>chart</b>');
    assert.equal(r.results[0]?.png, 'iVBORw0KGgo=');
    assert.deepEqual(r.results[0]?.formats(), ['html', 'png']);
    assert.equal((await sbx.runCode('import os; os.environ.get("ONLY_HERE")', { envs: { ONLY_HERE: 'yes' } })).text, "'yes'");
    assert.equal((await sbx.runCode('import os; os.environ.get("ONLY_HERE")')).results.length, 0);
  });

  it('two contexts are independent; contexts are listed, and removed', async () => {
    const a = await sbx.createCodeContext();
    const b = await sbx.createCodeContext({ cwd: '/tmp' });
    assert.notEqual(a.id, b.id);
    await sbx.runCode('y = "in a"', { context: a });
    assert.equal((await sbx.runCode('y', { context: a })).text, "'in a'");
    const inB = await sbx.runCode('y', { context: b });
    assert.equal(inB.error?.name, 'NameError');
    assert.equal((await sbx.runCode('import os; os.getcwd()', { context: b })).text, "'/tmp'");
    // The default context never saw y either.
    assert.equal((await sbx.runCode('y')).error?.name, 'NameError');
    const listed = (await sbx.listCodeContexts()).map((c) => c.id);
    assert.ok(listed.includes(a.id) && listed.includes(b.id), JSON.stringify(listed));
    await sbx.removeCodeContext(b);
    assert.ok(!(await sbx.listCodeContexts()).some((c) => c.id === b.id));
    // A short requestTimeoutMs: the SDK leaves its request timer running when a call fails, which would hold the test process.
    await assert.rejects(sbx.runCode('1', { context: b, requestTimeoutMs: 2000 }), (e: unknown) => e instanceof NotFoundError);
  });

  it('the Jupyter port needs a token: none gets 401, the traffic token alone lists contexts', async () => {
    const headers = { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49999' };
    assert.equal((await fetch(`${url}/contexts`, { headers })).status, 401);
    assert.equal((await fetch(`${url}/contexts`, { headers: { ...headers, 'E2B-Traffic-Access-Token': 'f'.repeat(64) } })).status, 401);
    const traffic = (sbx as unknown as { trafficAccessToken: string }).trafficAccessToken;
    const res = await fetch(`${url}/contexts`, { headers: { ...headers, 'E2B-Traffic-Access-Token': traffic } });
    assert.equal(res.status, 200);
    assert.ok(Array.isArray(await res.json()));
  });

  it('a runaway cell: the SDK times out, the cell is interrupted and its context keeps its state', async () => {
    const ctx = await sbx.createCodeContext();
    await sbx.runCode('kept = "state"', { context: ctx });
    const t0 = Date.now();
    await assert.rejects(sbx.runCode('while True: pass', { context: ctx, timeoutMs: 1500 }), (e: unknown) => e instanceof TimeoutError);
    assert.ok(Date.now() - t0 < 10_000);
    // The next cell in the same context is not stuck behind the runaway one.
    const t1 = Date.now();
    assert.equal((await sbx.runCode('kept', { context: ctx, timeoutMs: 10_000 })).text, "'state'");
    process.stdout.write(`# cell after an interrupted one: ${Date.now() - t1} ms\n`);
    // One that ignores the interrupt is killed after a grace period; the context comes back fresh.
    await assert.rejects(sbx.runCode('import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass', { context: ctx, timeoutMs: 1000 }));
    const fresh = await sbx.runCode('kept', { context: ctx, timeoutMs: 15_000 });
    assert.equal(fresh.error?.name, 'NameError');
  });

  it('an interpreter that exits mid-cell is reported and replaced; a killed runner is restarted on the next call', async () => {
    const died = await sbx.runCode('import os; os._exit(3)');
    assert.equal(died.error?.name, 'InterpreterDied');
    assert.equal((await sbx.runCode('1 + 1')).text, '2');
    await sbx.commands.run("pkill -KILL -f '^python3 /usr/local/lib/nook/code-interpreter'", { user: 'root' });
    assert.equal((await sbx.runCode('2 + 2')).text, '4');
  });
});
