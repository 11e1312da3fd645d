/**
 * The web console's logins and sessions (src/daemon/http/console-auth.ts), and its bundle:
 * a login link works once and briefly, a session cookie cannot be forged, tampered with,
 * carried to a daemon with another token, or used past its expiry or logout; unused login
 * links cannot pile up; the browser bundle holds no Node module.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

process.env.NOOK_CONSOLE_SESSION_MS = '2000';
process.env.NOOK_CONSOLE_LOGIN_MS = '2000';
const { ConsoleAuth, cookieValue, sameOrigin } = await import('../../src/daemon/http/console-auth.js');

const TOKEN = 'unit-test-token-0123456789';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function authAt(): InstanceType<typeof ConsoleAuth> {
  const auth = new ConsoleAuth(TOKEN);
  auth.baseUrl = 'http://127.0.0.1:7878';
  return auth;
}
const tokenOf = (url: string): string => url.split('#login=')[1] ?? '';

describe('console logins', () => {
  it('a login link is refused without a TCP listener, with a hint that names NOOK_TCP', () => {
    assert.throws(() => new ConsoleAuth(TOKEN).issueLogin(), (e: Error & { code?: string; hint?: string }) => e.code === 'NOT_SUPPORTED' && /NOOK_TCP=/.test(e.hint ?? ''));
  });

  it('a login token works once, and not after it expired', async () => {
    const auth = authAt();
    const { url } = auth.issueLogin();
    assert.match(url, /^http:\/\/127\.0\.0\.1:7878\/console\/#login=[A-Za-z0-9_-]{43}$/);
    const { cookie, proof } = auth.exchange(tokenOf(url));
    assert.ok(auth.valid(cookie, proof));
    assert.equal(auth.valid(cookie, undefined), false, 'the cookie alone (a browser sends it to every port of the host)');
    assert.throws(() => auth.exchange(tokenOf(url)), /used already, or it expired/);
    const late = auth.issueLogin();
    await sleep(2100);
    assert.throws(() => auth.exchange(tokenOf(late.url)), /used already, or it expired/);
    for (const bad of [undefined, 42, '', 'guess', { token: 'x' }]) assert.throws(() => auth.exchange(bad), /not valid/);
  });

  it('unused login tokens cannot pile up: past 64 the oldest stops working', () => {
    const auth = authAt();
    const first = tokenOf(auth.issueLogin().url);
    for (let i = 0; i < 10_000; i++) auth.issueLogin();
    assert.throws(() => auth.exchange(first), /not valid/);
  });

  it('a session cookie cannot be forged, altered, moved to another daemon, or used after expiry or logout', async () => {
    const auth = authAt();
    const { cookie, proof } = auth.exchange(tokenOf(auth.issueLogin().url));
    const [expiry, nonce, mac] = cookie.split('.') as [string, string, string];
    assert.equal(auth.valid(`${Number(expiry) + 3600_000}.${nonce}.${mac}`, proof), false, 'a later expiry with the old signature');
    assert.equal(auth.valid(`${expiry}.${nonce}x.${mac}`, proof), false);
    // A different last character (always different: a fixed 'A' was the real one in 1 run of 16).
    assert.equal(auth.valid(`${expiry}.${nonce}.${mac.slice(0, -1)}${mac.endsWith('A') ? 'E' : 'A'}`, proof), false);
    assert.equal(auth.valid(undefined, proof), false);
    assert.equal(auth.valid('a.b', proof), false);
    const other = new ConsoleAuth('another-token-0123456789');
    assert.equal(other.valid(cookie, proof), false, 'a new daemon token logs every browser out');
    assert.equal(new ConsoleAuth(TOKEN).valid(cookie, proof), true, 'a restarted daemon with the same token keeps the session');
    auth.logout(cookie, proof);
    assert.equal(auth.valid(cookie, proof), false, 'logged out');
    const fresh = auth.exchange(tokenOf(auth.issueLogin().url));
    await sleep(2100);
    assert.equal(auth.valid(fresh.cookie, fresh.proof), false, 'expired');
  });

  it('same origin: the browser says so and the Origin names the host it was sent to', () => {
    assert.ok(sameOrigin({ origin: 'http://127.0.0.1:7878', host: '127.0.0.1:7878', secFetchSite: 'same-origin' }));
    assert.ok(sameOrigin({ origin: 'http://127.0.0.1:7878', host: '127.0.0.1:7878' }));
    assert.equal(sameOrigin({ origin: 'http://evil.test', host: '127.0.0.1:7878' }), false);
    assert.equal(sameOrigin({ origin: 'http://127.0.0.1:7878', host: '127.0.0.1:7878', secFetchSite: 'cross-site' }), false);
    assert.equal(sameOrigin({ origin: 'http://127.0.0.1:7878', host: '127.0.0.1:7878', secFetchSite: 'same-site' }), false);
    assert.equal(sameOrigin({ host: '127.0.0.1:7878' }), false, 'no Origin');
    assert.equal(sameOrigin({ origin: 'null', host: '127.0.0.1:7878' }), false);
    assert.equal(cookieValue('a=1; nook_console=x.y.z; b=2', 'nook_console'), 'x.y.z');
  });
});

describe('console bundle', () => {
  const meta = join(import.meta.dirname, '..', '..', 'console-meta.json');
  it('holds no Node module and nothing but the console, the SDK and the API types from src', { skip: !existsSync(meta) && 'not built' }, () => {
    const inputs = Object.keys((JSON.parse(readFileSync(meta, 'utf8')) as { inputs: Record<string, unknown> }).inputs);
    assert.deepEqual(inputs.filter((i) => i.startsWith('node:') || /^node_modules\/(?!preact\/|@xterm\/)/.test(i)), []);
    assert.deepEqual(inputs.filter((i) => i.startsWith('src/') && !/^src\/(console|sdk|api)\//.test(i)), []);
    assert.deepEqual(inputs.filter((i) => /sdk\/(transport|dir-transfer|safe-untar|client)\.ts$/.test(i)), [], 'the Node transport stays out');
  });
});
