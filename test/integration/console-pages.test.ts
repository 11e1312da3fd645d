/**
 * The console's pages in a real browser (chromium via puppeteer-core), each action checked
 * against the daemon's state through the SDK or CLI afterwards: the sandboxes list (its
 * columns, the label filter, stop, resume, fork, snapshot, destroy), a sandbox's snapshots,
 * volume mounts, background processes with live logs and exposed ports, an image pull from a
 * local registry streaming progress, the audit page (verify, receipt search), live events.
 * Bad input: a 5,000-file directory is paged, a huge log is tailed (bounded DOM), and a button
 * on a sandbox the CLI destroyed while the page was open gives a clear error and no action.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { HTTPRequest } from 'puppeteer-core';
import { NO_CHROMIUM, startConsole, type ConsoleRig } from '../helpers/console.js';
import { waitFor } from '../helpers/daemon.js';
import { tarOf, writeLayout } from '../helpers/oci.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

/** Seconds a TTL countdown cell shows ("9m 58s", "1h 2m", "42s"). */
function countdownSeconds(text: string): number {
  const h = /(\d+)h/.exec(text)?.[1];
  const m = /(\d+)m/.exec(text)?.[1];
  const s = /(\d+)s/.exec(text)?.[1];
  return Number(h ?? 0) * 3600 + Number(m ?? 0) * 60 + Number(s ?? 0);
}

describe('web console pages', { skip: NO_CHROMIUM }, () => {
  let c: ConsoleRig;
  let reg: TestRegistry;
  const work = mkdtempSync('/tmp/nook-console-pages-');

  /** Clicks the button `label` in the row of `table` whose text includes `rowText`. */
  const clickInRow = async (table: string, rowText: string, label: string): Promise<void> => {
    await waitFor(
      () => c.page.$$eval(`${table} tr`, (rows, t, l) => rows.some((r) => r.textContent?.includes(t) && [...r.querySelectorAll('button')].some((b) => b.textContent?.trim() === l && !b.disabled)), rowText, label),
      30_000,
      `a ${label} button in the ${table} row of ${rowText}`,
    );
    await c.page.$$eval(`${table} tr`, (rows, t, l) => [...(rows.find((r) => r.textContent?.includes(t))?.querySelectorAll('button') ?? [])].find((b) => b.textContent?.trim() === l)?.click(), rowText, label);
  };
  const state = async (name: string): Promise<string> => (await c.d.client.sandboxes.get(name)).state;

  before(async () => {
    [c, reg] = await Promise.all([startConsole(), startRegistry()]);
    for (const [name, team] of [['alpha', 'a'], ['beta', 'b']] as const) {
      const r = await c.d.cli(['create', '--name', name, '--image', 'minimal', '--label', `team=${team}`, '--ttl', '10m', '--json']);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await c?.close();
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('lists sandboxes with state, image, runtime, labels, a decreasing TTL and usage; filters by label', async () => {
    await c.go('sandboxes');
    await c.page.waitForSelector('tr[data-sandbox="alpha"]');
    const cells = await c.page.$$eval('tr[data-sandbox="alpha"] td', (tds) => tds.map((t) => t.textContent ?? ''));
    assert.equal(cells[1], 'running');
    assert.equal(cells[2], 'minimal');
    assert.equal(cells[3], 'crun');
    assert.equal(cells[4], 'team=a');
    const ttl = countdownSeconds(cells[5] ?? '');
    assert.ok(ttl > 500 && ttl <= 600, `TTL cell: ${cells[5]}`);
    await c.waitText('tr[data-sandbox="alpha"] .usage', /^\d+ s · [\d.]+ (B|KiB|MiB|GiB)$/);
    // The countdown ticks down by itself (no reload).
    await waitFor(async () => countdownSeconds(await c.text('tr[data-sandbox="alpha"] td:nth-child(6)')) < ttl, 10_000, 'the TTL to count down');

    await c.fill('input[name="label-filter"]', 'team=b');
    await waitFor(async () => (await c.page.$('tr[data-sandbox="alpha"]')) === null, 20_000, 'alpha filtered out');
    assert.ok(await c.page.$('tr[data-sandbox="beta"]'));
    await c.fill('input[name="label-filter"]', '');
    await c.page.waitForSelector('tr[data-sandbox="alpha"]');
  });

  it('stops, resumes, snapshots, forks and destroys from the list, as the daemon then says', async () => {
    await c.clickText('tr[data-sandbox="beta"] button', 'Stop');
    await c.waitText('tr[data-sandbox="beta"] td:nth-child(2)', 'paused');
    assert.equal(await state('beta'), 'paused');
    await c.clickText('tr[data-sandbox="beta"] button', 'Resume');
    await c.waitText('tr[data-sandbox="beta"] td:nth-child(2)', 'running');
    assert.equal(await state('beta'), 'running');

    await c.fill('tr[data-sandbox="beta"] input[name="snapshot"]', 'from-list');
    await c.clickText('tr[data-sandbox="beta"] button', 'Snapshot');
    await waitFor(async () => (await c.d.client.snapshots.list('beta')).some((s) => s.name === 'from-list'), 30_000, 'the snapshot');

    const before = new Set((await c.d.client.sandboxes.list()).map((s) => s.name));
    await c.clickText('tr[data-sandbox="beta"] button', 'Fork');
    let fork = '';
    await waitFor(async () => {
      fork = (await c.d.client.sandboxes.list()).find((s) => !before.has(s.name))?.name ?? '';
      return fork !== '';
    }, 60_000, 'the fork');
    const forked = (await c.d.client.sandboxes.get(fork)).data;
    assert.match(forked.origin ?? '', /beta|sbx/, `origin ${forked.origin}`);
    await c.page.waitForSelector(`tr[data-sandbox="${fork}"]`);

    await c.clickText(`tr[data-sandbox="${fork}"] button`, 'Destroy');
    await waitFor(async () => (await c.page.$(`tr[data-sandbox="${fork}"]`)) === null, 30_000, 'the fork to leave the list');
    assert.ok(!(await c.d.client.sandboxes.list()).some((s) => s.name === fork), 'the daemon destroyed it');
  });

  it('takes a snapshot on the sandbox page, restores it as a new sandbox, deletes it', async () => {
    await c.d.client.sandboxes.exec('alpha', ['sh', '-c', 'echo snapped > /marker']);
    await c.go('sandbox/alpha');
    await c.page.click('button[data-tab="snapshots"]');
    await c.fill('input[name="snapshot"]', 'page-snap');
    await c.clickText('button', 'Take snapshot');
    await c.page.waitForSelector('tr[data-snapshot="page-snap"]');
    assert.ok((await c.d.client.snapshots.list('alpha')).some((s) => s.name === 'page-snap'));

    await c.clickText('tr[data-snapshot="page-snap"] button', 'Restore as new');
    await c.waitText('#restored', 'restored as');
    const restored = await c.text('#restored a');
    assert.equal((await c.d.client.sandboxes.exec(restored, ['cat', '/marker'])).stdout, 'snapped\n');
    await (await c.d.client.sandboxes.get(restored)).destroy();

    await c.clickText('tr[data-snapshot="page-snap"] button', 'Delete');
    await waitFor(async () => (await c.page.$('tr[data-snapshot="page-snap"]')) === null, 30_000, 'the snapshot row to go');
    assert.ok(!(await c.d.client.snapshots.list('alpha')).some((s) => s.name === 'page-snap'));
  });

  it('mounts a volume into the sandbox (seen by an exec) and unmounts it', async () => {
    await c.d.client.volumes.create('pagevol', { sizeMiB: 64 });
    await c.d.client.volumes.unlock('pagevol');
    await c.page.click('button[data-tab="volumes"]');
    await c.fill('input[name="volume"]', 'pagevol');
    await c.fill('input[name="guest"]', '/data');
    await c.clickText('button', 'Mount');
    await c.waitText('li[data-volume="pagevol"]', '/data');
    const seen = await c.d.client.sandboxes.exec('alpha', ['sh', '-c', 'grep " /data " /proc/mounts && echo in-volume > /data/x && cat /data/x']);
    assert.equal(seen.exitCode, 0, seen.stderr);
    assert.match(seen.stdout, /in-volume/);
    await c.clickText('li[data-volume="pagevol"] button', 'Unmount');
    await waitFor(async () => (await c.page.$('li[data-volume="pagevol"]')) === null, 30_000, 'the mount to leave the page');
    const gone = await c.d.client.sandboxes.exec('alpha', ['grep', '-c', ' /data ', '/proc/mounts']);
    assert.equal(gone.stdout.trim(), '0');
    assert.equal((await c.d.client.volumes.get('pagevol')).mountedIn, null);
  });

  it('starts a background process from the page and shows a line it prints after the logs opened', async () => {
    await c.page.click('button[data-tab="processes"]');
    await c.fill('input[name="start"]', 'while true; do [ -f /tmp/say ] && cat /tmp/say && rm /tmp/say; sleep 0.2; done');
    await c.clickText('button', 'Start');
    await clickInRow('#processes', 'while true', 'Logs');
    await c.page.waitForSelector('#process-logs');
    assert.ok((await c.d.client.sandboxes.get('alpha').then((sb) => sb.processes.list())).some((p) => p.argv.join(' ').includes('/tmp/say') && p.state === 'running'));
    const line = `late-${randomBytes(4).toString('hex')}`;
    await c.d.client.sandboxes.exec('alpha', ['sh', '-c', `echo ${line} > /tmp/say`]);
    await c.waitText('#process-logs', line);
  });

  it('shows an exposed port with a link that reaches the sandbox', async () => {
    const sb = await c.d.client.sandboxes.get('alpha');
    await sb.exec(['sh', '-c', 'mkdir -p /www && echo served > /www/index.html']);
    await sb.processes.start(['httpd', '-f', '-p', '8000', '-h', '/www'], { name: 'web' });
    await sb.expose(8000);
    await c.page.click('button[data-tab="network"]');
    await c.page.waitForSelector('li[data-port="8000"] a');
    const href = await c.page.$eval('li[data-port="8000"] a', (a) => (a as HTMLAnchorElement).href);
    await waitFor(async () => (await fetch(href).then((r) => r.text()).catch(() => '')) === 'served\n', 15_000, `${href} to serve`);
  });

  it('pulls an image from a registry, its progress streaming into the page to the end', async () => {
    const dir = join(work, 'layer');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'blob'), randomBytes(8 * 1024 * 1024));
    writeLayout(join(work, 'layout'), [{ layers: [await tarOf(dir, 'blob')], config: { Env: ['PATH=/bin'] } }], '1');
    await reg.push(`oci:${join(work, 'layout')}:1`, 'public/console:1');
    await c.go('images');
    // Every progress line the page shows, as it shows it.
    await c.page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      new MutationObserver(() => {
        const t = document.getElementById('image-progress')?.textContent;
        if (t && seen[seen.length - 1] !== t) seen.push(t);
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await c.fill('input[name="pull"]', `${reg.host}/public/console:1`);
    await c.clickText('button', 'Pull');
    await c.waitText('#image-done', 'pulled console:1', 60_000);
    const seen = await c.page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    assert.ok(seen.length >= 2, `progress shown: ${JSON.stringify(seen)}`);
    assert.ok((await c.d.client.images.list()).some((i) => i.source === `${reg.host}/public/console:1`));
    await c.page.waitForSelector('tr[data-image="console:1"]');
  });

  it('verifies the audit chain (OK) and finds a record by its receipt', async () => {
    await c.go('audit');
    await c.clickText('button', 'Verify chain');
    await c.waitText('#verify-result', /^OK: \d+ records/);
    const record = (await c.d.client.audit.list({ action: 'createSandbox', limit: 10 }))[0];
    assert.ok(record);
    await c.fill('input[name="receipt"]', record.id);
    await c.clickText('button', 'Find');
    await c.waitText('#receipt', record.id);
    assert.match(await c.text('#receipt'), /"action": "createSandbox"/);
  });

  it('shows live an event the CLI caused after the page opened', async () => {
    await c.go('events');
    await c.page.waitForSelector('#events');
    // The stream may still be connecting: act again until the page shows one (each act is new).
    for (let i = 0; ; i++) {
      const r = await c.d.cli(['create', '--name', `ev-${i}`, '--image', 'minimal', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const shown = await c.waitText('#events', `ev-${i}`, 5000).then(() => true, () => false);
      if (shown) break;
      assert.ok(i < 5, 'no event reached the page');
    }
  });

  it('pages a 5,000-file directory: one page in the DOM and a next control', async () => {
    const made = await c.d.client.sandboxes.exec('alpha', ['sh', '-c', 'mkdir -p /tmp/many && cd /tmp/many && seq -w 1 5000 | xargs touch && ls | wc -l']);
    assert.equal(made.stdout.trim(), '5000', made.stderr);
    await c.go('sandbox/alpha');
    await c.page.click('button[data-tab="files"]');
    await c.page.waitForSelector('tr[data-file="tmp"] a');
    await c.page.click('tr[data-file="tmp"] a');
    await c.page.waitForSelector('tr[data-file="many"] a');
    await c.page.click('tr[data-file="many"] a');
    await c.waitText('#files + .row', '1–100 of 5000');
    assert.equal(await c.page.$$eval('#files tbody tr', (r) => r.length), 100);
    const first = await c.text('#files tbody tr td');
    await c.clickText('#files + .row button', 'Next');
    await c.waitText('#files + .row', '101–200 of 5000');
    assert.equal(await c.page.$$eval('#files tbody tr', (r) => r.length), 100);
    assert.notEqual(await c.text('#files tbody tr td'), first);
  });

  it('tails a huge log: the last lines, then live, never more than 2000 lines in the page', async () => {
    const sb = await c.d.client.sandboxes.get('alpha');
    // 200,000 lines before the page looks, then 100,000 more once it does.
    await sb.processes.start(['sh', '-c', 'seq 1 200000; while [ ! -f /tmp/more ]; do sleep 0.2; done; seq 300001 400000; sleep 600'], { name: 'loud' });
    await waitFor(async () => (await sb.processes.list()).some((p) => p.name === 'loud'), 10_000, 'loud to start');
    // The first 200,000 lines are all in the log before the page looks (else the page's tail
    // would be followed by whatever seq still writes, and "the tail" would be more than 500).
    const loud = (await sb.processes.list()).find((p) => p.name === 'loud');
    await waitFor(async () => {
      let last = '';
      for await (const ev of sb.processes.logs(loud?.id ?? 'loud', { tail: 1 })) if (ev.type === 'stdout') last = Buffer.from(ev.data, 'base64').toString();
      return last.includes('200000');
    }, 60_000, 'the first 200,000 lines in the log');
    await c.page.click('button[data-tab="processes"]');
    await clickInRow('#processes', 'loud', 'Logs');
    await c.waitText('#process-logs', '200000\n', 60_000);
    const lines = async (): Promise<number> => c.page.$eval('#process-logs', (e) => (e.textContent ?? '').split('\n').length - 1);
    assert.ok((await lines()) <= 500, `the tail: ${await lines()} lines`);
    assert.doesNotMatch(await c.text('#process-logs'), /^1\n/, 'not the whole log');
    await sb.exec(['touch', '/tmp/more']);
    await c.waitText('#process-logs', '400000\n', 60_000);
    const shown = await lines();
    assert.ok(shown <= 2000 && shown >= 1000, `lines in the page: ${shown}`);
    assert.ok((await c.page.$$eval('#process-logs span', (s) => s.length)) <= 2000);
  });

  it('a button on a sandbox the CLI destroyed while the page was open: a clear error, no action', async () => {
    assert.equal((await c.d.cli(['create', '--name', 'victim', '--image', 'minimal', '--json'])).code, 0);
    await c.go('sandboxes');
    await c.page.waitForSelector('tr[data-sandbox="victim"] button[data-action="Stop"]');
    // Hold the list's refreshes so the row is still there to click (as on a slow link).
    const held: HTTPRequest[] = [];
    const onRequest = (req: HTTPRequest): void => {
      if (req.method() === 'GET' && new URL(req.url()).pathname === '/v1/sandboxes') held.push(req);
      else void req.continue();
    };
    await c.page.setRequestInterception(true);
    c.page.on('request', onRequest);
    try {
      assert.equal((await c.d.cli(['destroy', 'victim'])).code, 0);
      await c.clickText('tr[data-sandbox="victim"] button', 'Stop');
      await c.waitText('#action-error', /victim: SANDBOX_NOT_FOUND/);
    } finally {
      c.page.off('request', onRequest);
      for (const r of held) await r.continue().catch(() => undefined);
      await c.page.setRequestInterception(false);
    }
    await waitFor(async () => (await c.page.$('tr[data-sandbox="victim"]')) === null, 30_000, 'the row to go');
    assert.ok(!(await c.d.client.sandboxes.list()).some((s) => s.name === 'victim'), 'nothing brought it back');
  });
});
