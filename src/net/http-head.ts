/**
 * Strict parsing of the one request head the egress proxy reads from a sandbox. Everything
 * here is attacker input: every field is checked (method, target, version, header syntax,
 * host length, port range) and anything else is a 400/431 answer, never an exception.
 */
import { isIP } from 'node:net';
import { isValidRequestHost } from './policy.js';

/** At most this much request head (request line + headers) is read before refusing with 431. */
export const MAX_HEAD_BYTES = 16 * 1024;
const MAX_HEADER_LINES = 100;

const REQUEST_LINE_RE = /^([A-Za-z]{1,20}) ([\x21-\x7e]{1,8192}) (HTTP\/1\.[01])$/;
/** RFC 9110 field-name token, then a value of visible characters, spaces, tabs or obs-text. */
const HEADER_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}:[\t\x20-\x7e\x80-\xff]*$/;
/** Hop-by-hop and proxy headers never reach the destination; Host is set from the target. */
const DROPPED_HEADER_RE = /^(proxy-connection|proxy-authorization|connection|keep-alive|host):/i;

export interface ProxyRequest {
  ok: true;
  method: 'CONNECT' | 'HTTP';
  /** Lower-case name or IP literal (IPv6 without brackets), at most 253 bytes. */
  host: string;
  /** 1-65535. */
  port: number;
  /** For plain HTTP: the request rewritten to origin form; null for CONNECT. */
  upstreamHead: Buffer | null;
}

export interface BadRequest {
  ok: false;
  status: 400 | 431;
  text: string;
}

function bad(text: string, status: 400 | 431 = 400): BadRequest {
  return { ok: false, status, text };
}

/** A decimal port 1-65535, or null. */
export function parsePort(text: string): number | null {
  if (!/^[0-9]{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : null;
}

function checkHost(host: string): BadRequest | null {
  return isValidRequestHost(host) ? null : bad('the destination is not a valid host name or address (at most 253 bytes)');
}

/** Parses a request head (without the final CRLFCRLF), decoded as latin1. */
export function parseRequestHead(head: string): ProxyRequest | BadRequest {
  if (head.length > MAX_HEAD_BYTES) return bad('request head too large', 431);
  const [requestLine = '', ...headerLines] = head.split('\r\n');
  const line = REQUEST_LINE_RE.exec(requestLine);
  if (!line) return bad('malformed request line: this is an HTTP proxy (send METHOD absolute-URL HTTP/1.1, or CONNECT host:port HTTP/1.1)');
  if (headerLines.length > MAX_HEADER_LINES) return bad('too many header lines', 431);
  if (!headerLines.every((l) => HEADER_RE.test(l))) return bad('malformed header line');
  const [, method = '', target = '', version = ''] = line;

  if (method === 'CONNECT') {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):([^:]+)$/.exec(target);
    if (!m) return bad('CONNECT needs host:port');
    const host = (m[1] ?? m[2] ?? '').toLowerCase();
    if (m[1] !== undefined && isIP(m[1]) !== 6) return bad('CONNECT needs host:port');
    const port = parsePort(m[3] ?? '');
    if (port === null) return bad('the port must be a number from 1 to 65535');
    return checkHost(host) ?? { ok: true, method: 'CONNECT', host, port, upstreamHead: null };
  }

  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return bad('this is an HTTP proxy: send absolute URLs, or CONNECT for https');
  }
  if (url.protocol !== 'http:') return bad('only http:// URLs go as plain requests; https uses CONNECT');
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = url.port ? parsePort(url.port) : 80;
  if (port === null) return bad('the port must be a number from 1 to 65535');
  const badHost = checkHost(host);
  if (badHost) return badHost;
  // Origin form, one request per connection; Host is the target's own authority, never the
  // client's header, so an allowed address cannot be asked for another virtual host.
  const headers = headerLines.filter((l) => !DROPPED_HEADER_RE.test(l));
  const upstreamHead = Buffer.from(`${method} ${url.pathname}${url.search} ${version}\r\nHost: ${url.host}\r\n${[...headers, 'Connection: close'].join('\r\n')}\r\n\r\n`, 'latin1');
  return { ok: true, method: 'HTTP', host, port, upstreamHead };
}
