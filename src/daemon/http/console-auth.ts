/**
 * Who may use the web console, and how. The TCP listener's bearer token never reaches a
 * browser: `nook console` asks for a one-time login token (short-lived, single use), the
 * page trades it for a session cookie (HttpOnly, SameSite=Strict), and the API accepts that
 * cookie in place of the bearer token. A mutating call (and a terminal's WebSocket) made
 * with the cookie must also come from the console's own origin: SameSite stops the cookie
 * on cross-site requests, and the Origin / Sec-Fetch-Site check stops the rest (CSRF and
 * cross-site WebSocket hijacking).
 *
 * The cookie alone is not enough: cookies are scoped by host, not by port (RFC 6265 §8.5),
 * so a browser sends the console's cookie to every port of its host, among them every
 * exposed sandbox port, whose bytes reach code in that sandbox. Each session also has a
 * proof (an HMAC of the cookie's body) that the login answers in its JSON body; the page
 * keeps it in its origin's storage (which other ports cannot read) and sends it with every
 * call (`X-Nook-Session`, or `?session=` on a download link and the terminal's WebSocket).
 *
 * Sessions are signed, not stored: `expiry.nonce.hmac` with a key derived from the daemon's
 * bearer token. A daemon restart keeps an open page logged in (the page reconnects), a new
 * token logs every browser out, and no session table can grow. Logging out adds the nonce to
 * a bounded in-memory list until the session would have expired anyway.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { NookError } from '../../api/errors.js';

export const SESSION_COOKIE = 'nook_console';
/** How long a login link works (it is used at once by the browser `nook console` opens). */
const LOGIN_TOKEN_MS = Number(process.env.NOOK_CONSOLE_LOGIN_MS ?? 120_000);
/** How long a console session lasts; then the page shows the login page again. */
const SESSION_MS = Number(process.env.NOOK_CONSOLE_SESSION_MS ?? 8 * 3600_000);
/** Unused login tokens held at once; past it the oldest is dropped (a caller minting them in a loop grows nothing). */
const MAX_LOGIN_TOKENS = 64;
/** Logged-out sessions remembered at once (each only until its expiry). */
const MAX_REVOKED = 1024;

const unauthorized = (message: string): NookError =>
  new NookError('UNAUTHORIZED', message, { hint: 'open the console with the link `nook console` prints (or send Authorization: Bearer <token>)' });

export class ConsoleAuth {
  private readonly key: Buffer;
  /** token → expiry (ms epoch); insertion order is age order. */
  private readonly loginTokens = new Map<string, number>();
  /** nonce → expiry of logged-out sessions. */
  private readonly revoked = new Map<string, number>();

  /** The console's address (http://host:port of the TCP listener), set once it listens. */
  baseUrl: string | undefined;

  constructor(daemonToken: string) {
    this.key = createHmac('sha256', daemonToken).update('nook-console-session-v1').digest();
  }

  readonly sessionMs = SESSION_MS;

  /** A fresh one-time login token and the URL that uses it (the token rides in the fragment: never sent in a request line, a log or a Referer). */
  issueLogin(): { url: string; expiresAt: string } {
    if (!this.baseUrl) {
      throw new NookError('NOT_SUPPORTED', 'the web console is served on the TCP listener, and this daemon has none', {
        hint: 'start nookd with NOOK_TCP=127.0.0.1:7878 and NOOK_TOKEN_FILE=/etc/nook/token (a token of 16+ characters), then run nook console again',
      });
    }
    this.sweep();
    while (this.loginTokens.size >= MAX_LOGIN_TOKENS) this.loginTokens.delete(this.loginTokens.keys().next().value as string);
    const token = randomBytes(32).toString('base64url');
    const expires = Date.now() + LOGIN_TOKEN_MS;
    this.loginTokens.set(token, expires);
    return { url: `${this.baseUrl}/console/#login=${token}`, expiresAt: new Date(expires).toISOString() };
  }

  /** Uses up a login token; returns a new session's cookie value and its proof. */
  exchange(token: unknown): { cookie: string; proof: string; expiresMs: number } {
    this.sweep();
    const expires = typeof token === 'string' ? this.loginTokens.get(token) : undefined;
    if (typeof token !== 'string' || expires === undefined) throw unauthorized('this login link is not valid: it was used already, or it expired');
    this.loginTokens.delete(token);
    const expiresMs = Date.now() + SESSION_MS;
    const body = `${expiresMs}.${randomBytes(18).toString('base64url')}`;
    return { cookie: `${body}.${this.sign(body)}`, proof: this.sign(`proof:${body}`), expiresMs };
  }

  /** True for a well-signed, unexpired, not logged-out session cookie value sent with its proof. */
  valid(cookie: string | undefined, proof: string | undefined): boolean {
    const parts = cookie?.split('.') ?? [];
    if (parts.length !== 3) return false;
    const [expiry, nonce, mac] = parts as [string, string, string];
    if (!macMatches(this.sign(`${expiry}.${nonce}`), mac) || !macMatches(this.sign(`proof:${expiry}.${nonce}`), proof ?? '')) return false;
    return Number(expiry) > Date.now() && !this.revoked.has(nonce);
  }

  logout(cookie: string | undefined, proof: string | undefined): void {
    if (!cookie || !this.valid(cookie, proof)) return;
    const [expiry, nonce] = cookie.split('.') as [string, string];
    this.sweep();
    while (this.revoked.size >= MAX_REVOKED) this.revoked.delete(this.revoked.keys().next().value as string);
    this.revoked.set(nonce, Number(expiry));
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, exp] of this.loginTokens) if (exp <= now) this.loginTokens.delete(k);
    for (const [k, exp] of this.revoked) if (exp <= now) this.revoked.delete(k);
  }
}

function macMatches(want: string, given: string): boolean {
  const a = Buffer.from(want);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The session's proof a request carries: the header the page's fetches send, or `?session=` (download links, the terminal's WebSocket). */
export function sessionProof(header: string | undefined, url: string | undefined): string | undefined {
  if (header) return header;
  try {
    return new URL(url ?? '', 'http://x').searchParams.get('session') ?? undefined;
  } catch {
    return undefined;
  }
}

/** The value of one cookie in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * True when the request comes from a page of this very origin: the browser says so
 * (Sec-Fetch-Site: same-origin), and its Origin names the host it was sent to. A request
 * with neither header did not come from a browser page and carries no ambient cookie worth
 * forging, but it is refused too: the console always sends them.
 */
export function sameOrigin(headers: { origin?: string | undefined; host?: string | undefined; secFetchSite?: string | undefined }): boolean {
  if (headers.secFetchSite !== undefined && headers.secFetchSite !== 'same-origin') return false;
  if (!headers.origin || !headers.host) return false;
  try {
    return new URL(headers.origin).host === headers.host;
  } catch {
    return false;
  }
}

function bearerMatches(given: string | undefined, token: string): boolean {
  const a = Buffer.from(given ?? '');
  const b = Buffer.from(`Bearer ${token}`);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The console's pages and scripts: public (they hold no data), every /v1 call is checked. */
const PUBLIC_PATH = /^\/console(?:\/|$)/;

/**
 * The TCP listener's check: the bearer token, or a console session (plus same origin for
 * anything that changes state). The unix socket relies on its file mode and has none.
 */
export function requireTokenOrSession(token: string, auth: ConsoleAuth): MiddlewareHandler {
  return async (c, next) => {
    if (PUBLIC_PATH.test(c.req.path)) return next();
    if (bearerMatches(c.req.header('authorization'), token)) return next();
    const session = cookieValue(c.req.header('cookie'), SESSION_COOKIE);
    if (!session) throw unauthorized('a valid bearer token or console session is required on the TCP listener');
    // ?session= only where no header can go (a download link, a GET): a mutating call's query is kept in the audit record.
    const readOnly = c.req.method === 'GET' || c.req.method === 'HEAD';
    if (!auth.valid(session, sessionProof(c.req.header('x-nook-session'), readOnly ? c.req.url : undefined))) throw unauthorized('the console session expired, is not valid or came without its proof: log in again');
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && !sameOrigin(originHeaders(c))) {
      throw new NookError('CROSS_ORIGIN', 'a console call that changes state must come from the console page itself (Origin mismatch)', {
        hint: 'use the console at the address `nook console` prints; other sites cannot act with its session',
      });
    }
    await next();
  };
}

function originHeaders(c: Context): { origin?: string; host?: string; secFetchSite?: string } {
  return { origin: c.req.header('origin'), host: c.req.header('host'), secFetchSite: c.req.header('sec-fetch-site') };
}

/** The WebSocket upgrade's check, as requireTokenOrSession (a WebSocket always carries its page's Origin). */
export function upgradeAllowed(headers: IncomingHttpHeaders, url: string | undefined, token: string, auth: ConsoleAuth | undefined): boolean {
  if (bearerMatches(headers.authorization, token)) return true;
  const session = cookieValue(headers.cookie, SESSION_COOKIE);
  const proof = headers['x-nook-session'];
  if (!auth || !auth.valid(session, sessionProof(Array.isArray(proof) ? proof[0] : proof, url))) return false;
  const site = headers['sec-fetch-site'];
  return sameOrigin({ origin: headers.origin, host: headers.host, secFetchSite: Array.isArray(site) ? site[0] : site });
}
