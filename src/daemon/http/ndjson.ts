import type { Context } from 'hono';
import type { NookError } from '../../api/errors.js';
import type { AuditLog } from '../../core/audit.js';
import { errorBody } from './errors.js';

export const NDJSON = 'application/x-ndjson';

/** What `work` gets: `emit` writes one event line; `signal` fires when the client is gone. */
export type StreamWork<E> = (emit: (event: E) => void, signal: AbortSignal) => Promise<void>;

/**
 * Streams NDJSON events produced by `work`. Errors after the stream began become an
 * `error` event; the request's abort signal (client gone) reaches `work`. Inside an audited
 * call, the final event (result, done or error) is recorded and carries the receipt.
 */
export function ndjson<E>(c: Context, audit: AuditLog, work: StreamWork<E>, toError: (e: NookError) => E): Response {
  const signal = c.req.raw.signal;
  const encoder = new TextEncoder();
  const ctx = audit.current();
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      const emit = (event: E): void => {
        const e = event as { type?: string; result?: Record<string, unknown>; error?: { code?: string }; receipt?: string };
        if (ctx && !ctx.appended && (e.type === 'result' || e.type === 'done' || e.type === 'error')) {
          ctx.appended = true;
          e.receipt = audit.append(ctx, e.type === 'error' ? 'error' : 'ok', e.type === 'error' ? (e.error?.code ?? 'INTERNAL') : null);
          if (e.type === 'result' && e.result) e.result.receipt = e.receipt;
        }
        try {
          controller.enqueue(encoder.encode(JSON.stringify(event) + '\n'));
        } catch {
          // client went away; the work notices through the signal
        }
      };
      try {
        await work(emit, signal);
      } catch (e) {
        emit(toError(errorBody(e)));
      }
      if (ctx && !ctx.appended) {
        // Ended without a final event (the client went away): still on the record.
        ctx.appended = true;
        audit.append(ctx, signal.aborted ? 'error' : 'ok', signal.aborted ? 'ABORTED' : null);
      }
      try {
        controller.close();
      } catch {
        // already closed by a disconnect
      }
    },
  });
  return new Response(stream, { headers: { 'content-type': NDJSON, 'cache-control': 'no-store' } });
}

/** The error event of most streams: `{type: 'error', error}`. */
export function errorEvent(error: NookError): { type: 'error'; error: ReturnType<NookError['toJSON']> } {
  return { type: 'error', error: error.toJSON() };
}
