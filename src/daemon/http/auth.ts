import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { NookError } from '../../api/errors.js';

/** The TCP listener's bearer-token check (constant-time); the unix socket relies on its file mode. */
export function requireToken(token: string): MiddlewareHandler {
  const expected = Buffer.from(`Bearer ${token}`);
  return async (c, next) => {
    const given = Buffer.from(c.req.header('authorization') ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new NookError('UNAUTHORIZED', 'a valid bearer token is required on the TCP listener', { hint: 'send Authorization: Bearer <token> (NOOK_TOKEN for the CLI and SDK)' });
    }
    await next();
  };
}
