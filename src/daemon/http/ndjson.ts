import type { Context } from 'hono';
import { NookError } from '../../api/errors.js';
import type { AuditLog } from '../../core/audit.js';
import { errorBody } from './errors.js';

export const NDJSON = 'application/x-ndjson';
/**
 * Events waiting for a client that reads slower than they come (a paused `logs -f`, a stalled
 * agent). Past this the stream ends with an error instead of the daemon holding everything.
 */
const MAX_QUEUED_BYTES = Number(process.env.NOOK_STREAM_MAX_QUEUED_BYTES ?? 16 * 1024 * 1024);

/** What `work` gets: `emit` writes one event line; `signal` fires when the client is gone. */
export type StreamWork<E> = (emit: (event: E) => void, signal: AbortSignal) => Promise<void>;

/**
 * Streams NDJSON events produced by `work`. Errors after the stream began become an
 * `error` event; the request's abort signal (client gone) reaches `work`. Inside an audited
 * call, the final event (result, done or error) is recorded and carries the receipt.
 */
export function ndjson<E>(c: Context, audit: AuditLog, work: StreamWork<E>, toError: (e: NookError) => E): Response {
  // The work stops when the client goes, or when it falls too far behind.
  const stop = new AbortController();
  const signal = stop.signal;
  c.req.raw.signal.addEventListener('abort', () => stop.abort(), { once: true });
  const encoder = new TextEncoder();
  const ctx = audit.current();
  let lagging = false;
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      const fellBehind = (): void => {
        lagging = true;
        const e = new NookError('BUSY', `the client read too slowly: more than ${MAX_QUEUED_BYTES} bytes of events were waiting, so the stream ended`, {
          hint: 'read the stream as it comes; to go on with logs, follow again with --since (the last time you saw)',
          context: { maxQueuedBytes: MAX_QUEUED_BYTES },
        });
        emitNow(toError(e));
        stop.abort();
      };
      const emitNow = (event: E): void => {
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
      const emit = (event: E): void => {
        if (lagging) return;
        emitNow(event);
        if ((controller.desiredSize ?? 0) < -MAX_QUEUED_BYTES) fellBehind();
      };
      try {
        await work(emit, signal);
      } catch (e) {
        if (!lagging) emitNow(toError(errorBody(e)));
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
  }, { highWaterMark: 256 * 1024, size: (chunk) => chunk.byteLength });
  return new Response(stream, { headers: { 'content-type': NDJSON, 'cache-control': 'no-store' } });
}

/** The error event of most streams: `{type: 'error', error}`. */
export function errorEvent(error: NookError): { type: 'error'; error: ReturnType<NookError['toJSON']> } {
  return { type: 'error', error: error.toJSON() };
}
