/**
 * Egress policy: which destinations a sandbox may reach through its proxy. Patterns are
 * `host`, `*.suffix` (any subdomain, not the apex), an IP literal or CIDR, each with an
 * optional `:port` (without one, 80 and 443). Names resolving to private, loopback or
 * link-local addresses are refused unless the address itself is listed, so an allowed
 * name cannot be pointed at the host's own services (DNS rebinding).
 */
import { BlockList, isIP } from 'node:net';
import { NookError } from '../api/errors.js';

export type NetworkMode = 'none' | 'allowlist' | 'learn';

export interface NetworkPolicy {
  mode: NetworkMode;
  allow: string[];
}

export interface Pattern {
  text: string;
  /** Lower-case host, `*.suffix`, IP literal or CIDR. */
  host: string;
  port: number | null;
}

const DEFAULT_PORTS = [80, 443];
const HOST_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function parsePattern(text: string): Pattern {
  const t = text.trim().toLowerCase();
  let host = t;
  let port: number | null = null;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (bracketed) {
    host = bracketed[1] ?? '';
    port = bracketed[2] ? Number(bracketed[2]) : null;
  } else if (isIP(t) !== 6 && !/^[0-9a-f:]+\/\d+$/.test(t)) {
    const m = /^(.*):(\d+)$/.exec(t);
    if (m) {
      host = m[1] ?? '';
      port = Number(m[2]);
    }
  }
  const cidr = /^(.+)\/(\d{1,3})$/.exec(host);
  const validHost = HOST_RE.test(host) || isIP(host) !== 0 || (cidr && isIP(cidr[1] ?? '') !== 0 && Number(cidr[2]) <= (isIP(cidr[1] ?? '') === 4 ? 32 : 128));
  if (!validHost || (port !== null && (port < 1 || port > 65535))) {
    throw new NookError('INVALID_ARGUMENT', `${JSON.stringify(text)} is not a host pattern`, {
      hint: 'use host, *.suffix, an IP or CIDR, optionally with :port (e.g. pypi.org, *.pythonhosted.org, 10.0.0.5:8080)',
    });
  }
  return { text: port === null ? host : `${host.includes(':') ? `[${host}]` : host}:${port}`, host, port };
}

function portMatches(p: Pattern, port: number): boolean {
  return p.port === null ? DEFAULT_PORTS.includes(port) : p.port === port;
}

function addressMatches(p: Pattern, address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  const cidr = /^(.+)\/(\d+)$/.exec(p.host);
  if (!cidr) return isIP(p.host) !== 0 && sameAddress(p.host, address);
  const list = new BlockList();
  list.addSubnet(cidr[1] ?? '', Number(cidr[2]), isIP(cidr[1] ?? '') === 6 ? 'ipv6' : 'ipv4');
  return list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  const list = new BlockList();
  list.addAddress(a, isIP(a) === 6 ? 'ipv6' : 'ipv4');
  return list.check(b, isIP(b) === 6 ? 'ipv6' : 'ipv4');
}

/** Does a name pattern cover this host (case-insensitive, `*.x` = subdomains of x)? */
function nameMatches(p: Pattern, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (p.host.startsWith('*.')) return h.endsWith(p.host.slice(1)) && h.length > p.host.length - 1;
  return p.host === h;
}

const SPECIAL = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  SPECIAL.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['::ffff:0:0', 96],
] as const)
  SPECIAL.addSubnet(net, bits, 'ipv6');

/** Private, loopback, link-local, multicast or otherwise not a public unicast address. */
export function isSpecialAddress(address: string): boolean {
  const family = isIP(address);
  return family !== 0 && SPECIAL.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

export interface Verdict {
  allowed: boolean;
  reason: string;
}

/** A DNS name is at most 253 bytes; longer ones are refused before anything logs them. */
export const MAX_HOST_BYTES = 253;
const REQUEST_HOST_RE = /^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$/i;

/** True for a host a request may name: an IP literal, or a DNS name of valid length and labels. */
export function isValidRequestHost(host: string): boolean {
  if (host.length === 0 || host.length > MAX_HOST_BYTES) return false;
  return isIP(host) !== 0 || REQUEST_HOST_RE.test(host);
}

/**
 * The part of the decision that needs no resolution: a name the policy does not cover is
 * refused here, before anything asks a nameserver (a lookup of `<data>.attacker.example`
 * would itself carry data out). Returns null when the request may go on to resolution.
 */
export function precheck(policy: NetworkPolicy, host: string, port: number): Verdict | null {
  if (policy.mode === 'none') return { allowed: false, reason: 'this sandbox has no network' };
  if (policy.mode === 'learn' || isIP(host) !== 0) return null;
  const patterns = policy.allow.map(parsePattern);
  if (patterns.some((p) => nameMatches(p, host) && portMatches(p, port))) return null;
  const otherPort = patterns.find((p) => nameMatches(p, host));
  if (otherPort) return { allowed: false, reason: `${host} is allowed, but not port ${port} (${otherPort.text})` };
  return { allowed: false, reason: `${host}:${port} is not on this sandbox's allow-list` };
}

/** The decision for a request to host:port, given where the proxy resolved it. */
export function decide(policy: NetworkPolicy, host: string, port: number, address: string, trustedAddress: boolean): Verdict {
  const patterns = policy.allow.map(parsePattern);
  const literal = isIP(host) !== 0;
  const listedAddress = patterns.some((p) => addressMatches(p, address) && portMatches(p, port));
  if (literal) {
    return listedAddress ? { allowed: true, reason: `${host}:${port} is on the allow-list` } : { allowed: false, reason: `${host}:${port}: IP addresses must be listed explicitly` };
  }
  if (isSpecialAddress(address) && !trustedAddress && !listedAddress) {
    return { allowed: false, reason: `${host} resolves to ${address}, a private or loopback address, which must be listed explicitly` };
  }
  if (policy.mode === 'learn') return { allowed: true, reason: 'learn mode: everything is allowed and recorded' };
  const named = patterns.find((p) => nameMatches(p, host) && portMatches(p, port));
  if (named) return { allowed: true, reason: `${host}:${port} matches ${named.text}` };
  const otherPort = patterns.find((p) => nameMatches(p, host));
  if (otherPort) return { allowed: false, reason: `${host} is allowed, but not port ${port} (${otherPort.text})` };
  return { allowed: false, reason: `${host}:${port} is not on this sandbox's allow-list` };
}

/** The smallest allow-list covering what a run used: names (with a port unless 80/443). */
export function suggest(used: { host: string; port: number }[]): string[] {
  const out = new Set<string>();
  for (const u of used) out.add(DEFAULT_PORTS.includes(u.port) ? u.host.toLowerCase() : `${u.host.toLowerCase()}:${u.port}`);
  return [...out].sort();
}
