/**
 * The web console in a real browser (Debian's chromium, headless, driven by puppeteer-core)
 * against a real daemon with its TCP listener on loopback: log in with the link
 * `nook console --json` prints, see a sandbox the CLI made, run a command in its terminal,
 * upload and download a file, lock a volume, watch a denied egress request appear. And the
 * attacks: no session (401 and the login page), a login link used twice, markup in labels,
 * file names and output (shown as text, never as HTML), a mutating call or a terminal
 * WebSocket from another origin with the session cookie (refused), an upload past the bound
 * (refused before it starts). Network traffic stays on 127.0.0.1 (NOOK_PROXY_HOSTS).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import WebSocket from 'ws';
import { CHROMIUM, NO_CHROMIUM } from '../helpers/console.js';
import { REPO_ROOT, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

const XSS = '<img src=x onerror=document.title="pwned">';
const COPY_IN_BYTES = 1024 * 1024;

describe('web console', { skip: NO_CHROMIUM }, () => {
  let d: TestDaemon;
  let browser: Browser;
  let page: Page;
  let web: Server;
  let webPort = 0;
  const token = 'console-test-token-0123456789';
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const base = `http://127.0.0.1:${port}`;
  const hostDir = mkdtempSync(join(tmpdir(), 'nook-console-'));

  const loginUrl = async (): Promise<string> => {
    const r = await d.cli(['console', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { url: string }).url;
  };
  const text = (selector: string): Promise<string> => page.$eval(selector, (e) => e.textContent ?? '');
  const waitText = (selector: string, want: string | RegExp, timeoutMs = 20_000): Promise<void> =>
    waitFor(async () => {
      const t = await text(selector).catch(() => '');
      return typeof want === 'string' ? t.includes(want) : want.test(t);
    }, timeoutMs, `${selector} to show ${want}`);
  const clickText = async (selector: string, label: string): Promise<void> => {
    await page.$$eval(selector, (els, l) => (els.find((e) => e.textContent?.trim() === l) as HTMLElement | undefined)?.click(), label);
  };

  before(async () => {
    web = createServer((req, res) => res.end(`hello ${req.url}\n`));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    webPort = (web.address() as { port: number }).port;
    d = await startDaemon({
      NOOK_TCP: `127.0.0.1:${port}`,
      NOOK_TOKEN: token,
      NOOK_PROXY_HOSTS: 'denied.test=127.0.0.1',
      NOOK_MAX_COPY_IN_BYTES: String(COPY_IN_BYTES),
    });
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage();
    // What the page itself reports, to read when a step fails.
    page.on('console', (m) => process.env.NOOK_CONSOLE_DEBUG && process.stderr.write(`[page] ${m.text()}\n`));
    page.on('pageerror', (e) => process.stderr.write(`[page error] ${String(e)}\n`));
    await page.setViewport({ width: 1280, height: 900 });
    const made = await d.cli(['create', '--name', 'web', '--image', 'minimal', '--label', `note=${XSS}`, '--allow-host', 'allowed.test', '--json']);
    assert.equal(made.code, 0, made.stderr);
  });
  after(async () => {
    await browser?.close();
    await d?.teardown();
    web?.close();
    rmSync(hostDir, { recursive: true, force: true });
  });

  it('without a session: the API answers 401 and the console shows its login page', async () => {
    const res = await fetch(`${base}/v1/sandboxes`);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { code: string }).code, 'UNAUTHORIZED');
    const forged = await fetch(`${base}/v1/sandboxes`, { headers: { cookie: `nook_console=${Date.now() + 3600_000}.abc.forged` } });
    assert.equal(forged.status, 401);
    await page.goto(`${base}/console/`);
    await page.waitForSelector('#login');
    // The page and its script come with a strict policy: no inline script anywhere.
    const html = await fetch(`${base}/console/`);
    assert.match(html.headers.get('content-security-policy') ?? '', /script-src 'self';/);
    assert.equal(html.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.doesNotMatch(await html.text(), /<script(?![^>]*\bsrc=)/);
  });

  it('logs in with the link nook console prints, once; the link does not work twice', async () => {
    const url = await loginUrl();
    assert.ok(url.startsWith(`${base}/console/#login=`), url);
    await page.goto(url);
    await page.waitForSelector('tr[data-sandbox="web"]');
    assert.doesNotMatch(page.url(), /login=/, 'the token left the address bar');
    const cookies = await browser.cookies();
    const session = cookies.find((c) => c.name === 'nook_console');
    assert.ok(session?.httpOnly && session.sameSite === 'Strict', JSON.stringify(session));

    const other = await browser.createBrowserContext();
    const second = await other.newPage();
    await second.goto(url);
    await second.waitForSelector('#login .error');
    assert.match(await second.$eval('#login', (e) => e.textContent ?? ''), /not valid: it was used already/);
    await other.close();
  });

  it('shows markup in a label as text, never as HTML', async () => {
    const cell = await text('tr[data-sandbox="web"]');
    assert.ok(cell.includes(`note=${XSS}`), cell);
    assert.equal(await page.$$eval('#sandboxes img', (e) => e.length), 0);
    assert.notEqual(await page.title(), 'pwned');
  });

  it('opens the terminal of a sandbox made by the CLI and runs a command in it', async () => {
    await page.click('tr[data-sandbox="web"] a.sandbox-link');
    await page.waitForSelector('#terminal .xterm-rows');
    await waitText('#term-status', 'connected');
    await page.click('#terminal');
    await page.keyboard.type('echo out-$((6*7))\n');
    await waitText('#terminal .xterm-rows', 'out-42');
    // Resize: the window follows the element (fit addon → resize message → the PTY's size).
    await page.keyboard.type('echo size-$(stty size | tr " " x)\n');
    await waitText('#terminal .xterm-rows', /size-\d+x\d+/);
    const before = /size-(\d+x\d+)/.exec(await text('#terminal .xterm-rows'))?.[1];
    await page.setViewport({ width: 900, height: 900 });
    await new Promise((r) => setTimeout(r, 500));
    await page.keyboard.type('clear; echo size-$(stty size | tr " " x)\n');
    await waitFor(async () => {
      const now = /size-(\d+x\d+)/.exec(await text('#terminal .xterm-rows'))?.[1];
      return now !== undefined && now !== before;
    }, 10_000, 'the terminal size to change');
    await page.setViewport({ width: 1280, height: 900 });
  });

  it('uploads a file (its markup name shown as text) and downloads it back', async () => {
    await page.click('button[data-tab="files"]');
    await page.waitForSelector('tr[data-file="tmp"]');
    await page.click('tr[data-file="tmp"] a');
    await waitText('#cwd', '/tmp');
    const local = join(hostDir, XSS);
    writeFileSync(local, 'console upload\n');
    const input = await page.$('#upload input[type=file]');
    await (input as unknown as { uploadFile: (p: string) => Promise<void> }).uploadFile(local);
    await page.click('#upload button[type=submit]');
    await waitText('#upload-result', 'uploaded');
    const written = await d.client.sandboxes.exec('web', ['cat', `/tmp/${XSS}`]);
    assert.equal(written.stdout, 'console upload\n');
    await page.waitForSelector(`tr[data-file='${XSS}']`);
    assert.equal(await page.$$eval('#files img', (e) => e.length), 0);
    const body = await page.$eval(`tr[data-file='${XSS}'] a.download`, (a) => fetch((a as HTMLAnchorElement).href).then((r) => r.text()));
    assert.equal(body, 'console upload\n');
  });

  it('refuses an upload past the copy-in bound before it starts', async () => {
    const big = join(hostDir, 'big.bin');
    writeFileSync(big, Buffer.alloc(COPY_IN_BYTES + 1));
    const before = (await d.client.audit.list({ action: 'writeFile', limit: 1000 })).length;
    const input = await page.$('#upload input[type=file]');
    await (input as unknown as { uploadFile: (p: string) => Promise<void> }).uploadFile(big);
    await page.click('#upload button[type=submit]');
    await waitText('main', 'PAYLOAD_TOO_LARGE');
    assert.equal((await d.client.audit.list({ action: 'writeFile', limit: 1000 })).length, before, 'no request was made');
    // The daemon too refuses on the declared length, before reading the body.
    const res = await fetch(`${base}/v1/sandboxes/web/files/content?path=/tmp/big`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': String(COPY_IN_BYTES + 1) },
      body: Buffer.alloc(COPY_IN_BYTES + 1),
    });
    assert.equal(res.status, 413);
  });

  it('shows process output as text', async () => {
    await d.client.sandboxes.get('web').then((sb) => sb.processes.start(['sh', '-c', `echo '${XSS}'; sleep 30`], { name: 'marked' }));
    await page.click('button[data-tab="processes"]');
    await waitText('#processes', 'marked');
    await clickText('#processes button', 'Logs');
    await waitText('#process-logs', XSS);
    assert.equal(await page.$$eval('#process-logs img', (e) => e.length), 0);
  });

  it('shows a denied egress request in the live decisions log', async () => {
    await page.click('button[data-tab="network"]');
    await page.waitForSelector('#decisions');
    const r = await d.client.sandboxes.exec('web', ['sh', '-c', `wget -q -O - http://denied.test:${webPort}/ 2>&1`], { timeoutMs: 10_000 });
    assert.notEqual(r.exitCode, 0);
    await waitText('#decisions', 'denied.test');
    assert.match(await text('#decisions tr.denied'), /denied/);
    // The README's picture of the sandbox page: written there only when asked (NOOK_CONSOLE_SCREENSHOT=1).
    await page.click('button[data-tab="terminal"]');
    await waitText('#term-status', 'connected');
    await page.keyboard.type('ls / && uname -a\n');
    await new Promise((r) => setTimeout(r, 500));
    const shot = process.env.NOOK_CONSOLE_SCREENSHOT ? join(REPO_ROOT, 'docs', 'images', 'console-sandbox.png') : join(hostDir, 'console-sandbox.png');
    mkdirSync(join(shot, '..'), { recursive: true });
    await page.screenshot({ path: shot });
  });

  it('after a daemon restart the page reconnects, still logged in, and the old terminal is not reopened by itself', async () => {
    await waitText('#term-status', 'connected');
    await d.restart();
    await waitText('#term-status', 'disconnected');
    // The page asks again: same session (signed, not stored), fresh data.
    await page.goto(`${base}/console/#/sandboxes`);
    await page.waitForSelector('tr[data-sandbox="web"]');
    assert.equal(await page.$('#login'), null);
  });

  it('says so when the sandbox is destroyed while its page is open', async () => {
    const made = await d.cli(['create', '--name', 'doomed', '--image', 'minimal', '--json']);
    assert.equal(made.code, 0, made.stderr);
    await page.goto(`${base}/console/#/sandbox/doomed`);
    await waitText('#term-status', 'connected');
    assert.equal((await d.cli(['destroy', 'doomed'])).code, 0);
    await page.waitForSelector('#gone', { timeout: 15_000 });
    assert.equal(await page.$('button[data-action="Stop"]'), null, 'no button acts on what is gone');
  });

  it('locks a volume', async () => {
    await d.client.volumes.create('console-vol', { sizeMiB: 64 });
    await d.client.volumes.unlock('console-vol');
    await page.goto(`${base}/console/#/volumes`);
    await waitText('tr[data-volume="console-vol"] .volume-state', 'unlocked');
    await clickText('tr[data-volume="console-vol"] button', 'Lock');
    await waitText('tr[data-volume="console-vol"] .volume-state', /^locked$/);
    assert.equal((await d.client.volumes.get('console-vol')).state, 'locked');
  });

  it('refuses a mutating call and a terminal from another origin, even with the session cookie', async () => {
    const cookie = (await browser.cookies()).find((c) => c.name === 'nook_console');
    assert.ok(cookie);
    const header = `nook_console=${cookie.value}`;
    // With the session's proof too (what the page holds), so only the origin checks stand in the way.
    const proof = (await page.evaluate(() => localStorage.getItem('nook_console_proof'))) ?? '';
    assert.ok(proof, 'the page keeps its session proof in its own storage');
    await d.client.volumes.unlock('console-vol');
    const foreign: Record<string, string>[] = [{ origin: "http://evil.test" }, { origin: base, "sec-fetch-site": "cross-site" }, {}];
    for (const extra of foreign) {
      const res = await fetch(`${base}/v1/volumes/console-vol/lock`, { method: 'POST', headers: { cookie: header, 'x-nook-session': proof, 'content-type': 'application/json', ...extra }, body: '{}' });
      assert.equal(res.status, 403, JSON.stringify(extra));
      assert.equal(((await res.json()) as { code: string }).code, 'CROSS_ORIGIN');
    }
    assert.equal((await d.client.volumes.get('console-vol')).state, 'unlocked', 'nothing was locked');
    // The same call from the console's own origin passes.
    const ok = await fetch(`${base}/v1/volumes/console-vol/lock`, { method: 'POST', headers: { cookie: header, 'x-nook-session': proof, origin: base, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(ok.status, 200);
    // Cross-site WebSocket hijacking: a terminal opened with the cookie from another origin.
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/sandboxes/web/pty?session=${encodeURIComponent(proof)}`, { headers: { cookie: header, origin: 'http://evil.test' } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => (ws.close(), resolve(101)));
      ws.on('error', () => undefined);
    });
    assert.equal(status, 401);
    // A login exchange from another origin cannot log a browser in.
    const url = await loginUrl();
    const login = await fetch(`${base}/console/session`, { method: 'POST', headers: { origin: 'http://evil.test', 'content-type': 'application/json' }, body: JSON.stringify({ token: url.split('#login=')[1] }) });
    assert.equal(login.status, 403);
  });

  it('after logging out, the session no longer works and the page shows the login page', async () => {
    const cookie = (await browser.cookies()).find((c) => c.name === 'nook_console');
    await page.goto(`${base}/console/#/sandboxes`);
    await page.waitForSelector('tr[data-sandbox="web"]');
    const proof = (await page.evaluate(() => localStorage.getItem('nook_console_proof'))) ?? '';
    await clickText('header a', 'Log out');
    await page.waitForSelector('#login');
    assert.equal(await page.evaluate(() => localStorage.getItem('nook_console_proof')), null, 'the proof is forgotten');
    const res = await fetch(`${base}/v1/sandboxes`, { headers: { cookie: `nook_console=${cookie?.value ?? ''}`, 'x-nook-session': proof } });
    assert.equal(res.status, 401);
  });

  it('a session that ends while the page is open brings the login page back', async () => {
    await page.goto(await loginUrl());
    await page.waitForSelector('tr[data-sandbox="web"]');
    // As an expired session would: the next call (the list refreshes every 5 s) answers 401.
    await page.deleteCookie({ name: 'nook_console', url: base });
    await page.waitForSelector('#login', { timeout: 15_000 });
  });
});

describe('nook console without a TCP listener', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon({});
  });
  after(async () => d?.teardown());

  it('answers a clear error whose hint says how to enable it', async () => {
    const r = await d.cli(['console', '--json']);
    assert.notEqual(r.code, 0);
    const err = JSON.parse(r.stdout || r.stderr) as { code: string; hint: string };
    assert.equal(err.code, 'NOT_SUPPORTED');
    assert.match(err.hint, /NOOK_TCP=127\.0\.0\.1:\d+ and NOOK_TOKEN_FILE/);
  });
});
