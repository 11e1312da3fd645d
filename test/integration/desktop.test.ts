/**
 * Desktop sandboxes with a real daemon and the real desktop preset: the screen, the agent's
 * input reaching the right window, the noVNC viewer behind its token, bad input refused
 * before any command line, a crashed X server, and the audit keeping typed text as a digest.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, inflateSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { NookError } from '../../src/api/errors.js';
import type { Sandbox } from '../../src/sdk/index.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

function pngSize(png: Buffer): { width: number; height: number } {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  assert.equal(png.toString('latin1', 12, 16), 'IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/** The image data of a PNG (its IDAT chunks inflated), each chunk's CRC checked. */
function pngData(png: Buffer): Buffer {
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const kind = png.subarray(at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    assert.equal(png.readUInt32BE(at + 8 + length), crc32(Buffer.concat([kind, data])), `CRC of ${kind.toString('latin1')}`);
    if (kind.toString('latin1') === 'IDAT') idat.push(data);
    at += 12 + length;
  }
  return inflateSync(Buffer.concat(idat));
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<NookError> {
  try {
    await p;
  } catch (e) {
    const err = e as NookError;
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return err;
  }
  throw new Error(`expected ${code}`);
}

/** Raw HTTP over loopback: the status line and the body (or the upgrade answer). */
function rawHttp(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (b) => {
      got += b.toString('latin1');
      if (got.startsWith('HTTP/1.1 101')) s.destroy();
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy());
    s.write(head);
  });
}

/**
 * A server a hostile sandbox puts on the helper's socket; /tmp/grab-mode says how it answers:
 * bytes without end, text, a PNG of the wrong size, or nothing while holding the connection.
 */
const HOSTILE_GRAB = `
import io, os, socket
p = "/tmp/.nook-grab.sock"
if os.path.exists(p): os.unlink(p)
s = socket.socket(socket.AF_UNIX)
s.bind(p)
s.listen(16)
held = []
while True:
    c, _ = s.accept()
    mode = open("/tmp/grab-mode").read().strip()
    try:
        if mode == "flood":
            while True: c.sendall(b"\\0" * 65536)
        elif mode == "text":
            c.sendall(b"not-a-png\\n")
        elif mode == "small":
            from PIL import Image
            b = io.BytesIO(); Image.new("RGB", (1, 1)).save(b, "PNG"); c.sendall(b.getvalue())
        elif mode == "stall":
            held.append(c); continue
    except OSError:
        pass
    c.close()
`;

async function logsOf(sb: Sandbox, proc: string): Promise<string> {
  let text = '';
  for await (const e of sb.processes.logs(proc)) if (e.type === 'stdout') text += Buffer.from(e.data, 'base64').toString('utf8');
  return text;
}

describe('desktop sandboxes', () => {
  let d: TestDaemon;
  let sb: Sandbox;
  const dir = mkdtempSync(join(tmpdir(), 'nook-desktop-'));

  before(async () => {
    d = await startDaemon();
    sb = await d.client.sandboxes.create({ name: 'desk', template: 'desktop' });
  });
  after(async () => {
    await d.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('screenshot: a 1280x800 PNG, through the SDK and through the CLI (-o FILE, --json)', async () => {
    const png = await sb.desktop.screenshot();
    assert.deepEqual(pngSize(png), { width: 1280, height: 800 });
    // 8-bit RGB (IHDR), and whole: a filter byte and 1280 * 3 bytes for each of 800 rows.
    assert.deepEqual([...png.subarray(24, 29)], [8, 2, 0, 0, 0]);
    assert.equal(pngData(png).length, (1280 * 3 + 1) * 800);
    const file = join(dir, 'shot.png');
    const r = await d.cli(['desktop', 'screenshot', 'desk', '-o', file, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { file, bytes: readFileSync(file).length, width: 1280, height: 800 });
    const info = await sb.desktop.info();
    assert.equal(info.running, true);
  });

  it('typed text reaches the focused xterm as is (no shell, no options): read back through the files API', async () => {
    await sb.desktop.launch(['xterm', '-title', 'nook-term', '-geometry', '80x20+0+0'], { name: 'term' });
    const term = await until('the xterm window', async () => (await sb.desktop.windows()).find((w) => w.title === 'nook-term'));
    await sb.desktop.click(term.x + 40, term.y + 40);
    // Text that a shell would expand and that xdotool would read as options if it were not after `--`.
    await sb.desktop.type("echo hi --delay 0 '$(id -u)' > /tmp/x");
    await sb.desktop.key('Return');
    const text = await until('/tmp/x', async () => (await sb.files.read('/tmp/x')).toString('utf8') || undefined);
    assert.equal(text, 'hi --delay 0 $(id -u)\n');
    const r = await d.cli(['desktop', 'cursor', 'desk', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { x: term.x + 40, y: term.y + 40 });
  });

  it('click, key and scroll reach the window under the pointer (xev logs them), and focus follows', async () => {
    await sb.desktop.launch(['xev', '-geometry', '300x200+700+300', '-event', 'button', '-event', 'keyboard'], { name: 'xev' });
    const w = await until('the xev window', async () => (await sb.desktop.windows()).find((x) => x.title === 'Event Tester'));
    const cx = w.x + Math.floor(w.width / 2);
    const cy = w.y + Math.floor(w.height / 2);
    await sb.desktop.click(cx, cy, { button: 'right' });
    await sb.desktop.key('ctrl+l');
    await sb.desktop.scroll('down', { amount: 2, x: cx, y: cy });
    const focus = await sb.exec(['xdotool', 'getwindowfocus', 'getwindowname']);
    assert.equal(focus.stdout.trim(), 'Event Tester');
    const log = await until('xev output', async () => {
      const t = await logsOf(sb, 'xev');
      return /button 5/.test(t) ? t : undefined;
    });
    assert.match(log, /ButtonPress event[\s\S]*?button 3/);
    assert.match(log, /KeyPress event[\s\S]*?keysym 0x6c, l\)/);
    assert.match(log, /state 0x4, keycode \d+ \(keysym 0x6c, l\)/, 'l pressed with Control held');
    assert.match(log, /button 5/);
  });

  it('the daemon refuses off-screen points, unknown keys and control characters before any command line', async () => {
    await rejectsWith(sb.desktop.click(1280, 10), 'INVALID_ARGUMENT', /x 1280 is off the screen: it is 1280x800/);
    await rejectsWith(sb.desktop.move(5, 800), 'INVALID_ARGUMENT', /y 800 is off the screen/);
    await rejectsWith(sb.desktop.drag([0, 0], [99_999, 1]), 'INVALID_ARGUMENT', /toX 99999 is off the screen/);
    await rejectsWith(sb.desktop.key('ctrl+bogus'), 'INVALID_ARGUMENT', /unknown key "bogus"/);
    await rejectsWith(sb.desktop.key('hyper+a'), 'INVALID_ARGUMENT', /"hyper" is not a modifier/);
    // xdotool would read these as its own command chain if they reached it as keys.
    await rejectsWith(sb.desktop.key('a exec touch /tmp/pwned'), 'INVALID_ARGUMENT', /unknown key/);
    await rejectsWith(sb.desktop.type('ls\u001b[2J'), 'INVALID_ARGUMENT', /control character U\+001b at offset 2/);
    await rejectsWith(sb.desktop.type('a\u0000b'), 'INVALID_ARGUMENT', /control character U\+0000/);
    const r = await d.cli(['desktop', 'click', 'desk', '5000', '1', '--json']);
    assert.notEqual(r.code, 0);
    assert.equal(JSON.parse(r.stderr || r.stdout).code, 'INVALID_ARGUMENT');
    assert.equal((await sb.exec(['test', '-e', '/tmp/pwned'])).exitCode, 1);
    const plain = await d.client.sandboxes.create({ name: 'plain', template: 'minimal' });
    await rejectsWith(plain.desktop.screenshot(), 'INVALID_STATE', /has no desktop/);
    await plain.destroy();
  });

  it('the audit records each input action with its coordinates, and typed text only as a digest', async () => {
    const secret = 'hunter2-typed-secret';
    await sb.desktop.type(secret);
    await sb.desktop.key('ctrl+u');
    const typed = (await d.client.audit.list({ sandbox: 'desk', action: 'desktopType' })).pop();
    assert.ok(typed);
    assert.doesNotMatch(JSON.stringify(typed), new RegExp(secret));
    const { createHash } = await import('node:crypto');
    assert.equal((typed.inputs as { text: { sha256: string } }).text.sha256, createHash('sha256').update(secret).digest('hex'));
    const clicks = await d.client.audit.list({ sandbox: 'desk', action: 'desktopClick' });
    assert.ok(clicks.some((c) => typeof (c.inputs as { x?: number }).x === 'number' && c.outcome === 'ok'));
    const exported = (await d.cli(['audit', 'export'])).stdout;
    assert.doesNotMatch(exported, new RegExp(secret));
  });

  it('the long-lived helper serves screenshots; a hostile helper is bounded (endless, not a PNG, wrong size, stalled); without it, the per-call tool', async () => {
    const fake = await d.client.sandboxes.create({ name: 'grab', template: 'desktop' });
    await fake.desktop.screenshot();
    assert.equal((await fake.exec(['pgrep', '-f', 'bin/[n]ook-grab$'])).exitCode, 0, 'the supervisor started the helper');
    // With the per-call tool broken, screenshots still come: the helper answers them.
    await fake.exec(['sh', '-c', 'cp /usr/local/bin/nook-screenshot /tmp/real; printf "#!/bin/sh\\nexit 3\\n" > /usr/local/bin/nook-screenshot']);
    assert.deepEqual(pngSize(await fake.desktop.screenshot()), { width: 1280, height: 800 });
    // The sandbox replaces the helper with its own server on the helper's socket.
    await fake.exec(['sh', '-c', "pkill -KILL -f 'bin/[n]ook-grab$'; rm -f /tmp/.nook-grab.sock; echo flood > /tmp/grab-mode"]);
    const server = await fake.desktop.launch(['python3', '-c', HOSTILE_GRAB], { name: 'hostile-grab' });
    await until('the hostile socket', async () => ((await fake.exec(['test', '-S', '/tmp/.nook-grab.sock'])).exitCode === 0 ? true : undefined));
    await rejectsWith(fake.desktop.screenshot(), 'PAYLOAD_TOO_LARGE', /more than 33554432 bytes/);
    await fake.exec(['sh', '-c', 'echo text > /tmp/grab-mode']);
    await rejectsWith(fake.desktop.screenshot(), 'RUNTIME_ERROR', /did not answer a 1280x800 PNG/);
    await fake.exec(['sh', '-c', 'echo small > /tmp/grab-mode']);
    await rejectsWith(fake.desktop.screenshot(), 'RUNTIME_ERROR', /did not answer a 1280x800 PNG/);
    await fake.exec(['sh', '-c', 'echo stall > /tmp/grab-mode']);
    const started = Date.now();
    const stalled = rejectsWith(fake.desktop.screenshot(), 'TIMEOUT', /did not finish in time/);
    assert.equal((await d.client.health()).ok, true, 'the daemon answers while the helper stalls');
    await stalled;
    assert.ok(Date.now() - started < 8000, `a stalled helper is given up on after 5 s (took ${Date.now() - started} ms)`);
    // Helper gone (a stale socket, then none): the per-call tool answers the same PNG.
    await fake.processes.kill(server.id, { signal: 'SIGKILL' });
    await fake.exec(['cp', '/tmp/real', '/usr/local/bin/nook-screenshot']);
    assert.equal((await fake.exec(['test', '-S', '/tmp/.nook-grab.sock'])).exitCode, 0, 'the stale socket is still there');
    assert.deepEqual(pngSize(await fake.desktop.screenshot()), { width: 1280, height: 800 });
    await fake.exec(['rm', '-f', '/tmp/.nook-grab.sock']);
    assert.deepEqual(pngSize(await fake.desktop.screenshot()), { width: 1280, height: 800 });
    assert.equal((await d.client.health()).ok, true);
    await fake.destroy();
  });

  it('a hostile screenshot tool or window list is bounded: too large, not a PNG, endless lines', async () => {
    const fake = await d.client.sandboxes.create({ name: 'fake', template: 'desktop' });
    await fake.desktop.screenshot();
    // The per-call tool answers only without the helper.
    await fake.exec(['sh', '-c', "pkill -KILL -f 'bin/[n]ook-grab$'; rm -f /tmp/.nook-grab.sock"]);
    await fake.exec(['sh', '-c', 'cp /usr/local/bin/nook-screenshot /tmp/real; printf "#!/bin/sh\\nexec head -c 40000000 /dev/zero\\n" > /usr/local/bin/nook-screenshot']);
    await rejectsWith(fake.desktop.screenshot(), 'PAYLOAD_TOO_LARGE', /more than 33554432 bytes/);
    await fake.exec(['sh', '-c', 'printf "#!/bin/sh\\necho not-a-png\\n" > /usr/local/bin/nook-screenshot']);
    await rejectsWith(fake.desktop.screenshot(), 'RUNTIME_ERROR', /did not answer a 1280x800 PNG/);
    await fake.exec(['sh', '-c', 'printf "#!/bin/sh\\nyes \\"0x1 0 1 2 3 4 h title\\" | head -n 5000\\n" > /usr/bin/wmctrl']);
    assert.equal((await fake.desktop.windows()).length, 256);
    assert.equal((await d.client.health()).ok, true);
    await fake.destroy();
  });

  it('viewer: the noVNC client with the token, 401 without; view-only and control links; gone when the sandbox stops', async () => {
    const view = await sb.desktop.url();
    assert.equal(view.control, false);
    // The token is the link's first path segment; noVNC's assets and WebSocket path carry it.
    const token = new URL(view.url).pathname.split('/')[1] ?? '';
    assert.equal(token, (await sb.exposures.list()).find((e) => e.port === 6080)?.token);
    assert.equal(new URL(view.url).searchParams.get('path'), `${token}/websockify`);
    const page = await fetch(view.url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /noVNC/);
    // Each connection is checked once (then piped): fresh connections, not fetch's kept-alive one.
    const get = (path: string, extra = '') => rawHttp(view.hostPort, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${extra}\r\n`);
    assert.match(await get('/vnc.html'), /^HTTP\/1\.1 401/);
    assert.match(await get('/app/ui.js'), /^HTTP\/1\.1 401/);
    assert.match(await get(`/${token.slice(0, -1)}x/app/ui.js`), /^HTTP\/1\.1 401/, 'a wrong path token');
    assert.match(await get('/vnc.html', `Cookie: nook_token_${view.hostPort}=${token}\r\n`), /^HTTP\/1\.1 401/, 'a cookie is no token');
    assert.match(await get(`/${token}/app/ui.js`), /^HTTP\/1\.\d 200/);
    const upgrade = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n`;
    assert.match(await rawHttp(view.hostPort, upgrade(`/${token}/websockify`)), /^HTTP\/1\.1 101/);
    assert.match(await rawHttp(view.hostPort, upgrade(`/websockify?token=${token}`)), /^HTTP\/1\.1 101/);
    assert.match(await rawHttp(view.hostPort, upgrade('/nopenopenopenopenope/websockify')), /^HTTP\/1\.1 401/);
    assert.match(await rawHttp(view.hostPort, upgrade('/websockify')), /^HTTP\/1\.1 401/);
    const r = await d.cli(['desktop', 'url', 'desk', '--control', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const control = JSON.parse(r.stdout) as { url: string; control: boolean; hostPort: number };
    assert.equal(control.control, true);
    assert.notEqual(control.hostPort, view.hostPort);
    assert.equal((await fetch(control.url)).status, 200);
    await sb.stop();
    await assert.rejects(fetch(view.url), 'the view link is closed once compute stops');
    await assert.rejects(fetch(control.url));
    await sb.resume();
    assert.deepEqual((await sb.exposures.list()).map((e) => e.port), [], 'old links do not come back on resume');
    assert.deepEqual(pngSize(await sb.desktop.screenshot()), { width: 1280, height: 800 }, 'the desktop starts again with compute');
  });

  it('a killed X server: a clear error naming restart, then restart brings the desktop back', async () => {
    await sb.exec(['pkill', '-KILL', '-x', 'Xvfb']);
    const err = await rejectsWith(sb.desktop.screenshot(), 'DESKTOP_NOT_RUNNING', /desktop of desk is not running/);
    assert.match(err.hint ?? '', /nook desktop restart desk/);
    await rejectsWith(sb.desktop.click(1, 1), 'DESKTOP_NOT_RUNNING', /not running/);
    const r = await d.cli(['desktop', 'restart', 'desk', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).running, true);
    assert.equal((await sb.exec(['pgrep', '-f', 'bin/[n]ook-grab$'])).exitCode, 0, 'the screenshot helper is back too');
    assert.deepEqual(pngSize(await sb.desktop.screenshot()), { width: 1280, height: 800 });
    await sb.desktop.click(10, 10);
  });

  it('a configurable screen size', async () => {
    const big = await d.client.sandboxes.create({ name: 'big', template: 'desktop', env: { NOOK_DESKTOP_WIDTH: '1024', NOOK_DESKTOP_HEIGHT: '768' } });
    assert.deepEqual(pngSize(await big.desktop.screenshot()), { width: 1024, height: 768 });
    await rejectsWith(big.desktop.click(1100, 10), 'INVALID_ARGUMENT', /it is 1024x768/);
    await big.destroy();
  });
});
