/**
 * Terminals against a client that stops reading (the daemon must not buffer without
 * bound), and terminals on the audit record like every other command.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { Sandbox } from '../../src/sdk/client.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

const MiB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rssBytes(pid: number): number {
  const kib = /^VmRSS:\s*(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) * 1024;
}

describe('terminals: back-pressure and audit', () => {
  let d: TestDaemon;
  let sb: Sandbox;

  before(async () => {
    d = await startDaemon();
    sb = await d.client.sandboxes.create({ name: 'tty', image: 'minimal' });
  });
  after(async () => {
    await d.teardown();
  });

  it('a client that stops reading while the sandbox floods the terminal does not grow the daemon', async () => {
    const daemonPid = d.proc?.pid ?? 0;
    const ws = new WebSocket(`ws+unix://${d.socket}:/v1/sandboxes/${sb.id}/pty`);
    let received = 0;
    let text = '';
    let exit: { exitCode: number } | undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as { type: string; exitCode: number };
        if (msg.type === 'exit') exit = msg;
        return;
      }
      received += data.length;
      text = (text + data.toString('latin1')).slice(-4096);
    });
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    ws.send(JSON.stringify({ type: 'start', cols: 200, rows: 50, argv: ['/bin/sh'] }));
    await waitFor(() => /# (\x1b\[6n)?$/.test(text), 5000, 'a prompt');
    ws.send(Buffer.from('yes 0123456789012345678901234567890123456789012345678901234567890123456789\n'));
    await waitFor(() => received > 4 * MiB, 10_000, 'the flood to start');

    // The attacker stops reading: the daemon's socket to it fills up.
    ws.pause();
    await sleep(500);
    const rssBefore = rssBytes(daemonPid);
    await sleep(5000);
    const grownMiB = (rssBytes(daemonPid) - rssBefore) / MiB;
    assert.ok(grownMiB < 64, `the daemon grew by ${grownMiB.toFixed(0)} MiB in 5 s while the client did not read`);

    // Reading again: output flows, and the terminal still answers.
    const atResume = received;
    ws.resume();
    await waitFor(() => received > atResume + 4 * MiB, 10_000, 'output after resuming');
    ws.send(Buffer.from('\x03'));
    await sleep(300);
    ws.send(Buffer.from('exit 7\n'));
    await waitFor(() => exit !== undefined, 20_000, 'the terminal to exit');
    assert.equal(exit?.exitCode, 7);
    console.log(`# daemon RSS growth while stalled: ${grownMiB.toFixed(1)} MiB; ${(received / MiB).toFixed(0)} MiB received in all`);
  });

  it('a client that floods input the command never reads does not grow the daemon: the session ends with an error', async () => {
    const daemonPid = d.proc?.pid ?? 0;
    const ws = new WebSocket(`ws+unix://${d.socket}:/v1/sandboxes/${sb.id}/pty`);
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    let error: { code: string; message: string } | undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const msg = isBinary ? undefined : (JSON.parse(data.toString()) as { type: string; error?: { code: string; message: string } });
      if (msg?.type === 'error') error = msg.error;
    });
    const closed = new Promise((r) => ws.once('close', r));
    ws.send(JSON.stringify({ type: 'start', cols: 80, rows: 24, argv: ['sleep', '30'] }));
    await sleep(500);
    const rssBefore = rssBytes(daemonPid);
    const chunk = Buffer.alloc(MiB, 0x61);
    for (let i = 0; i < 256; i++) ws.send(chunk);
    await sleep(5000);
    const grownMiB = (rssBytes(daemonPid) - rssBefore) / MiB;
    assert.ok(grownMiB < 64, `the daemon grew by ${grownMiB.toFixed(0)} MiB holding input the terminal never read`);
    // The session ends with a clear error rather than holding more.
    await closed;
    assert.equal(error?.code, 'PAYLOAD_TOO_LARGE', JSON.stringify(error));
    assert.match(error?.message ?? '', /not reading its input/);
    console.log(`# daemon RSS growth with 256 MiB of unread input: ${grownMiB.toFixed(1)} MiB`);
  });

  it('every terminal session is on the audit record: opened (who, where, what, size) and closed (exit code, duration)', async () => {
    let out = '';
    const t = await sb.pty.create({ cols: 91, rows: 33, cmd: ['/bin/sh', '-c', 'echo hi; exit 3'], onData: (b) => (out += b.toString()) });
    assert.deepEqual(await t.wait(), { exitCode: 3, signal: null });
    assert.match(out, /hi/);
    const records = await d.client.audit.list({ sandbox: sb.id });
    const opened = records.filter((r) => r.action === 'openTerminal').pop();
    const closed = records.filter((r) => r.action === 'closeTerminal').pop();
    assert.ok(opened && closed, `both records: ${JSON.stringify(records.map((r) => r.action))}`);
    assert.equal(opened.sandboxId, sb.id);
    assert.equal(opened.sandbox, 'tty');
    assert.equal(opened.outcome, 'ok');
    assert.match(opened.actor, /^unix:.+@/, 'who');
    assert.deepEqual(opened.result, { cols: 91, rows: 33 });
    assert.equal((opened.inputs.argv as { command: string }).command, '/bin/sh', 'what (the command, its arguments digested)');
    assert.equal(closed.sandboxId, sb.id);
    assert.equal(closed.inputs.opened, opened.id, 'the close points at its open');
    assert.equal(closed.result.exitCode, 3);
    assert.equal(typeof closed.result.durationMs, 'number');
    assert.ok(records.indexOf(closed) > records.indexOf(opened));
    // The CLI shows them too, and the chain still verifies.
    const cli = await d.cli(['audit', 'ls', '--sandbox', 'tty', '--json']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /openTerminal[\s\S]*closeTerminal/);
    assert.equal((await d.client.audit.verify()).ok, true);
  });

  it('a terminal on a stopped sandbox resumes it first, as exec does', async () => {
    await sb.stop();
    const t = await sb.pty.create({ cols: 80, rows: 24, cmd: ['true'], onData: () => undefined });
    assert.equal((await t.wait()).exitCode, 0);
    assert.equal((await d.client.sandboxes.get('tty')).state, 'running');
  });
});
