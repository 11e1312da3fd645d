/**
 * The Connect protocol in its JSON form over HTTP/1.1, as envd's clients speak it
 * (https://connectrpc.com/docs/protocol): unary calls are a plain JSON body answered with a
 * JSON body (errors as {code, message} with the code's HTTP status); streaming calls send
 * and receive enveloped messages (a flags byte, a big-endian uint32 length, the JSON), and a
 * server stream ends with an end-of-stream envelope (flag 0x02) carrying an optional error.
 * Everything a client sends here is bounded before it is parsed.
 */
import { NookError } from '../../api/errors.js';
import { parseUntrustedJson } from '../../util/json.js';

/** One request message at most (the largest envd request is a stdin chunk or a path). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export const FLAG_COMPRESSED = 0x01;
export const FLAG_END_STREAM = 0x02;

export type ConnectCode =
  | 'canceled'
  | 'unknown'
  | 'invalid_argument'
  | 'deadline_exceeded'
  | 'not_found'
  | 'already_exists'
  | 'permission_denied'
  | 'resource_exhausted'
  | 'failed_precondition'
  | 'aborted'
  | 'out_of_range'
  | 'unimplemented'
  | 'internal'
  | 'unavailable'
  | 'unauthenticated';

const HTTP_STATUS: Record<ConnectCode, number> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  unauthenticated: 401,
};

/** An error as a Connect client sees it. */
export class ConnectError extends Error {
  constructor(
    readonly code: ConnectCode,
    message: string,
  ) {
    super(message);
  }
  get status(): number {
    return HTTP_STATUS[this.code];
  }
  toJSON(): { code: ConnectCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** nook's error codes as Connect codes (the SDK maps these to its own error classes). */
const FROM_NOOK: Record<string, ConnectCode> = {
  INVALID_ARGUMENT: 'invalid_argument',
  FILE_NOT_FOUND: 'not_found',
  NOT_FOUND: 'not_found',
  SANDBOX_NOT_FOUND: 'not_found',
  PROCESS_NOT_FOUND: 'not_found',
  PAYLOAD_TOO_LARGE: 'resource_exhausted',
  TIMEOUT: 'deadline_exceeded',
  INVALID_STATE: 'failed_precondition',
  NOT_SUPPORTED: 'unimplemented',
  UNAUTHORIZED: 'unauthenticated',
  BUSY: 'unavailable',
};

export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof NookError) return new ConnectError(FROM_NOOK[e.code] ?? 'internal', e.message);
  return new ConnectError('internal', (e as Error).message || 'internal error');
}

/** Reads a request body, refusing it past `maxBytes` without reading the rest. */
export async function readBounded(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new ConnectError('resource_exhausted', `the request message is over ${maxBytes} bytes`);
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks);
}

function parseMessage(bytes: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseUntrustedJson(bytes.length === 0 ? '{}' : bytes.toString('utf8'));
  } catch (e) {
    throw new ConnectError('invalid_argument', `the request message is not valid JSON: ${(e as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ConnectError('invalid_argument', 'the request message must be a JSON object');
  return value as Record<string, unknown>;
}

/** A unary request: the body is the message. */
export function parseUnary(body: Buffer): Record<string, unknown> {
  return parseMessage(body);
}

/**
 * The one request message of a server-streaming call: exactly one uncompressed envelope whose
 * length matches what was sent. Anything else is invalid_argument, never a guess.
 */
export function parseEnvelopedRequest(body: Buffer): Record<string, unknown> {
  if (body.length < 5) throw new ConnectError('invalid_argument', `a streaming request needs a 5-byte envelope prefix (got ${body.length} bytes)`);
  const flags = body[0] ?? 0;
  const length = body.readUInt32BE(1);
  if (flags & FLAG_COMPRESSED) throw new ConnectError('unimplemented', 'compressed messages are not supported (send Connect-Content-Encoding: identity)');
  if (flags & FLAG_END_STREAM || flags & ~(FLAG_COMPRESSED | FLAG_END_STREAM)) throw new ConnectError('invalid_argument', `unexpected envelope flags 0x${flags.toString(16)}`);
  if (length > MAX_MESSAGE_BYTES) throw new ConnectError('resource_exhausted', `the request message is over ${MAX_MESSAGE_BYTES} bytes`);
  if (body.length !== 5 + length) throw new ConnectError('invalid_argument', `the envelope says ${length} bytes but ${body.length - 5} followed`);
  return parseMessage(body.subarray(5));
}

export function envelope(flags: number, message: object): Buffer {
  const json = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

/** The last envelope of a server stream: {} on success, {error} otherwise. */
export function endOfStream(error?: ConnectError): Buffer {
  return envelope(FLAG_END_STREAM, error ? { error: error.toJSON() } : {});
}

/** A unary answer. */
export function unaryResponse(message: object): Response {
  return new Response(JSON.stringify(message), { status: 200, headers: { 'content-type': 'application/json' } });
}

export function unaryError(e: unknown): Response {
  const err = toConnectError(e);
  // A body refused part-way is never read to its end: the connection cannot carry another request.
  const close: Record<string, string> = err.code === 'resource_exhausted' ? { connection: 'close' } : {};
  return new Response(JSON.stringify(err.toJSON()), { status: err.status, headers: { 'content-type': 'application/json', ...close } });
}

/** Connect-Timeout-Ms: at most 10 digits (the protocol's bound); undefined when absent. */
export function timeoutOf(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  if (!/^\d{1,10}$/.test(header)) throw new ConnectError('invalid_argument', `Connect-Timeout-Ms ${JSON.stringify(header.slice(0, 20))} is not 1-10 digits`);
  return Number(header);
}

/** Reads a field that must be a string (or absent). */
export function str(msg: Record<string, unknown>, key: string, fallback = ''): string {
  const v = msg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string') throw new ConnectError('invalid_argument', `${key} must be a string`);
  return v;
}

/** Reads a field that must be an object (or absent). */
export function obj(msg: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const v = msg[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new ConnectError('invalid_argument', `${key} must be an object`);
  return v as Record<string, unknown>;
}

/** A uint32 field (protobuf JSON allows a number or a decimal string). */
export function uint(msg: Record<string, unknown>, key: string): number | undefined {
  const v = msg[key];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new ConnectError('invalid_argument', `${key} must be an unsigned integer`);
  return n;
}
