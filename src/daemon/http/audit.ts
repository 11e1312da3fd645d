/**
 * Every mutating call is one audited operation: recorded as begun before it has any effect,
 * and answered with a receipt (in the JSON answer, on the final NDJSON event, or as the
 * x-nook-receipt header of any other answer).
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { AuditLog, digestInputs } from '../../core/audit.js';
import type { Nook } from '../../core/nook.js';
import { NookError } from '../../api/errors.js';
import { parseUntrustedJson } from '../../util/json.js';
import { decodeParams, mutatingRoute } from './input.js';
import { NDJSON } from './ndjson.js';
import { ensureStateSpace } from './space.js';

/** Answers `body` as JSON; inside an audited call the outcome is recorded and the receipt added. */
export type Answer = (c: Context, body: object, status?: ContentfulStatusCode) => Response;

export function answerWith(audit: AuditLog): Answer {
  return (c, body, status = 200) => {
    const ctx = audit.current();
    if (!ctx || ctx.appended) return c.json(body, status);
    ctx.appended = true;
    const code = status < 400 ? null : String((body as { code?: unknown }).code ?? 'INTERNAL');
    const receipt = audit.append(ctx, status < 400 ? 'ok' : 'error', code);
    return c.json({ ...body, receipt }, status);
  };
}

/** The JSON body of a mutating call, for the record (its digest); an unparsable one is parseBody's to answer. */
async function bodyForRecord(c: Context): Promise<unknown> {
  if (!(c.req.header('content-type') ?? '').includes('json')) return undefined;
  try {
    return parseUntrustedJson((await c.req.text()) || '{}');
  } catch (e) {
    // Too large is the caller's error to see.
    if (e instanceof NookError && e.code === 'PAYLOAD_TOO_LARGE') throw e;
    return { unparsable: true };
  }
}

/** The audit middleware: checks space, opens the record, runs the call inside it, seals what is left. */
export function auditCalls(nook: Nook, listener: 'tcp' | 'unix'): MiddlewareHandler {
  return async (c, next) => {
    const route = mutatingRoute(c);
    if (!route) return next();
    const params = decodeParams(route.rawParams);
    const body = await bodyForRecord(c);
    await ensureStateSpace(route.action, nook.paths.stateDir);
    const ref = params.ref;
    const known = ref ? nook.sandboxes.find(ref) : undefined;
    const ctx = {
      receipt: AuditLog.newReceipt(),
      actor: `${listener}:${(c.req.header('x-nook-actor') ?? 'unknown').slice(0, 200)}`,
      action: route.action,
      inputs: { ...digestInputs(body), ...params, ...c.req.queries() },
      result: {},
      sandboxId: known?.id ?? null,
      sandbox: known?.name ?? ref ?? null,
      appended: false,
    };
    nook.audit.begin(ctx);
    await nook.audit.run(ctx, async () => {
      await next();
    });
    // JSON answers (and errors) were sealed by answer(); streams seal at their last event (see ndjson).
    if (ctx.appended || (c.res.headers.get('content-type') ?? '').includes(NDJSON)) return;
    ctx.appended = true;
    const status = c.res.status;
    const receipt = nook.audit.append(ctx, status < 400 ? 'ok' : 'error', status < 400 ? null : c.error instanceof NookError ? c.error.code : 'INTERNAL');
    c.res.headers.set('x-nook-receipt', receipt);
  };
}
