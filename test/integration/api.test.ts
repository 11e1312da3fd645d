import assert from 'node:assert/strict';
import { request } from 'node:http';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ERROR_CODES } from '../../src/api/errors.js';
import { routes } from '../../src/api/routes.js';
import { NookClient } from '../../src/sdk/client.js';
import { startDaemon, TestDaemon, waitFor } from '../helpers/daemon.js';

/** A raw HTTP call over the daemon's unix socket: what any non-SDK client sends. */
function call(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('HTTP API over the unix socket', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
    await d.client.sandboxes.create({ name: 'api', image: 'minimal' });
  });
  after(async () => d.teardown());

  it('serves the socket with mode 0600', () => {
    assert.equal(statSync(d.socket).mode & 0o777, 0o600);
  });

  it('answers bad input with a known code, a message and a hint, never a 500', async () => {
    const cases: [string, string, string | undefined, number, string][] = [
      ['POST', '/v1/sandboxes', '{not json', 400, 'INVALID_ARGUMENT'],
      ['POST', '/v1/sandboxes', JSON.stringify({ name: 'x', bogus: 1 }), 400, 'INVALID_ARGUMENT'],
      ['POST', '/v1/sandboxes', JSON.stringify({ name: 'Bad_Name' }), 400, 'INVALID_NAME'],
      ['POST', '/v1/sandboxes', JSON.stringify({ memoryMiB: 1 }), 400, 'INVALID_ARGUMENT'],
      ['POST', '/v1/sandboxes', JSON.stringify({ ttlMs: -5 }), 400, 'INVALID_ARGUMENT'],
      ['POST', '/v1/sandboxes/api/exec', JSON.stringify({ argv: [] }), 400, 'INVALID_ARGUMENT'],
      ['POST', '/v1/sandboxes/api/exec', JSON.stringify({ argv: ['true'], timeoutMs: 10 ** 12 }), 400, 'INVALID_ARGUMENT'],
      ['POST', '/v1/sandboxes/api/exec', JSON.stringify({ argv: ['true'], cwd: 'relative' }), 400, 'INVALID_ARGUMENT'],
      ['POST', '/v1/sandboxes/nope/exec', JSON.stringify({ argv: ['true'] }), 404, 'SANDBOX_NOT_FOUND'],
      ['GET', '/v1/sandboxes/nope', undefined, 404, 'SANDBOX_NOT_FOUND'],
      ['GET', '/v1/images/nope', undefined, 404, 'IMAGE_NOT_FOUND'],
      ['POST', '/v1/images', JSON.stringify({ preset: 'windows' }), 400, 'INVALID_ARGUMENT'],
      ['GET', '/v1/nothing-here', undefined, 404, 'NOT_FOUND'],
      ['GET', '/v1/sandboxes?label=novalue', undefined, 400, 'INVALID_ARGUMENT'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await call(d.socket, method, path, body);
      assert.equal(r.status, status, `${method} ${path} ${body}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.code, code, `${method} ${path} ${body}`);
      assert.equal(typeof r.json.message, 'string');
      assert.ok(Object.hasOwn(ERROR_CODES, r.json.code as string));
    }
  });

  it('checks query and path parameters against the route table: a bad value answers 400 naming it', async () => {
    const cases: [string, string, string, string][] = [
      ['DELETE', '/v1/sandboxes/api?withSnapshots=yes', 'withSnapshots', 'INVALID_ARGUMENT'],
      ['GET', '/v1/sandboxes/api/files/content?path=/etc/hostname&maxBytes=lots', 'maxBytes', 'INVALID_ARGUMENT'],
      ['GET', '/v1/sandboxes/api/files/tar?path=/etc&maxBytes=-1', 'maxBytes', 'INVALID_ARGUMENT'],
      ['POST', '/v1/sandboxes/api/files/content?path=/tmp/x&mode=999', 'mode', 'INVALID_ARGUMENT'],
      ['GET', '/v1/sandboxes?state=sleeping', 'state', 'INVALID_ARGUMENT'],
      ['GET', '/v1/audit?limit=many', 'limit', 'INVALID_ARGUMENT'],
      ['POST', '/v1/images/import?name=Bad%20Name', 'name', 'INVALID_NAME'],
      ['DELETE', '/v1/sandboxes/api/expose/99999', 'port', 'INVALID_ARGUMENT'],
    ];
    for (const [method, path, field, code] of cases) {
      const r = await call(d.socket, method, path);
      assert.equal(r.status, 400, `${method} ${path}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.code, code, path);
      assert.match(r.json.message as string, new RegExp(`parameter ${field}:`), path);
      // A refused mutating call is still one audited operation with a receipt.
      if (method !== 'GET') assert.match(String(r.json.receipt), /^rcpt/, `${path} has a receipt`);
    }
    assert.equal((await call(d.socket, 'GET', '/v1/sandboxes/api')).json.state, 'running', 'the refused destroy did nothing');
    // The flag still reads "false" as false (z.coerce.boolean would not).
    const listed = await call(d.socket, 'GET', '/v1/images?all=false');
    assert.equal(listed.status, 200);
  });

  it('publishes an OpenAPI document covering every route', async () => {
    const r = await call(d.socket, 'GET', '/v1/openapi.json');
    assert.equal(r.status, 200);
    assert.equal(r.json.openapi, '3.1.0');
    const paths = r.json.paths as Record<string, Record<string, { requestBody?: unknown }>>;
    for (const def of Object.values(routes)) {
      assert.ok(paths[def.path]?.[def.method], `${def.method} ${def.path} documented`);
    }
    assert.ok(paths['/v1/sandboxes']?.post?.requestBody, 'create documents its body');
  });

  it('reports health', async () => {
    const h = await d.client.health();
    assert.equal(h.ok, true);
    assert.equal(h.runtime.name, 'crun');
    assert.equal(h.storage.driver, 'btrfs');
    assert.equal(h.stateDir, d.stateDir);
  });
});

describe('TCP listener', () => {
  let d: TestDaemon;
  const token = 'test-token-0123456789abcdef';
  const port = 20_000 + Math.floor(Math.random() * 20_000);

  before(async () => {
    d = await startDaemon({ NOOK_TCP: `127.0.0.1:${port}`, NOOK_TOKEN: token, NOOK_TCP_MAX_CONNECTIONS: '32', NOOK_HEADERS_TIMEOUT_MS: '1500' });
  });
  after(async () => d.teardown());

  it('refuses calls without the bearer token', async () => {
    const bad = new NookClient({ baseUrl: `http://127.0.0.1:${port}`, token: 'wrong-token-wrong-token' });
    await assert.rejects(bad.health(), (e: Error & { code?: string }) => e.code === 'UNAUTHORIZED');
    const none = new NookClient({ baseUrl: `http://127.0.0.1:${port}`, token: '' });
    await assert.rejects(none.health(), (e: Error & { code?: string }) => e.code === 'UNAUTHORIZED');
  });

  it('bounds what unauthenticated connections can hold: a connection cap and a head timeout', async () => {
    const fds = (): number => readdirSync(`/proc/${d.proc?.pid ?? 0}/fd`).length;
    const before = fds();
    // 200 clients that connect and send half a request head, never the rest.
    const idle = await Promise.all(
      Array.from({ length: 200 }, () => new Promise<Socket>((resolve) => {
        const s = connect(port, '127.0.0.1', () => { s.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n'); resolve(s); });
        s.on('error', () => resolve(s));
      })),
    );
    try {
      assert.ok(fds() - before <= 40, `the daemon holds ${fds() - before} more descriptors for 200 idle clients (cap 32)`);
      await d.client.health(); // the unix socket is unaffected
      // The head timeout frees them all, and the listener serves again.
      await waitFor(() => fds() - before <= 2, 10_000, 'half-sent requests to be dropped');
      const client = new NookClient({ baseUrl: `http://127.0.0.1:${port}`, token });
      assert.equal((await client.health()).ok, true);
    } finally {
      for (const s of idle) s.destroy();
    }
  });

  it('serves the whole API with the token', async () => {
    const client = new NookClient({ baseUrl: `http://127.0.0.1:${port}`, token });
    const sb = await client.sandboxes.create({ name: 'over-tcp', image: 'minimal' });
    assert.equal((await sb.exec(['echo', 'tcp'])).stdout, 'tcp\n');
    await sb.destroy();
  });
});

describe('dir storage driver end to end', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon({ NOOK_STORAGE: 'dir' });
  });
  after(async () => d.teardown());

  it('runs persistent sandboxes on overlayfs', async () => {
    assert.equal((await d.client.health()).storage.driver, 'dir');
    const sb = await d.client.sandboxes.create({ name: 'on-dir', image: 'minimal' });
    await sb.exec(['sh', '-c', 'echo kept > /work/f']);
    await sb.stop();
    await sb.resume();
    assert.equal((await sb.exec(['cat', '/work/f'])).stdout, 'kept\n');
    await sb.destroy();
  });
});

describe('runc fallback driver', { skip: existsSync('/usr/sbin/runc') || existsSync('/usr/bin/runc') ? false : 'runc is not installed (apt-get install runc)' }, () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon({ NOOK_RUNTIME: 'runc' });
  });
  after(async () => d.teardown());

  it('runs the same isolated, persistent sandboxes', async () => {
    assert.equal((await d.client.health()).runtime.name, 'runc');
    const sb = await d.client.sandboxes.create({ name: 'on-runc', image: 'minimal' });
    const r = await sb.exec(['sh', '-c', 'cat /proc/self/uid_map; grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; ls /sys/class/net; echo kept > /work/f']);
    assert.match(r.stdout, /^\s+0\s+100000\s+65536/);
    assert.match(r.stdout, /NoNewPrivs:\s+1/);
    assert.match(r.stdout, /Seccomp:\s+2/);
    assert.match(r.stdout, /\nlo\n/);
    const timedOut = await sb.exec(['sleep', '30'], { timeoutMs: 500 });
    assert.equal(timedOut.exitCode, 124);
    await sb.stop();
    await sb.resume();
    assert.equal((await sb.exec(['cat', '/work/f'])).stdout, 'kept\n');
    await sb.snapshots.create({ name: 's' });
    const [fork] = await sb.fork({ name: 'runc-fork' });
    assert.equal((await fork?.exec(['cat', '/work/f']))?.stdout, 'kept\n');
    await fork?.destroy();
    await sb.destroy({ withSnapshots: true });
  });
});
