import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

describe('templates: minimal, python, node, browser', () => {
  let d: TestDaemon;
  let server: Server;
  let port: number;

  before(async () => {
    d = await startDaemon();
    server = createServer((_req, res) => res.end('<html><head><title>t</title></head><body><h1 id="x">served-on-loopback</h1></body></html>'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await d.teardown();
    await new Promise((r) => server.close(r));
  });

  it('lists the six templates with their defaults', async () => {
    const list = await d.client.templates.list();
    assert.deepEqual(
      list.map((t) => t.name),
      ['minimal', 'python', 'node', 'base', 'browser', 'desktop'],
    );
    const r = await d.cli(['template', 'ls', '--json']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('node: a sandbox with Node.js, the template defaults under the request\'s own values', async () => {
    const sb = await d.client.sandboxes.create({ name: 'js', template: 'node', memoryMiB: 768 });
    assert.equal(sb.data.image, 'node');
    assert.equal(sb.data.limits.memoryMiB, 768, 'the request wins over the template');
    assert.equal(sb.data.labels['nook.template'], 'node');
    const r = await sb.exec(['node', '-e', 'console.log(6 * 7, process.env.NODE_ENV)']);
    assert.equal(r.stdout, '42 development\n');
    await sb.destroy();
  });

  it('browser: headless Chromium renders a page reached through the allow-list, and nothing else', async () => {
    const sb = await d.client.sandboxes.create({ name: 'web', template: 'browser', allowHosts: [`127.0.0.1:${port}`] });
    const ok = await sb.exec(['chromium-headless', '--dump-dom', `http://127.0.0.1:${port}/`], { timeoutMs: 120_000 });
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ok.stdout, /<h1 id="x">served-on-loopback<\/h1>/);
    // Not on the list: the proxy refuses, so the page never loads.
    const denied = await sb.exec(['chromium-headless', '--dump-dom', `http://127.0.0.2:${port}/`], { timeoutMs: 120_000 });
    assert.doesNotMatch(denied.stdout, /served-on-loopback/);
    const decisions = (await sb.network.show()).decisions;
    assert.ok(decisions.some((x) => x.host === '127.0.0.1' && x.port === port && x.allowed));
    assert.ok(decisions.some((x) => x.host === '127.0.0.2' && !x.allowed));
    await sb.destroy();
  });
});
