/**
 * The desktop viewer must not leak its token to other sandboxes. Browsers send a host's
 * cookies to every port of it (RFC 6265 §8.5), so a viewer that kept its token in a cookie
 * handed it to every exposed port on 127.0.0.1: sandbox A's server read sandbox B's viewer
 * token (a --control one too) from the Cookie header of any request the same browser made.
 * The attack in a real browser (Debian's chromium through puppeteer-core): open B's viewer
 * until noVNC draws B's screen (its WebSocket went through the guard), then visit A's
 * exposed port; A records the bytes it gets and must find no token of B's in them.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser } from 'puppeteer-core';
import type { Sandbox } from '../../src/sdk/index.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

const CHROMIUM = process.env.NOOK_CHROMIUM ?? '/usr/bin/chromium';

describe('desktop viewer tokens', { skip: !existsSync(CHROMIUM) && `no ${CHROMIUM} (apt-get install chromium)` }, () => {
  let d: TestDaemon;
  let browser: Browser;
  let b: Sandbox;
  let a: Sandbox;

  before(async () => {
    d = await startDaemon();
    b = await d.client.sandboxes.create({ name: 'victim', template: 'desktop' });
    a = await d.client.sandboxes.create({ name: 'harvester', template: 'minimal' });
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });
  after(async () => {
    await browser?.close();
    await d?.teardown();
  });

  it("a browser that used B's viewer sends none of B's tokens to A's exposed port", async () => {
    await b.desktop.screenshot(); // the desktop is up
    const view = await b.desktop.url();
    const control = await b.desktop.url({ control: true });
    const tokens = (await b.exposures.list()).map((e) => e.token);
    assert.equal(tokens.length, 2);

    const page = await browser.newPage();
    for (const link of [view.url, control.url]) {
      await page.goto(link);
      // noVNC sizes its canvas to the remote screen only once the WebSocket is through.
      await page.waitForFunction(() => [...document.querySelectorAll('canvas')].some((c) => c.width === 1280 && c.height === 800), { timeout: 30_000 });
    }
    const cookies = await browser.cookies();
    assert.deepEqual(cookies.map((c) => c.name), [], 'the viewer leaves no cookie');

    // A: a server that appends every request it gets to /tmp/req (and echoes it back).
    void a.exec(['sh', '-c', 'touch /tmp/req; nc -ll -p 8001 -e tee -a /tmp/req'], { timeoutMs: 120_000 }).catch(() => undefined);
    const ex = await a.expose(8001);
    const seen = async (): Promise<string> => (await a.files.read('/tmp/req').catch(() => Buffer.alloc(0))).toString('latin1');
    await waitFor(async () => {
      await page.goto(`http://127.0.0.1:${ex.hostPort}/?token=${ex.token}&n=${Date.now()}`, { timeout: 3000 }).catch(() => undefined);
      return (await seen()).includes('\r\n\r\n');
    }, 20_000, "the browser's request to reach A");
    const got = await seen();
    assert.match(got, /^GET \/\?token=/, 'A saw the request');
    for (const t of tokens) assert.ok(!got.includes(t), `A received a token of B's:\n${got}`);
    assert.doesNotMatch(got, /nook_token/i);
    await page.close();
  });

  it("a view-only link's holder cannot list the web root to read the control link's token", async () => {
    const [view, control] = await b.exposures.list();
    assert.ok(view && control && view.port === 6080 && control.port === 6081);
    const ask = (paths: string[]): Promise<string> => new Promise((resolve, reject) => {
      // One kept-alive connection: only its first request meets the guard, the rest go raw.
      const s = connect(view.hostPort, '127.0.0.1');
      let got = '';
      s.on('data', (c) => (got += c.toString('latin1')));
      s.on('close', () => resolve(got));
      s.on('error', reject);
      s.setTimeout(5000, () => s.destroy());
      s.write(paths.map((p, i) => `GET ${p} HTTP/1.1\r\nHost: x\r\n${i === paths.length - 1 ? 'Connection: close\r\n' : ''}\r\n`).join(''));
    });
    const got = await ask([`/${view.token}/`, `/${view.token}/../`, `/${view.token}/${view.token}/`, `/${view.token}/nook.html`, `/${view.token}/app/`]);
    assert.match(got, /^HTTP\/1\.\d 200/);
    assert.ok(!got.includes(control.token), 'the control token is not in any answer');
    assert.match(got, /HTTP\/1\.\d 404/, 'the old cookie-setting landing page is gone');
    assert.doesNotMatch(got, /document\.cookie/);
  });

  it("the viewer's tokens stay out of the daemon's log and audit", async () => {
    const tokens = (await b.exposures.list()).map((e) => e.token);
    const audit = (await d.cli(['audit', 'export'])).stdout;
    for (const t of tokens) {
      assert.ok(!d.log.includes(t), 'daemon log');
      assert.ok(!audit.includes(t), 'audit export');
    }
  });

  it("the links' path entries go when the links die with compute", async () => {
    const links = async (): Promise<string> => (await b.exec(['find', '/usr/share/novnc', '-maxdepth', '1', '-type', 'l', '-lname', '.'])).stdout.trim();
    assert.equal((await links()).split('\n').length, 2, 'one per live link');
    await b.stop();
    await b.resume();
    assert.equal(await links(), '');
    assert.deepEqual(await b.exposures.list(), []);
  });
});
