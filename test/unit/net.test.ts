/**
 * The proxy's and the exposure listener's handling of hostile input, in process, on loopback
 * servers this test starts. The resolver is the lookup boundary and is replaced by one that
 * counts (the integration test does the same through a real nameserver).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { DenialAggregator } from '../../src/net/denials.js';
import { ExposureListener, tokenOf } from '../../src/net/expose.js';
import { parseRequestHead } from '../../src/net/http-head.js';
import type { NetworkPolicy } from '../../src/net/policy.js';
import { EgressProxy, type Decision, type NameResolver } from '../../src/net/proxy.js';

function exchange(port: number, bytes: Buffer | string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(got);
    }, timeoutMs);
    s.on('data', (b: Buffer) => (got += b.toString('latin1')));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    s.on('error', () => undefined);
    s.on('connect', () => s.end(bytes));
  });
}

class CountingResolver implements NameResolver {
  readonly asked: string[] = [];
  resolve(host: string): Promise<{ address: string; trusted: boolean }> {
    this.asked.push(host);
    return Promise.resolve({ address: '127.0.0.1', trusted: true });
  }
}

describe('egress proxy against hostile heads (in process)', () => {
  let origin: Server;
  let originPort = 0;
  let proxyPort = 0;
  let proxy: EgressProxy;
  const resolver = new CountingResolver();
  const decisions: Decision[] = [];
  let policy: NetworkPolicy = { mode: 'allowlist', allow: [] };

  before(async () => {
    origin = createServer((req, res) => res.end(`host=${req.headers.host ?? ''}\n`));
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    originPort = (origin.address() as AddressInfo).port;
    policy = { mode: 'allowlist', allow: [`good.test:${originPort}`] };
    proxy = new EgressProxy({ policy: () => policy, record: (d) => decisions.push(d) }, resolver, { maxConnections: 50, headTimeoutMs: 500, idleTimeoutMs: 5000 });
    const server = await proxy.listen({ port: 0, host: '127.0.0.1' });
    proxyPort = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await proxy.close();
    origin.close();
  });

  const good = (): Promise<string> => exchange(proxyPort, `GET http://good.test:${originPort}/ HTTP/1.1\r\nHost: evil.internal\r\n\r\n`);

  it('resolves only names the policy covers', async () => {
    resolver.asked.length = 0;
    assert.match(await exchange(proxyPort, 'CONNECT data-1.attacker.example:443 HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 403 /);
    assert.match(await exchange(proxyPort, 'GET http://data-2.attacker.example/x HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 403 /);
    assert.match(await exchange(proxyPort, `CONNECT good.test:${originPort + 1} HTTP/1.1\r\n\r\n`), /^HTTP\/1\.1 403 [\s\S]*not port/);
    assert.deepEqual(resolver.asked, []);
    assert.match(await good(), /host=good\.test:\d+\n$/);
    assert.deepEqual(resolver.asked, ['good.test']);
    policy = { mode: 'none', allow: [] };
    assert.match(await exchange(proxyPort, `CONNECT good.test:${originPort} HTTP/1.1\r\n\r\n`), /^HTTP\/1\.1 403 [\s\S]*no network/);
    assert.deepEqual(resolver.asked, ['good.test']);
    policy = { mode: 'allowlist', allow: [`good.test:${originPort}`] };
  });

  it('answers malformed heads with 400/431 and never throws (fast-check)', async () => {
    const token = fc.stringOf(fc.constantFrom(...'GETCONNECT /:%[]?#@.-_0123456789azAZ\t'.split('')), { maxLength: 40 });
    const line = fc.oneof(
      token.map((t) => `CONNECT ${t} HTTP/1.1`),
      token.map((t) => `GET http://${t}/ HTTP/1.1`),
      fc.tuple(token, token, token).map(([a, b, c]) => `${a} ${b} ${c}`),
      fc.string({ maxLength: 200 }),
    );
    const headers = fc.array(fc.oneof(fc.string({ maxLength: 80 }), token.map((t) => `Host: ${t}`)), { maxLength: 5 });
    await fc.assert(
      fc.asyncProperty(line, headers, async (l, h) => {
        const got = await exchange(proxyPort, Buffer.from(`${[l, ...h].join('\r\n')}\r\n\r\n`, 'latin1'), 2000);
        assert.match(got, /^(HTTP\/1\.1 (200|400|403|431|502) |)/);
      }),
      { numRuns: 300 },
    );
    assert.match(await good(), /host=good\.test/, 'still serving');
  });

  it('is unit-checked on ports, lengths and the Host header', () => {
    for (const bad of ['CONNECT a.test:99999 HTTP/1.1', 'CONNECT a.test:0 HTTP/1.1', 'GET http://a.test:0/ HTTP/1.1', `CONNECT ${'a'.repeat(254)}:443 HTTP/1.1`, 'CONNECT a.test:443 HTTP/1.1\r\nbad header', 'CONNECT a.test:443 HTTP/1.1\r\nX: a\nb']) {
      assert.equal(parseRequestHead(bad).ok, false, bad);
    }
    const r = parseRequestHead('GET http://u:p@a.test:8080/p?q=1 HTTP/1.1\r\nHOST: other\r\nAccept: */*');
    assert.ok(r.ok);
    assert.equal(r.upstreamHead?.toString(), 'GET /p?q=1 HTTP/1.1\r\nHost: a.test:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n');
    assert.equal(parseRequestHead(`GET http://x/ HTTP/1.1\r\n${'a: b\r\n'.repeat(3000)}`).ok, false);
  });

  it('caps connections and closes silent ones at the head timeout', async () => {
    const sockets = Array.from({ length: 60 }, () => connect(proxyPort, '127.0.0.1').on('error', () => undefined));
    const answers = sockets.map((s) => new Promise<string>((r) => {
      let got = '';
      s.on('data', (b: Buffer) => (got += b.toString()));
      s.on('close', () => r(got));
    }));
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(proxy.connectionCount <= 50, `${proxy.connectionCount} held`);
    const all = await Promise.all(answers);
    assert.equal(all.filter((a) => a.startsWith('HTTP/1.1 503')).length, 10);
    assert.equal(all.filter((a) => a.startsWith('HTTP/1.1 408')).length, 50);
    for (let i = 0; i < 50 && proxy.connectionCount > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(proxy.connectionCount, 0);
  });
});

describe('exposure listener against hostile heads', () => {
  let listener: ExposureListener;
  let port = 0;
  before(async () => {
    listener = new ExposureListener('s3cret-token', '/nonexistent/sock', { maxConnections: 20, headTimeoutMs: 500 });
    port = await listener.start(0);
  });
  after(() => listener.close());

  it('never throws on the token: bad percent-encoding is a 400', async () => {
    assert.equal(tokenOf('GET /?token=% HTTP/1.1'), undefined);
    assert.match(await exchange(port, 'GET /?token=% HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 400 /);
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 60 }), async (t) => {
        const got = await exchange(port, Buffer.from(`GET /?token=${t} HTTP/1.1\r\nX-Nook-Token: ${t}\r\n\r\n`, 'latin1'), 2000);
        assert.match(got, /^HTTP\/1\.1 (400|401|502) /);
      }),
      { numRuns: 200 },
    );
    assert.match(await exchange(port, 'GET /?token=s3cret-token HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 502 /, 'the right token passes the check');
  });
});

describe('denial aggregation', () => {
  it('writes the first of each destination, then one record per repeated one and one for the rest', () => {
    const flushed: unknown[] = [];
    const agg = new DenialAggregator<string>((id, s) => flushed.push([id, s]), 60_000, 2);
    assert.equal(agg.admit('sb', 'a', 'A'), true);
    assert.equal(agg.admit('sb', 'a', 'A'), false);
    assert.equal(agg.admit('sb', 'b', 'B'), true);
    for (let i = 0; i < 100; i++) assert.equal(agg.admit('sb', `x${i}`, 'X'), false);
    agg.close('sb');
    assert.deepEqual(flushed, [['sb', { repeated: [{ sample: 'A', count: 1 }], others: 100, otherKeys: 100 }]]);
    assert.equal(agg.admit('sb', 'a', 'A'), true, 'a new window');
    agg.drop('sb');
  });
});

describe('daemon log', () => {
  it('bounds every line and rotates an append-mode log file by size', () => {
    const dir = mkdtempSync('/tmp/nook-log-');
    try {
      const path = join(dir, 'nookd.log');
      const logModule = join(import.meta.dirname, '..', '..', 'src', 'util', 'log.js');
      const script = `import(${JSON.stringify(logModule)}).then(({ log }) => { for (let i = 0; i < 400; i++) log('denied', { host: 'h'.repeat(5000), i }); });`;
      const r = spawnSync('sh', ['-c', `exec node -e "$0" 2>>"$1"`, script, path], { env: { ...process.env, NOOK_LOG_MAX_BYTES: '100000', NOOK_LOG_FILES: '3' } });
      assert.equal(r.status, 0, r.stderr?.toString());
      const sizes = ['', '.1', '.2', '.3', '.4'].map((s) => (existsSync(path + s) ? statSync(path + s).size : -1));
      assert.ok(sizes.slice(0, 4).every((n) => n > 0 && n < 100_000 + 1200), `sizes ${sizes}`);
      assert.equal(sizes[4], -1, 'only 3 rotated files are kept');
      const last = readFileSync(path, 'utf8').trim().split('\n').at(-1) ?? '';
      assert.ok(last.length < 1200 && last.includes('"i":399') && last.includes('more chars'), last.slice(0, 200));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
