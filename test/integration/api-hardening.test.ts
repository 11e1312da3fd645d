/**
 * Hostile API clients: bodies too deep or too large, malformed escapes, and the state files
 * that hold secrets. The daemon answers each with a clear 4xx and keeps serving.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

interface Answer {
  status: number;
  json: Record<string, unknown> | null;
}

/** Sends `chunks` as a chunked (no content-length) or sized body, over the daemon's socket. */
function send(socketPath: string, method: string, path: string, chunks: Iterable<Buffer | string>, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    // A connection of its own: one the daemon refused mid-body is never reused.
    const req = request({ socketPath, method, path, agent: false, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        answered = true;
        req.destroy(); // stop sending what the daemon refused
        let json: Record<string, unknown> | null = null;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // not JSON: json stays null and the assertion names the status
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    // The daemon may answer and close before the whole body is sent: that is the point.
    req.on('error', (e: NodeJS.ErrnoException) => (answered ? undefined : reject(e)));
    void (async () => {
      for (const c of chunks) {
        if (req.destroyed) return;
        if (!req.write(c)) await new Promise((r) => setTimeout(r, 5));
      }
      req.end();
    })();
  });
}

/** Resident memory of a process, from /proc. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

describe('API hardening: hostile bodies and paths', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('a body nested 200,000 deep answers 400, not 500, and the daemon keeps serving', async () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    for (const path of ['/v1/sandboxes', '/v1/run', '/v1/volumes']) {
      const r = await send(d.socket, 'POST', path, [deep]);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json?.code, 'INVALID_ARGUMENT');
      assert.match(String(r.json?.message), /nests deeper/);
    }
    // A legitimately nested body (labels, env) still works.
    const ok = await send(d.socket, 'POST', '/v1/sandboxes', [JSON.stringify({ name: 'nested-ok', image: 'minimal', labels: { a: 'b' } })]);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    await d.client.health();
  });

  it('a 400 MB JSON body is refused with 413 without the daemon buffering it', async () => {
    const pid = d.proc?.pid ?? 0;
    const before = rssMiB(pid);
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    function* body(): Generator<Buffer> {
      yield Buffer.from('{"name":"big","image":"minimal","labels":{"x":"');
      for (let i = 0; i < 400; i++) yield chunk;
      yield Buffer.from('"}}');
    }
    // Chunked: no content-length for the daemon to trust, it must count.
    const chunked = await send(d.socket, 'POST', '/v1/sandboxes', body());
    assert.equal(chunked.status, 413, JSON.stringify(chunked.json));
    assert.equal(chunked.json?.code, 'PAYLOAD_TOO_LARGE');
    // Declared: refused from the header alone.
    const declared = await send(d.socket, 'POST', '/v1/sandboxes', ['{}'], { 'content-length': String(400 * 1024 * 1024) });
    assert.equal(declared.status, 413);
    assert.ok(rssMiB(pid) - before < 128, `daemon RSS grew ${Math.round(rssMiB(pid) - before)} MiB`);
    await d.client.health();
    await assert.rejects(d.client.sandboxes.get('big'));
  });

  it('a malformed %-escape in a path parameter answers 400', async () => {
    for (const path of ['/v1/sandboxes/%E0%A4%A/stop', '/v1/sandboxes/%/snapshots', '/v1/volumes/%ZZ/unlock']) {
      const r = await send(d.socket, 'POST', path, ['{}']);
      assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status} ${JSON.stringify(r.json)}`);
      assert.notEqual(r.json?.code, 'INTERNAL');
    }
    await d.client.health();
  });

  it('keeps the state database and its WAL root-only (they hold env values and tokens)', async () => {
    await d.client.sandboxes.create({ name: 'secrets', image: 'minimal', env: { API_KEY: 'k-123' } });
    for (const f of ['nook.db', 'nook.db-wal', 'nook.db-shm']) {
      const mode = statSync(`${d.stateDir}/${f}`).mode & 0o777;
      assert.equal(mode, 0o600, `${f} is ${mode.toString(8)}`);
    }
  });
});
