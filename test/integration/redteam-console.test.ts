/**
 * An attacker's review of the web console, against a real daemon with its TCP listener on
 * loopback. No browser: the requests are the ones a browser (or a hostile program on the
 * host, or code in a sandbox) would send, header by header.
 *
 * The central attack: cookies are scoped by host, not by port (RFC 6265 §8.5), so a browser
 * logged in to the console at 127.0.0.1:PORT sends its session cookie to every other port
 * of 127.0.0.1, among them every exposed sandbox port, whose bytes go to code in the
 * sandbox. That code can replay the cookie with any Origin it likes.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { Sandbox } from '../../src/sdk/client.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

/** Sends one request head to 127.0.0.1:port and returns what came back within timeoutMs. */
function rawExchange(port: number, bytes: string, until: RegExp, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, timeoutMs);
    s.on('data', (b: Buffer) => {
      got += b.toString('latin1');
      if (until.test(got)) done();
    });
    s.on('close', done);
    s.on('error', () => undefined);
    s.on('connect', () => s.write(bytes, 'latin1'));
  });
}

describe('red team: the web console', () => {
  let d: TestDaemon;
  let victim: Sandbox;
  let evil: Sandbox;
  const token = 'redteam-console-token-0123456789';
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const base = `http://127.0.0.1:${port}`;
  const sameOriginHeaders = { origin: base, 'sec-fetch-site': 'same-origin' };

  /** Logs in as the console page does; returns the Set-Cookie value and the login answer. */
  const login = async (): Promise<{ cookie: string; body: Record<string, unknown> }> => {
    const { url } = await d.client.consoleLogin();
    const res = await fetch(`${base}/console/session`, {
      method: 'POST',
      headers: { ...sameOriginHeaders, 'content-type': 'application/json' },
      body: JSON.stringify({ token: url.split('#login=')[1] }),
    });
    assert.equal(res.status, 200);
    const cookie = /^(nook_console=[^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1];
    assert.ok(cookie, 'a session cookie');
    return { cookie, body: (await res.json()) as Record<string, unknown> };
  };

  before(async () => {
    d = await startDaemon({ NOOK_TCP: `127.0.0.1:${port}`, NOOK_TOKEN: token });
    victim = await d.client.sandboxes.create({ name: 'victim', image: 'minimal' });
    await victim.exec(['sh', '-c', 'echo secret-of-the-victim > /work/secret']);
    evil = await d.client.sandboxes.create({ name: 'evil', image: 'minimal' });
  });
  after(async () => {
    await d?.teardown();
  });

  it('a session cookie a sandbox harvests through its exposed port acts on nothing (read or write, HTTP or terminal)', async () => {
    const { cookie } = await login();
    // The sandbox's "web app" echoes every request it receives (what a hostile server records).
    void evil.exec(['nc', '-ll', '-p', '8001', '-e', 'cat'], { timeoutMs: 120_000 }).catch(() => undefined);
    const ex = await evil.expose(8001);
    // The browser opens the exposed link and sends the cookies it holds for 127.0.0.1.
    const head = `GET /?token=${ex.token} HTTP/1.1\r\nHost: 127.0.0.1:${ex.hostPort}\r\nCookie: ${cookie}\r\n\r\n`;
    let echoed = '';
    await waitFor(async () => (echoed = await rawExchange(ex.hostPort, head, /\r\n\r\n/, 2000)).includes('Cookie:'), 10_000, 'the sandbox to echo');
    const stolen = /Cookie: (nook_console=[^\r]+)/.exec(echoed)?.[1];
    assert.equal(stolen, cookie, 'the sandbox sees the cookie (a browser sends it to every port of the host)');

    // Replayed from the sandbox's side with a forged Origin: it must be refused everywhere.
    const forged = { cookie: stolen, ...sameOriginHeaders };
    const read = await fetch(`${base}/v1/sandboxes/victim/files/content?path=/work/secret`, { headers: forged });
    assert.equal(read.status, 401, `reading the victim's files with a stolen cookie: ${read.status}`);
    const exec = await fetch(`${base}/v1/sandboxes/victim/exec`, {
      method: 'POST',
      headers: { ...forged, 'content-type': 'application/json' },
      body: JSON.stringify({ argv: ['sh', '-c', 'echo pwned > /work/pwned'] }),
    });
    assert.equal(exec.status, 401, `exec in the victim with a stolen cookie: ${exec.status}`);
    const made = await fetch(`${base}/v1/console/login`, { method: 'POST', headers: { ...forged, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(made.status, 401, 'minting login links with a stolen cookie');
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/sandboxes/victim/pty`, { headers: forged });
    const opened = await new Promise<boolean>((resolve) => {
      ws.on('open', () => resolve(true));
      ws.on('error', () => resolve(false));
      ws.on('unexpected-response', () => resolve(false));
    });
    ws.terminate();
    assert.equal(opened, false, 'a terminal with a stolen cookie');
    assert.notEqual((await victim.exec(['cat', '/work/pwned'])).exitCode, 0, 'nothing ran in the victim');
  });

  it('static serving: traversal (literal, encoded, double-encoded, NUL) never reaches a host file; answers carry the CSP', async () => {
    for (const target of ['/console/../../../../etc/passwd', '/console/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/console/..%2f..%2f..%2fetc%2fpasswd', '/console/%252e%252e/etc/passwd', '/console/index.html%00.js', '/console//etc/passwd', '/console/..\\..\\package.json']) {
      const got = await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`, /\r\n\r\n[\s\S]*$/, 3000);
      assert.doesNotMatch(got, /root:x:0:0|"name": "nook"/, target);
      assert.match(got, /^HTTP\/1\.1 (400|401|404)/, `${target}: ${got.slice(0, 40)}`);
    }
    const page = await fetch(`${base}/console/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self';/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  });

  it('the console page itself still works: cookie plus the proof the login answered (header, download link, terminal)', async () => {
    const { cookie, body } = await login();
    const proof = body.proof;
    assert.equal(typeof proof, 'string', 'the login answers a proof the page keeps');
    const headers = { cookie, 'x-nook-session': proof as string, ...sameOriginHeaders };
    const list = await fetch(`${base}/v1/sandboxes`, { headers });
    assert.equal(list.status, 200);
    const dl = await fetch(`${base}/v1/sandboxes/victim/files/content?${new URLSearchParams({ path: '/work/secret', session: proof as string }).toString()}`, { headers: { cookie } });
    assert.equal(dl.status, 200, 'a download link carries the proof in its query');
    assert.equal(await dl.text(), 'secret-of-the-victim\n');
    // A mutating call takes the proof only as a header: its query would be kept in the audit record.
    const inQuery = await fetch(`${base}/v1/sandboxes/victim/exec?session=${encodeURIComponent(proof as string)}`, {
      method: 'POST',
      headers: { cookie, ...sameOriginHeaders, 'content-type': 'application/json' },
      body: JSON.stringify({ argv: ['true'] }),
    });
    assert.equal(inQuery.status, 401, 'the proof in a mutating call\'s query');
    const records = JSON.stringify(await d.client.audit.list({ limit: 50 }));
    assert.ok(!records.includes(proof as string), 'no session proof in the audit log');
    // The proof of one session does not fit another's cookie.
    const other = await login();
    assert.equal((await fetch(`${base}/v1/sandboxes`, { headers: { ...headers, cookie: other.cookie } })).status, 401);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/sandboxes/victim/pty?session=${encodeURIComponent(proof as string)}`, { headers: { cookie, ...sameOriginHeaders } });
    const opened = await new Promise<boolean>((resolve) => {
      ws.on('open', () => resolve(true));
      ws.on('error', () => resolve(false));
      ws.on('unexpected-response', () => resolve(false));
    });
    ws.terminate();
    assert.equal(opened, true, 'the console terminal opens');
  });
});
