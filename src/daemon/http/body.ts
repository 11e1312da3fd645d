/** Request bodies: bounded JSON parsed against the route table, tar and byte streams with bounds of their own. */
import { promises as fsp } from 'node:fs';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { z } from 'zod';
import { NookError } from '../../api/errors.js';
import { parseUntrustedJson } from '../../util/json.js';
import type { RouteName } from '../../api/routes.js';
import { invalidInput, mutatingRoute } from './input.js';

/** JSON bodies are buffered: bound them (the largest is an exec with 16 MiB of base64 stdin). */
export const MAX_JSON_BODY_BYTES = Number(process.env.NOOK_MAX_JSON_BODY_BYTES ?? 24 * 1024 * 1024);
/** How much of a refused upload the daemon reads and drops so the client sees the answer. */
export const DRAIN_LIMIT_BYTES = 256 * 1024 * 1024;

/** Routes whose body is a stream (tar, file bytes) with a bound of its own. */
const STREAM_BODY = new Set<RouteName>(['writeFile', 'putTar', 'buildSpec', 'importImage']);

/**
 * Every body that is read whole is bounded (413 PAYLOAD_TOO_LARGE past the limit); streamed
 * bodies are bounded where they are consumed, unless sent as JSON (then they are read whole).
 */
export function boundedBodies(): MiddlewareHandler {
  const jsonLimit = bodyLimit({
    maxSize: MAX_JSON_BODY_BYTES,
    onError: () => {
      throw new NookError('PAYLOAD_TOO_LARGE', `the request body is over ${MAX_JSON_BODY_BYTES} bytes`, {
        hint: 'send files with nook cp / sandbox.files.write (they stream), not inside a JSON body',
        context: { maxBytes: MAX_JSON_BODY_BYTES },
      });
    },
  });
  return async (c, next) => {
    const route = mutatingRoute(c);
    const streamed = route && STREAM_BODY.has(route.action) && !(c.req.header('content-type') ?? '').includes('json');
    if (streamed) return next();
    return jsonLimit(c, next);
  };
}

/** The JSON body checked against `schema` (depth-limited parse; an empty body is {}). */
export async function parseBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  const text = await c.req.text();
  const raw = text.trim() === '' ? {} : parseUntrustedJson(text);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw invalidInput(parsed.error.issues, 'body');
  return parsed.data;
}

/** The raw body of a route that takes a tar archive (a JSON body was already read for the audit). */
export function tarBody(c: Context): ReadableStream<Uint8Array> {
  const type = c.req.header('content-type') ?? '';
  if (type.includes('json') || !c.req.raw.body || c.req.raw.bodyUsed) {
    throw new NookError('INVALID_ARGUMENT', 'send a tar archive as the request body (content-type: application/x-tar)', { hint: 'the SDK and CLI do this for you' });
  }
  return c.req.raw.body;
}

/** Writes a request body to `file`, refusing more than `maxBytes`. */
export async function receiveBounded(body: ReadableStream<Uint8Array> | null, file: string, maxBytes: number): Promise<void> {
  if (!body) throw new NookError('INVALID_ARGUMENT', 'send the archive as the request body');
  const out = await fsp.open(file, 'w', 0o600);
  let total = 0;
  try {
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      total += chunk.length;
      if (total > maxBytes) throw new NookError('PAYLOAD_TOO_LARGE', `the archive is larger than ${maxBytes} bytes`, { hint: 'raise NOOK_MAX_IMPORT_BYTES on the daemon' });
      await out.write(chunk);
    }
  } finally {
    await out.close();
  }
}

/** Reads (and drops) what a client still sends after a refusal, so it gets the answer rather than a broken pipe. */
export async function drainBody(body: ReadableStream<Uint8Array>, limitBytes = DRAIN_LIMIT_BYTES): Promise<void> {
  let seen = 0;
  try {
    for await (const chunk of body.values({ preventCancel: true })) {
      seen += chunk.length;
      if (seen > limitBytes) break;
    }
  } catch {
    // the client went away: nothing to answer
  }
}
