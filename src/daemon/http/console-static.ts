/**
 * The web console's files (built by `npm run build` into dist/console) and its login and
 * logout, on the TCP listener. Only files that were there when the daemon started are
 * served, by exact name: a request path never steers a host path. Every answer carries a
 * strict Content-Security-Policy: scripts only from these files, no inline script.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, Hono } from 'hono';
import { NookError } from '../../api/errors.js';
import { parseUntrustedJson } from '../../util/json.js';
import { cookieValue, sameOrigin, sessionProof, SESSION_COOKIE, type ConsoleAuth } from './console-auth.js';

/** dist/console, next to dist/src (this file is dist/src/daemon/http/console-static.js). */
const CONSOLE_DIR = process.env.NOOK_CONSOLE_DIR ?? fileURLToPath(new URL('../../../console/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};

/**
 * Scripts and connections only to this origin; no inline script, no plugins, no framing.
 * Inline styles are allowed: xterm.js sets its theme through a <style> element it creates.
 */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

/** name → bytes of every file the build produced, read once. */
function loadFiles(): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (dir: string, prefix: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
      else if (e.isFile() && TYPES[extname(e.name)] && statSync(join(dir, e.name)).size < 32 << 20) files.set(`${prefix}${e.name}`, readFileSync(join(dir, e.name)));
    }
  };
  try {
    walk(CONSOLE_DIR, '');
  } catch {
    // Not built (a source checkout before npm run build): the page says so below.
  }
  return files;
}

function cookieHeader(c: Context, value: string, maxAgeS: number): string {
  // Secure when the browser reached us over https (a TLS proxy in front); plain http on loopback otherwise.
  const secure = c.req.header('x-forwarded-proto') === 'https' || new URL(c.req.url).protocol === 'https:' ? '; Secure' : '';
  return `${SESSION_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeS}${secure}`;
}

export function registerConsole(app: Hono, auth: ConsoleAuth): void {
  const files = loadFiles();
  const serve = (c: Context, name: string): Response => {
    const body = files.get(name);
    if (!body) {
      const missing = files.size === 0 ? 'the console is not built: run npm run build' : `no console file ${name}`;
      return c.json(new NookError('NOT_FOUND', missing).toJSON(), 404, SECURITY_HEADERS);
    }
    // index.html names the current bundle: never cached; the bundles may be.
    const cache = name === 'index.html' ? 'no-store' : 'no-cache';
    return c.body(new Uint8Array(body), 200, { ...SECURITY_HEADERS, 'content-type': TYPES[extname(name)] ?? 'application/octet-stream', 'cache-control': cache });
  };

  app.get('/console', (c) => c.redirect('/console/', 308));
  app.get('/console/', (c) => serve(c, 'index.html'));

  // The login: a one-time token for a session cookie. Same origin only, so no other site can log a browser in.
  app.post('/console/session', async (c) => {
    if (!sameOrigin({ origin: c.req.header('origin'), host: c.req.header('host'), secFetchSite: c.req.header('sec-fetch-site') })) {
      throw new NookError('CROSS_ORIGIN', 'the console login must come from the console page itself', { hint: 'open the link `nook console` prints' });
    }
    const body = parseUntrustedJson((await c.req.text()) || '{}') as { token?: unknown };
    const { cookie, proof, expiresMs } = auth.exchange(body.token);
    c.header('set-cookie', cookieHeader(c, cookie, Math.floor(auth.sessionMs / 1000)));
    // The proof goes to the page's script (never a cookie: a cookie reaches every port of the host).
    return c.json({ ok: true, proof, expiresAt: new Date(expiresMs).toISOString() }, 200, { ...SECURITY_HEADERS, 'cache-control': 'no-store' });
  });
  app.delete('/console/session', (c) => {
    if (sameOrigin({ origin: c.req.header('origin'), host: c.req.header('host'), secFetchSite: c.req.header('sec-fetch-site') })) {
      auth.logout(cookieValue(c.req.header('cookie'), SESSION_COOKIE), sessionProof(c.req.header('x-nook-session'), c.req.url));
    }
    c.header('set-cookie', cookieHeader(c, '', 0));
    return c.json({ ok: true }, 200, SECURITY_HEADERS);
  });

  app.get('/console/*', (c) => serve(c, c.req.path.slice('/console/'.length)));
}
