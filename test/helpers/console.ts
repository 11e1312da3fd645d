/**
 * The web console's browser tests share this: a real daemon with its TCP listener on
 * loopback, Debian's chromium driven by puppeteer-core, a logged-in page (through the link
 * `nook console --json` prints), and helpers that wait for DOM states (never sleeps).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startDaemon, waitFor, type TestDaemon } from './daemon.js';

export const CHROMIUM = process.env.NOOK_CHROMIUM ?? '/usr/bin/chromium';
/** Why the browser tests are skipped, or false when chromium is there. */
export const NO_CHROMIUM: string | false = !existsSync(CHROMIUM) && `no ${CHROMIUM} (apt-get install chromium)`;

export interface ConsoleRig {
  d: TestDaemon;
  browser: Browser;
  page: Page;
  token: string;
  /** http://127.0.0.1:PORT */
  base: string;
  loginUrl(): Promise<string>;
  /** Opens a console route (`sandboxes`, `sandbox/NAME`, `images`...) in the logged-in page. */
  go(route: string): Promise<void>;
  text(selector: string): Promise<string>;
  waitText(selector: string, want: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Clicks the first element under `selector` whose text is `label` (fails when there is none). */
  clickText(selector: string, label: string): Promise<void>;
  /** Sets an input's value the way typing does (Preact listens to input events). */
  fill(selector: string, value: string): Promise<void>;
  close(): Promise<void>;
}

export async function startConsole(env: Record<string, string> = {}): Promise<ConsoleRig> {
  const token = 'console-test-token-0123456789';
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const base = `http://127.0.0.1:${port}`;
  const d = await startDaemon({ NOOK_TCP: `127.0.0.1:${port}`, NOOK_TOKEN: token, ...env });
  let browser: Browser | undefined;
  try {
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const page = await browser.newPage();
    // What the page itself reports, to read when a step fails.
    page.on('console', (m) => process.env.NOOK_CONSOLE_DEBUG && process.stderr.write(`[page] ${m.text()}\n`));
    page.on('pageerror', (e) => process.stderr.write(`[page error] ${String(e)}\n`));
    // Confirmation dialogs (destroy, delete) are accepted, as a user clicking OK would.
    page.on('dialog', (dialog) => void dialog.accept());
    await page.setViewport({ width: 1400, height: 900 });
    page.setDefaultTimeout(30_000);
    const text = (selector: string): Promise<string> => page.$eval(selector, (e) => e.textContent ?? '');
    const rig: ConsoleRig = {
      d,
      browser,
      page,
      token,
      base,
      async loginUrl() {
        const r = await d.cli(['console', '--json']);
        assert.equal(r.code, 0, r.stderr);
        return (JSON.parse(r.stdout) as { url: string }).url;
      },
      async go(route) {
        await page.goto(`${base}/console/#/${route}`);
        await page.waitForSelector('header');
      },
      text,
      waitText: (selector, want, timeoutMs = 30_000) =>
        waitFor(async () => {
          const t = await text(selector).catch(() => '');
          return typeof want === 'string' ? t.includes(want) : want.test(t);
        }, timeoutMs, `${selector} to show ${want}`),
      async clickText(selector, label) {
        await waitFor(
          () => page.$$eval(selector, (els, l) => els.some((e) => e.textContent?.trim() === l && !(e as HTMLButtonElement).disabled), label),
          30_000,
          `a "${label}" under ${selector}`,
        );
        await page.$$eval(selector, (els, l) => (els.find((e) => e.textContent?.trim() === l) as HTMLElement).click(), label);
      },
      async fill(selector, value) {
        await page.waitForSelector(selector);
        await page.$eval(
          selector,
          (e, v) => {
            (e as HTMLInputElement).value = v;
            e.dispatchEvent(new Event('input', { bubbles: true }));
          },
          value,
        );
      },
      async close() {
        await browser?.close();
        await d.teardown();
      },
    };
    await page.goto(await rig.loginUrl());
    await page.waitForSelector('#sandboxes');
    return rig;
  } catch (e) {
    await browser?.close();
    await d.teardown();
    throw e;
  }
}
