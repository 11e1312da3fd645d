/**
 * Property-based fuzzing of every endpoint over the real socket: arbitrary JSON bodies,
 * path segments and query values. The daemon must never answer 500 INTERNAL, every error
 * must carry a code from the one table, and it must still be healthy afterwards.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ERROR_CODES } from '../../src/api/errors.js';
import { routes, type RouteDef } from '../../src/api/routes.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

function call(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: body === undefined ? {} : { 'content-type': 'application/json' }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// Shutdown would end the run; the WebSocket and streaming routes have their own tests.
const SKIP = new Set(['shutdown', 'pty', 'events', 'processLogs', 'exportAudit', 'exportImage', 'importImage', 'writeFile']);

describe('fuzzing every endpoint', () => {
  let d: TestDaemon;
  const stats = { requests: 0, byStatus: new Map<number, number>() };

  before(async () => {
    d = await startDaemon({ NOOK_DEFAULT_IMAGE: 'minimal', NOOK_MASTER_KEY_FILE: '/tmp/nook-fuzz-master.key' });
    await d.client.images.build({ preset: 'minimal' });
    await d.client.sandboxes.create({ name: 'target', image: 'minimal' });
  });
  after(async () => {
    process.stdout.write(`# fuzz: ${stats.requests} requests, statuses ${JSON.stringify(Object.fromEntries(stats.byStatus))}\n`);
    await d.teardown();
    await import('node:fs').then((fs) => fs.rmSync('/tmp/nook-fuzz-master.key', { force: true }));
  });

  for (const [name, def] of Object.entries(routes) as [string, RouteDef][]) {
    if (SKIP.has(name)) continue;
    it(`${def.method.toUpperCase()} ${def.path}`, async () => {
      const segment = fc.oneof(fc.constant('target'), fc.string({ maxLength: 40 }), fc.constantFrom('..', '%00', 'a'.repeat(300), 'sb_nope', 'x@y'));
      await fc.assert(
        fc.asyncProperty(segment, fc.jsonValue({ maxDepth: 3 }), fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 3 }), async (seg, body, query) => {
          const path = def.path.replace(/\{\w+\}/g, () => encodeURIComponent(seg));
          const qs = new URLSearchParams(query).toString();
          const r = await call(d.socket, def.method.toUpperCase(), qs ? `${path}?${qs}` : path, def.method === 'get' ? undefined : JSON.stringify(body));
          stats.requests++;
          stats.byStatus.set(r.status, (stats.byStatus.get(r.status) ?? 0) + 1);
          if (r.status >= 400) {
            const err = JSON.parse(r.text) as { code?: string; message?: string };
            assert.ok(err.code && Object.hasOwn(ERROR_CODES, err.code), `${def.method} ${path}: unknown error ${r.text}`);
            assert.notEqual(err.code, 'INTERNAL', `${def.method} ${path} ${JSON.stringify(body)}: ${r.text}`);
          }
        }),
        { numRuns: 40, seed: 4242 },
      );
    });
  }

  it('is still healthy', async () => {
    assert.equal((await d.client.health()).ok, true);
    // The fuzz may well have destroyed 'target' (a valid request); a new sandbox must work.
    const sb = await d.client.sandboxes.create({ name: 'after-fuzz', image: 'minimal' });
    assert.equal((await sb.exec(['echo', 'ok'])).stdout, 'ok\n');
  });
});
