/**
 * Network policy on real network namespaces. Every destination is a server this test
 * starts on the host's loopback; test names map to it through the proxy's resolver
 * (NOOK_PROXY_HOSTS). Nothing here sends traffic anywhere else.
 */
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { rejectsWith } from '../helpers/assert.js';
import { hostProcessesWith, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sends raw bytes over a fresh TCP connection and collects what comes back until `until` matches. */
function raw(port: number, send: string[], until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no match for ${until} in ${JSON.stringify(got)}`));
    }, 5000);
    s.on('data', (b: Buffer) => {
      got += b.toString('latin1');
      const next = send.shift();
      if (next !== undefined) s.write(next);
      if (until.test(got)) {
        clearTimeout(timer);
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
    s.on('connect', () => s.write(send.shift() ?? ''));
  });
}

describe('network policy and exposure (loopback only)', () => {
  let d: TestDaemon;
  let server: Server;
  let port = 0;

  before(async () => {
    server = createServer((req, res) => res.end(`hello ${req.url}\n`));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
    d = await startDaemon({ NOOK_PROXY_HOSTS: 'allowed.test=127.0.0.1,other.test=127.0.0.1' });
  });
  after(async () => {
    await d.teardown();
    server.close();
  });

  const wget = (sb: Sandbox, url: string) => sb.exec(['sh', '-c', `wget -q -O - ${url}`], { timeoutMs: 10_000 });
  const connectVia = (sb: Sandbox, target: string, path = '/tunnel') =>
    sb.exec(['sh', '-c', `printf 'CONNECT ${target} HTTP/1.1\\r\\n\\r\\nGET ${path} HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 3128`], { timeoutMs: 10_000 });

  it('reaches an allowed host by GET and CONNECT, and records it', async () => {
    const sb = await d.client.sandboxes.create({ name: 'allow', image: 'minimal', allowHosts: [`allowed.test:${port}`] });
    assert.deepEqual(sb.data.network, { mode: 'allowlist', allow: [`allowed.test:${port}`] });
    assert.equal((await wget(sb, `http://allowed.test:${port}/get`)).stdout, 'hello /get\n');
    const tunnel = await connectVia(sb, `allowed.test:${port}`);
    assert.match(tunnel.stdout, /^HTTP\/1\.1 200 Connection Established/);
    assert.match(tunnel.stdout, /hello \/tunnel/);
    const shown = await sb.network.show();
    assert.deepEqual(shown.decisions.map((x) => [x.method, x.host, x.allowed]), [['CONNECT', 'allowed.test', true], ['HTTP', 'allowed.test', true]]);
    assert.ok((shown.decisions[0]?.bytesDown ?? 0) > 0);
  });

  it('refuses other hosts with 403 and the reason, so an agent can ask', async () => {
    const sb = await d.client.sandboxes.get('allow');
    const r = await sb.exec(['sh', '-c', `wget -S -O - http://other.test:${port}/ 2>&1`], { timeoutMs: 10_000 });
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stdout, /403 Forbidden/);
    const tunnel = await connectVia(sb, `other.test:${port}`);
    assert.match(tunnel.stdout, /^HTTP\/1\.1 403/);
    assert.match(tunnel.stdout, /X-Nook-Denied: other\.test:\d+ is not on this sandbox's allow-list/);
    assert.match(tunnel.stdout, /nook network allow <sandbox> other\.test/);
    const denied = (await sb.network.show()).decisions.filter((x) => !x.allowed);
    assert.equal(denied.length, 2);
    assert.ok(denied.every((x) => x.host === 'other.test' && /not on this sandbox's allow-list/.test(x.reason)));
  });

  it('has no route, no DNS, and no way around the proxy', async () => {
    const sb = await d.client.sandboxes.get('allow');
    assert.equal((await sb.exec(['sh', '-c', 'ip route; cat /proc/net/route | wc -l'])).stdout.trim(), '1', 'no route at all');
    const direct = await sb.exec(['sh', '-c', `nc -w 2 127.0.0.1 ${port} </dev/null; echo rc=$?`], { timeoutMs: 10_000 });
    assert.match(direct.stdout + direct.stderr, /refused|rc=1/, 'the host loopback is not the sandbox loopback');
    const dns = await sb.exec(['sh', '-c', 'nslookup allowed.test 2>&1; echo rc=$?'], { timeoutMs: 15_000 });
    assert.match(dns.stdout, /rc=1/);
    const noProxy = await sb.exec(['sh', '-c', `unset http_proxy HTTP_PROXY; wget -q -O - http://allowed.test:${port}/ 2>&1; echo rc=$?`], { timeoutMs: 10_000 });
    assert.match(noProxy.stdout, /bad address|rc=1/);
  });

  it('refuses IP literals and names resolving to loopback unless the address is listed', async () => {
    const sb = await d.client.sandboxes.create({ name: 'literal', image: 'minimal', allowHosts: [`localhost:${port}`] });
    assert.match((await connectVia(sb, `127.0.0.1:${port}`)).stdout, /^HTTP\/1\.1 403[\s\S]*IP addresses must be listed explicitly/);
    assert.match((await connectVia(sb, `localhost:${port}`)).stdout, /^HTTP\/1\.1 403[\s\S]*resolves to 127\.0\.0\.1, a private or loopback address/);
    await sb.network.allow(`127.0.0.1:${port}`);
    assert.match((await connectVia(sb, `127.0.0.1:${port}`)).stdout, /hello \/tunnel/);
    assert.match((await connectVia(sb, `localhost:${port}`)).stdout, /hello \/tunnel/);
    await sb.destroy();
  });

  it('applies policy changes to a running sandbox at once', async () => {
    const sb = await d.client.sandboxes.get('allow');
    assert.notEqual((await wget(sb, `http://other.test:${port}/`)).exitCode, 0);
    await sb.network.allow(`other.test:${port}`);
    assert.equal((await wget(sb, `http://other.test:${port}/now`)).stdout, 'hello /now\n');
    await sb.network.deny(`other.test:${port}`);
    assert.notEqual((await wget(sb, `http://other.test:${port}/`)).exitCode, 0);
    await rejectsWith(sb.network.allow('not a host!'), 'INVALID_ARGUMENT');
  });

  it('starts with no proxy at all when closed, and opens without a restart', async () => {
    const sb = await d.client.sandboxes.create({ name: 'closed', image: 'minimal' });
    assert.deepEqual(sb.data.network, { mode: 'none', allow: [] });
    assert.equal((await sb.exec(['sh', '-c', 'echo ${HTTP_PROXY:-none}'])).stdout, 'none\n');
    assert.notEqual((await sb.exec(['sh', '-c', 'nc -w 1 127.0.0.1 3128 </dev/null'])).exitCode, 0);
    await sb.network.allow(`allowed.test:${port}`);
    assert.equal((await wget(sb, `http://allowed.test:${port}/opened`)).stdout, 'hello /opened\n');
    await sb.network.set({ mode: 'none' });
    assert.notEqual((await sb.exec(['sh', '-c', 'nc -w 1 127.0.0.1 3128 </dev/null'])).exitCode, 0);
    await sb.destroy();
  });

  it('learn mode allows and records a run, then suggests exactly what it used', async () => {
    const sb = await d.client.sandboxes.create({ name: 'learner', image: 'minimal', network: 'learn' });
    assert.equal((await wget(sb, `http://allowed.test:${port}/a`)).exitCode, 0);
    assert.equal((await wget(sb, `http://other.test:${port}/b`)).exitCode, 0);
    assert.match((await connectVia(sb, `allowed.test:${port}`)).stdout, /hello/);
    assert.deepEqual(await sb.network.suggest(), [`allowed.test:${port}`, `other.test:${port}`]);
    const cli = await d.cli(['network', 'suggest', 'learner']);
    assert.equal(cli.stdout, `--allow-host allowed.test:${port} --allow-host other.test:${port}\n`);
    await sb.destroy();
  });

  it('survives a daemon crash: the proxy listener comes back, egress and policy still work, no host process per sandbox', async () => {
    const sb = await d.client.sandboxes.get('allow');
    const bridges = (): number[] => hostProcessesWith(`UNIX-CONNECT:`).filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(sb.id));
    assert.equal(bridges().length, 0, 'the daemon itself listens inside the sandbox: no socat');
    await d.restart();
    assert.equal((await wget(sb, `http://allowed.test:${port}/after-crash`)).stdout, 'hello /after-crash\n');
    assert.notEqual((await wget(sb, `http://other.test:${port}/`)).exitCode, 0);
    assert.equal(bridges().length, 0);
  });

  it('exposes a port behind its token; HTTP and upgraded connections pass; it follows the sandbox', async () => {
    const sb = await d.client.sandboxes.create({ name: 'web', image: 'minimal' });
    await sb.exec(['sh', '-c', 'mkdir -p /work/www && echo served > /work/www/index.html']);
    const serve = (): Promise<unknown> => sb.exec(['httpd', '-f', '-p', '8000', '-h', '/work/www'], { timeoutMs: 120_000 }).catch(() => undefined);
    const echo = (): Promise<unknown> => sb.exec(['nc', '-ll', '-p', '8001', '-e', 'cat'], { timeoutMs: 120_000 }).catch(() => undefined);
    void serve();
    void echo();
    const web = await sb.expose(8000);
    assert.equal(web.port, 8000);
    assert.match(web.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=/);
    await waitFor(async () => (await get(web.url).catch(() => ({ status: 0, body: '' }))).body === 'served\n', 5000, 'httpd to serve');
    assert.equal((await get(`http://127.0.0.1:${web.hostPort}/index.html`)).status, 401, 'no token, no entry');
    assert.equal((await get(`http://127.0.0.1:${web.hostPort}/index.html?token=wrong`)).status, 401);
    assert.equal((await get(`http://127.0.0.1:${web.hostPort}/index.html`, { authorization: `Bearer ${web.token}` })).body, 'served\n');

    // An upgraded connection is a byte pipe after the first request: the echo server returns both parts.
    const ws = await sb.expose(8001);
    const handshake = `GET /chat?token=${ws.token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`;
    const got = await raw(ws.hostPort, [handshake, 'frame-after-upgrade'], /frame-after-upgrade/);
    assert.ok(got.startsWith(handshake), 'the request reached the sandbox unchanged');
    const list = await sb.exposures.list();
    assert.deepEqual(list.map((e) => [e.port, e.active]), [[8000, true], [8001, true]]);

    await sb.stop();
    await assert.rejects(get(web.url), /ECONNREFUSED/, 'exposures close with the sandbox');
    assert.deepEqual((await sb.exposures.list()).map((e) => e.active), [false, false]);
    await sb.resume();
    void serve();
    await waitFor(async () => (await get(web.url).catch(() => ({ status: 0, body: '' }))).body === 'served\n', 5000, 'the exposure to come back on resume');

    await sb.exposures.remove(8000);
    await assert.rejects(get(web.url), /ECONNREFUSED/);
    await rejectsWith(sb.exposures.remove(8000), 'NOT_FOUND');
    await sb.destroy();
  });
});
