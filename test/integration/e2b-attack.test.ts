/**
 * Attacks on the E2B front's in-sandbox API: malformed and oversized Connect envelopes,
 * unknown RPCs, a sandbox killed under a streaming command, a client that goes away.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from 'e2b';
import type { TestDaemon } from '../helpers/daemon.js';
import { startE2bDaemon } from '../helpers/e2b.js';

function frame(message: object | Buffer, flags = 0, lengthOverride?: number): Buffer {
  const body = Buffer.isBuffer(message) ? message : Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(lengthOverride ?? body.length, 1);
  return Buffer.concat([head, body]);
}

/** Splits a Connect stream body into its envelopes. */
function envelopes(buf: Buffer): { flags: number; json: Record<string, unknown> }[] {
  const out: { flags: number; json: Record<string, unknown> }[] = [];
  for (let i = 0; i + 5 <= buf.length; ) {
    const len = buf.readUInt32BE(i + 1);
    out.push({ flags: buf[i] ?? 0, json: JSON.parse(buf.subarray(i + 5, i + 5 + len).toString()) as Record<string, unknown> });
    i += 5 + len;
  }
  return out;
}

describe('E2B front under attack', () => {
  let d: TestDaemon;
  let url: string;
  let opts: { apiUrl: string; sandboxUrl: string; apiKey: string };
  let sbx: Sandbox;
  let headers: Record<string, string>;

  before(async () => {
    ({ d, url, opts } = await startE2bDaemon());
    sbx = await Sandbox.create({ ...opts });
    const token = (sbx as unknown as { envdAccessToken: string }).envdAccessToken;
    headers = { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983', 'X-Access-Token': token, 'Connect-Protocol-Version': '1' };
  });
  after(async () => {
    await d.teardown();
  });

  const start = (body: Buffer, extra: Record<string, string> = {}) =>
    fetch(`${url}/process.Process/Start`, { method: 'POST', headers: { ...headers, 'content-type': 'application/connect+json', ...extra }, body: new Uint8Array(body) });

  it('malformed envelopes get a Connect error, never a crash or a hang', async () => {
    const cases: [string, Buffer, string][] = [
      ['short prefix', Buffer.from([0, 0]), 'invalid_argument'],
      ['length beyond the body', frame({ process: { cmd: 'true' } }, 0, 9999), 'invalid_argument'],
      ['trailing bytes', Buffer.concat([frame({ process: { cmd: 'true' } }), Buffer.from('xx')]), 'invalid_argument'],
      ['compressed flag', frame({ process: { cmd: 'true' } }, 1), 'unimplemented'],
      ['end-stream flag on a request', frame({}, 2), 'invalid_argument'],
      ['not JSON', frame(Buffer.from('{nope')), 'invalid_argument'],
      ['JSON array', frame(Buffer.from('[1]')), 'invalid_argument'],
      ['no command', frame({ process: {} }), 'invalid_argument'],
      ['args not strings', frame({ process: { cmd: 'echo', args: [1] } }), 'invalid_argument'],
    ];
    for (const [what, body, code] of cases) {
      const res = await start(body);
      assert.ok(res.status >= 400, `${what}: ${res.status}`);
      assert.equal(((await res.json()) as { code: string }).code, code, what);
    }
    // The daemon still serves.
    assert.equal((await sbx.commands.run('echo alive')).stdout, 'alive\n');
  });

  it('an oversized message is refused without reading it whole', async () => {
    const res = await start(frame({}, 0, 64 * 1024 * 1024));
    assert.equal(res.status, 429);
    assert.equal(((await res.json()) as { code: string }).code, 'resource_exhausted');
    const big = Buffer.alloc(5 * 1024 * 1024, 0x20);
    const unary = await fetch(`${url}/process.Process/List`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: new Uint8Array(big) });
    assert.equal(unary.status, 429);
  });

  it('unknown RPCs and services answer unimplemented; a wrong access token unauthenticated', async () => {
    for (const path of ['/process.Process/Nope', '/filesystem.Filesystem/CreateWatcher', '/other.Service/Start', '/process.Process/StreamInput']) {
      const res = await fetch(`${url}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' }).catch((e: Error) => { throw new Error(`${path}: ${e.message} ${String((e as { cause?: unknown }).cause)}`); });
      assert.equal(res.status, 501, path);
      assert.equal(((await res.json()) as { code: string }).code, 'unimplemented', path);
    }
    const res = await fetch(`${url}/process.Process/List`, { method: 'POST', headers: { ...headers, 'X-Access-Token': 'x'.repeat(64), 'content-type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { code: string }).code, 'unauthenticated');
  });

  it('a sandbox killed under a streaming command ends the stream with an error envelope', async () => {
    const victim = await Sandbox.create({ ...opts });
    const token = (victim as unknown as { envdAccessToken: string }).envdAccessToken;
    const res = await fetch(`${url}/process.Process/Start`, {
      method: 'POST',
      headers: { ...headers, 'E2b-Sandbox-Id': victim.sandboxId, 'X-Access-Token': token, 'content-type': 'application/connect+json' },
      body: new Uint8Array(frame({ process: { cmd: '/bin/sleep', args: ['600'] } })),
    });
    assert.equal(res.status, 200);
    const body = res.arrayBuffer();
    await new Promise((r) => setTimeout(r, 500));
    await victim.kill();
    const all = envelopes(Buffer.from(await Promise.race([body, new Promise<ArrayBuffer>((_, rej) => setTimeout(() => rej(new Error('the stream hung')), 20_000))])));
    assert.deepEqual(Object.keys((all[0]?.json.event ?? {}) as object), ['start']);
    const last = all.at(-1);
    assert.equal(last?.flags, 2);
    assert.equal((last?.json.error as { code: string } | undefined)?.code, 'unavailable');
  });

  it('a client that goes away mid-stream takes its command along, unless it is a background one (no deadline)', async () => {
    const open = (cmd: string, deadline: boolean): Promise<() => void> =>
      new Promise((resolve, reject) => {
        const body = frame({ process: { cmd: '/bin/sh', args: ['-c', cmd] } });
        const req = request(`${url}/process.Process/Start`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/connect+json', 'content-length': String(body.length), ...(deadline ? { 'Connect-Timeout-Ms': '600000' } : {}) },
        });
        req.on('response', (res) => res.once('data', () => resolve(() => req.destroy())));
        req.on('error', () => undefined);
        req.once('error', reject);
        req.end(body);
      });
    const hangUpForeground = await open('exec sleep 501', true);
    const hangUpBackground = await open('exec sleep 502', false);
    hangUpForeground();
    hangUpBackground();
    let ps = '';
    for (let i = 0; i < 50; i++) {
      ps = (await sbx.commands.run('ps -eo args', { user: 'root' })).stdout;
      if (!ps.includes('sleep 501')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(!ps.includes('sleep 501'), 'the foreground command outlived its client');
    assert.ok(ps.includes('sleep 502'), 'the background command was killed');
    const bg = (await sbx.commands.list()).find((p) => p.args.includes('exec sleep 502'));
    assert.ok(bg);
    await sbx.commands.kill(bg.pid);
  });
});
