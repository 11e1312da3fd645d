/**
 * Property-based fuzzing of the E2B front (NOOK_E2B_LISTEN) over real loopback TCP: random
 * control-plane requests (paths, methods, JSON and junk bodies, query strings, headers) and
 * random in-sandbox requests (Connect envelopes and JSON messages, known and unknown services
 * and methods, junk Connect-Timeout-Ms / Keepalive-Ping-Interval / Authorization / port
 * headers, /files). No request may get a 500 or a Connect `internal`/`unknown` error, every
 * answer's status must come within a bound, and the daemon must serve /v1/health, the SDK
 * and a new command afterwards.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Sandbox } from 'e2b';
import type { TestDaemon } from '../helpers/daemon.js';
import { startE2bDaemon } from '../helpers/e2b.js';

/** The time one request has to produce its status line (a hang fails the run). */
const STATUS_WITHIN_MS = 15_000;
/** A stream that is still open after this is a live stream (legitimate), not a hang: it is cut. */
const BODY_WITHIN_MS = 3_000;

interface Reply {
  status: number;
  body: Buffer;
  contentType: string;
}

function send(url: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) }, agent: false });
    const hang = setTimeout(() => {
      req.destroy();
      reject(new Error(`${method} ${path}: no status within ${STATUS_WITHIN_MS} ms`));
    }, STATUS_WITHIN_MS);
    req.on('response', (res) => {
      clearTimeout(hang);
      const chunks: Buffer[] = [];
      const done = (): void => {
        clearTimeout(cut);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), contentType: String(res.headers['content-type'] ?? '') });
      };
      const cut = setTimeout(() => {
        req.destroy();
        done();
      }, BODY_WITHIN_MS);
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', done);
      res.on('error', done);
    });
    req.on('error', (e) => {
      clearTimeout(hang);
      reject(new Error(`${method} ${path}: ${e.message}`));
    });
    req.end(body);
  });
}

/** Printable ASCII (what an HTTP header may carry). */
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);
const junkNumber = fc.oneof(fc.constantFrom('', '-1', '0', '1', '1e3', '99999999999', 'NaN', ' 5', '0x10', '18446744073709551616'), headerValue);
const jsonObject = fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 });

function envelope(flags: number, payload: Buffer, lengthDelta: number): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(Math.max(0, payload.length + lengthDelta), 1);
  return Buffer.concat([head, payload]);
}

/** Statuses and Connect codes seen (printed at the end, and checked against). */
const stats = { requests: 0, byStatus: new Map<number, number>(), connectCodes: new Map<string, number>() };

function record(r: Reply, what: string): void {
  stats.requests++;
  stats.byStatus.set(r.status, (stats.byStatus.get(r.status) ?? 0) + 1);
  assert.ok(r.status !== 500 && r.status !== 0, `${what}: status ${r.status} ${r.body.toString().slice(0, 300)}`);
  const codes: string[] = [];
  if (r.contentType.includes('application/json') && r.status >= 400) {
    const parsed = JSON.parse(r.body.toString()) as { code?: unknown };
    if (typeof parsed.code === 'string') codes.push(parsed.code);
  }
  if (r.contentType.includes('application/connect+json')) {
    // The end-of-stream envelope (flag 0x02) may carry an error: never internal or unknown.
    for (let i = 0; i + 5 <= r.body.length; ) {
      const len = r.body.readUInt32BE(i + 1);
      if ((r.body[i] ?? 0) & 2 && i + 5 + len <= r.body.length) {
        const end = JSON.parse(r.body.subarray(i + 5, i + 5 + len).toString()) as { error?: { code?: string } };
        if (end.error?.code) codes.push(end.error.code);
      }
      i += 5 + len;
    }
  }
  for (const code of codes) {
    stats.connectCodes.set(code, (stats.connectCodes.get(code) ?? 0) + 1);
    assert.ok(code !== 'internal' && code !== 'unknown', `${what}: Connect error ${code}: ${r.body.toString().slice(0, 300)}`);
  }
}

describe('fuzzing the E2B front', () => {
  let d: TestDaemon;
  let url: string;
  let token: string;
  let opts: { apiUrl: string; sandboxUrl: string; apiKey: string };
  let sbx: Sandbox;
  let access: string;

  before(async () => {
    ({ d, url, token, opts } = await startE2bDaemon());
    sbx = await Sandbox.create({ ...opts, timeoutMs: 3_600_000 });
    access = (sbx as unknown as { envdAccessToken: string }).envdAccessToken;
  });
  after(async () => {
    process.stdout.write(`# e2b fuzz: ${stats.requests} requests, statuses ${JSON.stringify(Object.fromEntries(stats.byStatus))}, error codes ${JSON.stringify(Object.fromEntries(stats.connectCodes))}\n`);
    await d.teardown();
  });

  it('control plane: random paths, methods, bodies, queries and headers never get a 500 or hang', async () => {
    // Calls that would destroy, pause or shorten the target sandbox get other ids; creates name a missing template.
    const id = fc.oneof(fc.constantFrom('aaaaaaaaaaaaaaaaaaaa', '..', '%00', 'x'.repeat(300), ''), fc.stringMatching(/^[a-z0-9]{1,25}$/), fc.string({ maxLength: 30 }).map(encodeURIComponent));
    const readId = fc.oneof(id, fc.constant('TARGET'));
    const route = fc.oneof(
      fc.tuple(fc.constantFrom('POST'), fc.constantFrom('/sandboxes', '/v2/sandboxes')),
      fc.tuple(fc.constantFrom('GET'), fc.constantFrom('/sandboxes', '/v2/sandboxes')),
      fc.tuple(fc.constantFrom('GET'), readId.map((i) => `/sandboxes/${i}`)),
      fc.tuple(fc.constantFrom('GET'), readId.map((i) => `/sandboxes/${i}/metrics`)),
      fc.tuple(fc.constantFrom('POST', 'DELETE', 'PUT', 'PATCH'), fc.tuple(id, fc.constantFrom('', '/connect', '/resume', '/timeout', '/refreshes', '/pause', '/fork', '/logs', '/snapshots', '/nope')).map(([i, s]) => `/sandboxes/${i}${s}`)),
      fc.tuple(fc.constantFrom('GET', 'POST', 'DELETE', 'OPTIONS'), fc.constantFrom('/templates', '/v2/templates/x', '/volumes', '/secrets', '/snapshots', '/', '/v1/health', '/health', '/%2e%2e/etc/passwd', '//sandboxes')),
      fc.tuple(fc.constantFrom('GET', 'POST'), fc.string({ maxLength: 40 }).map((s) => `/${encodeURIComponent(s)}`)),
    );
    const body = fc.oneof(
      jsonObject.map((o) => ({ ...o, templateID: `nope-${String(o.templateID ?? '')}` })),
      fc.record({ templateID: fc.oneof(fc.constant(1), fc.constant(null), fc.string({ maxLength: 10 }).map((s) => `nope-${s}`)), timeout: fc.oneof(fc.integer(), fc.double(), fc.string()), metadata: fc.jsonValue({ maxDepth: 2 }), envVars: fc.jsonValue({ maxDepth: 2 }), autoPause: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: ['templateID'] }),
      fc.jsonValue({ maxDepth: 3 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
    );
    const query = fc.dictionary(fc.constantFrom('state', 'metadata', 'limit', 'nextToken', 'x'), fc.string({ maxLength: 30 }), { maxKeys: 4 });
    const headers = fc.record({ key: fc.constantFrom('right', 'right', 'right', 'right', 'wrong', 'none'), contentType: fc.constantFrom('application/json', 'text/plain', 'application/connect+json', ''), extra: headerValue }, { requiredKeys: ['key', 'contentType', 'extra'] });
    await fc.assert(
      fc.asyncProperty(route, body, query, headers, async ([method, rawPath], b, q, h) => {
        const path = rawPath.replace('TARGET', sbx.sandboxId);
        const qs = new URLSearchParams(q).toString();
        const hdrs: Record<string, string> = { 'x-fuzz': h.extra };
        if (h.key !== 'none') hdrs['x-api-key'] = h.key === 'right' ? token : 'x'.repeat(token.length);
        if (h.contentType) hdrs['content-type'] = h.contentType;
        const payload = method === 'GET' || method === 'OPTIONS' ? undefined : Buffer.from(typeof b === 'string' ? b : JSON.stringify(b));
        const r = await send(url, method, qs ? `${path}?${qs}` : path, hdrs, payload);
        record(r, `${method} ${path} ${payload?.toString().slice(0, 200) ?? ''}`);
      }),
      { numRuns: 250, seed: 1616 },
    );
    // Nothing was created by the fuzz (every create named a missing template).
    const listed = await Sandbox.list({ ...opts }).nextItems();
    assert.deepEqual(listed.map((s) => s.sandboxId), [sbx.sandboxId]);
  });

  it('in-sandbox Connect plane: random envelopes, messages, methods and junk headers never get a 500, internal or a hang', async () => {
    const method = fc.oneof(
      fc.constantFrom('Start', 'Connect', 'List', 'SendInput', 'SendSignal', 'CloseStdin', 'Update', 'StreamInput', 'Nope').map((m) => `/process.Process/${m}`),
      fc.constantFrom('Stat', 'MakeDir', 'Move', 'ListDir', 'Remove', 'WatchDir', 'CreateWatcher', 'GetWatcherEvents', 'RemoveWatcher', 'Nope').map((m) => `/filesystem.Filesystem/${m}`),
      fc.constantFrom('/other.Service/Start', '/process.Process/', '/process.Process/Start/x', '/files', '/health', '/', '/process.Process/' + 'A'.repeat(80)),
    );
    const path = fc.oneof(fc.constantFrom('/', '/tmp', '/home/user', '~', '..', '../../etc', '/proc/self', '/nonexistent/x', 'fuzz-dir', '/tmp/fuzz-a', ''), fc.string({ maxLength: 40 }));
    // Commands that end by themselves at once: the fuzz is after the protocol, not after sleeping.
    const processMsg = fc.record({ cmd: fc.oneof(fc.constantFrom('/bin/true', '/bin/echo', 'echo', '/nonexistent', ''), fc.string({ maxLength: 20 }).map((s) => `/nope/${s}`), fc.jsonValue({ maxDepth: 1 })), args: fc.oneof(fc.array(fc.string({ maxLength: 20 }), { maxLength: 4 }), fc.jsonValue({ maxDepth: 2 })), envs: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }), fc.jsonValue({ maxDepth: 2 })), cwd: fc.oneof(path, fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: [] });
    const message = fc.oneof(
      fc.record({ process: fc.oneof(processMsg, fc.record({ pid: fc.oneof(fc.integer(), fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 1 })), tag: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] })), tag: fc.jsonValue({ maxDepth: 1 }), stdin: fc.jsonValue({ maxDepth: 1 }), pty: fc.jsonValue({ maxDepth: 3 }), signal: fc.jsonValue({ maxDepth: 1 }), input: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }),
      fc.record({ path, source: path, destination: path, depth: fc.oneof(fc.integer({ min: -5, max: 40 }), fc.jsonValue({ maxDepth: 1 })), recursive: fc.jsonValue({ maxDepth: 1 }), watcherId: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }),
      jsonObject,
    );
    const encoded = fc.oneof(
      // A well-formed envelope around a message, or with lying length / flags.
      fc.tuple(message, fc.constantFrom(0, 0, 0, 1, 2, 4, 0xff), fc.constantFrom(0, 0, 0, -1, 1, 1000, 1 << 30)).map(([m, flags, delta]) => envelope(flags, Buffer.from(JSON.stringify(m)), delta)),
      // A bare JSON message (unary form).
      message.map((m) => Buffer.from(JSON.stringify(m))),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
    );
    const headers = fc.record(
      {
        'connect-timeout-ms': junkNumber,
        'keepalive-ping-interval': junkNumber,
        'connect-protocol-version': fc.constantFrom('1', '2', 'x'),
        // Never root (Basic cm9vdDo=): root's valid Remove/Move of random paths may rightly wreck /etc.
        authorization: fc.oneof(fc.constantFrom('Basic dXNlcjo=', 'Basic bm9ib2R5Og==', 'Basic ', 'Bearer x', 'Basic ' + 'A'.repeat(300)), headerValue),
        'content-type': fc.constantFrom('application/json', 'application/connect+json', 'application/proto', 'text/plain'),
        'connect-content-encoding': fc.constantFrom('identity', 'gzip', 'br'),
        'e2b-sandbox-port': fc.constantFrom('49983', '49983', '49983', 'abc', '0', '99999', '-1'),
      },
      { requiredKeys: ['content-type'] },
    );
    const auth = fc.constantFrom('token', 'token', 'token', 'token', 'token', 'token', 'apikey', 'wrong', 'none', 'other-id');
    await fc.assert(
      fc.asyncProperty(method, encoded, headers, auth, async (m, body, h, a) => {
        const hdrs: Record<string, string> = { 'e2b-sandbox-id': a === 'other-id' ? 'bbbbbbbbbbbbbbbbbbbb' : sbx.sandboxId, 'e2b-sandbox-port': '49983' };
        for (const [k, v] of Object.entries(h)) if (v !== undefined) hdrs[k] = v;
        if (a === 'token' || a === 'other-id') hdrs['x-access-token'] = access;
        if (a === 'apikey') hdrs['x-api-key'] = token;
        if (a === 'wrong') hdrs['x-access-token'] = 'f'.repeat(access.length);
        const r = await send(url, 'POST', m, hdrs, body);
        record(r, `${m} ${JSON.stringify(h)} ${body.toString('latin1').slice(0, 200)}`);
      }),
      { numRuns: 300, seed: 1617 },
    );
  });

  it("code interpreter's port: random paths, bodies and cells through the proxy never get a 500 or a hang", async () => {
    const ci = await Sandbox.create('code-interpreter-v1', { ...opts });
    const traffic = (ci as unknown as { trafficAccessToken: string }).trafficAccessToken;
    const path = fc.oneof(fc.constantFrom('/execute', '/execute', '/contexts', '/contexts/default', '/contexts/nope/restart', '/contexts/default/restart', '/health', '/'), fc.string({ maxLength: 30 }).map((x) => `/${encodeURIComponent(x)}`));
    const code = fc.oneof(fc.constantFrom('1 + 1', 'print("x")', 'raise ValueError("v")', 'def (', 'import sys; sys.stderr.write("e")', '"\\u2603" * 3', 'None'), fc.string({ maxLength: 40 }));
    const body = fc.oneof(
      fc.record({ code: fc.oneof({ arbitrary: code, weight: 4 }, fc.jsonValue({ maxDepth: 1 })), context_id: fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, fc.constant('default'), fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 1 })), language: fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, fc.constantFrom('python', 'r', 'js'), fc.jsonValue({ maxDepth: 1 })), env_vars: fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, fc.jsonValue({ maxDepth: 2 })), cwd: fc.oneof(fc.constantFrom('/tmp', '/nope', '/etc/passwd'), fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: ['code'] }).map((o) => Buffer.from(JSON.stringify(o))),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'POST', 'POST', 'DELETE'), path, body, async (method, p, b) => {
        const hdrs = { 'e2b-sandbox-id': ci.sandboxId, 'e2b-sandbox-port': '49999', 'e2b-traffic-access-token': traffic, 'content-type': 'application/json' };
        const r = await send(url, method, p, hdrs, method === 'GET' ? undefined : b);
        record(r, `ci ${method} ${p} ${b.toString('latin1').slice(0, 200)}`);
      }),
      { numRuns: 150, seed: 1618 },
    );
    assert.equal((await ci.commands.run('echo ci-alive', { cwd: '/' })).stdout, 'ci-alive\n');
  });

  it('the daemon still answers /v1/health, the SDK and a new command', async () => {
    assert.equal((await d.client.health()).ok, true);
    // cwd /: the fuzz may well have emptied or moved the user's home (valid Remove/Move calls).
    const r = await sbx.commands.run('echo still-here', { cwd: '/' });
    assert.equal(r.stdout, 'still-here\n');
    assert.ok(stats.requests >= 700, `only ${stats.requests} requests were made`);
    assert.doesNotMatch(d.log, /e2b: internal error/);
  });
});
