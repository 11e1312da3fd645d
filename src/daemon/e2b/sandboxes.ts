/**
 * E2B's names for things, mapped onto nook's: sandbox ids ([a-z0-9]{20}, also the nook
 * sandbox's name, so `nook ls` shows them), the per-sandbox envd access token, who a command
 * runs as, and E2B's JSON error shape for the control plane.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import type { Nook } from '../../core/nook.js';
import type { ForeignId } from '../../core/foreign-ids.js';
import type { SandboxRecord } from '../../core/sandboxes.js';

export const KIND = 'e2b';
/** The envd version nook answers as: what the SDK's feature checks look for (gzip uploads, closeStdin). */
export const ENVD_VERSION = '0.5.7';
export const ENVD_PORT = 49983;
export const BASE_USER = 'user';
/** Templates on the base image, whose commands run as `user` in /home/user by default. */
export const BASE_TEMPLATES: ReadonlySet<string> = new Set(['base', 'code-interpreter-v1']);

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const ID_PATTERN = /^[a-z0-9]{20}$/;

export function newSandboxId(): string {
  const bytes = randomBytes(20);
  return [...bytes].map((b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('');
}

/** E2B's API error body. */
export function apiError(c: Context, status: 400 | 401 | 404 | 409 | 429 | 500 | 501 | 502 | 503 | 507, message: string): Response {
  return c.json({ code: status, message }, status);
}

export interface E2bSandbox {
  foreign: ForeignId;
  record: SandboxRecord;
}

export class E2bIds {
  constructor(
    private readonly nook: Nook,
    private readonly token: string,
  ) {}

  /** The sandbox an E2B id names; undefined for an unknown or malformed id. */
  find(id: string): E2bSandbox | undefined {
    if (!ID_PATTERN.test(id)) return undefined;
    const foreign = this.nook.foreignIds.get(KIND, id);
    if (!foreign) return undefined;
    const record = this.nook.sandboxes.find(foreign.sandboxId);
    return record ? { foreign, record } : undefined;
  }

  /** The envd access token of a sandbox: derived from the daemon token, never stored. */
  accessToken(id: string): string {
    return createHmac('sha256', this.token).update(`e2b-envd:${id}`).digest('hex');
  }

  /** The token for a sandbox's other ports (E2B-Traffic-Access-Token): derived too, and distinct from envd's. */
  trafficToken(id: string): string {
    return createHmac('sha256', this.token).update(`e2b-traffic:${id}`).digest('hex');
  }

  checkAccessToken(id: string, given: string | undefined): boolean {
    const want = Buffer.from(this.accessToken(id));
    const got = Buffer.from(given ?? '');
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

/** Authorization: Basic base64("user:") names who runs the command; undefined when absent. */
export function userOf(header: string | undefined): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]{1,200})$/.exec(header ?? '');
  if (!m?.[1]) return undefined;
  const name = Buffer.from(m[1], 'base64').toString('utf8').split(':')[0] ?? '';
  return /^[A-Za-z0-9._-]{1,64}$/.test(name) ? name : undefined;
}

/** Who runs a command and the environment that goes with that user (base: `user` by default). */
export function identity(sb: E2bSandbox, asked: string | undefined): { user?: string; home: string; env: Record<string, string> } {
  const user = asked ?? (BASE_TEMPLATES.has(sb.foreign.template) ? BASE_USER : undefined);
  if (!user || user === 'root') return { ...(user ? { user } : {}), home: '/root', env: { HOME: '/root', USER: 'root' } };
  const home = user === BASE_USER ? '/home/user' : `/home/${user}`;
  return { user, home, env: { HOME: home, USER: user } };
}
