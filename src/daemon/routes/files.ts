/** Files inside a sandbox: stat, list, read, write (streamed), mkdir, remove; directory trees as tar in and out. */
import { Readable } from 'node:stream';
import type { Hono } from 'hono';
import { NookError } from '../../api/errors.js';
import { routes } from '../../api/routes.js';
import type { FastCopyEvent } from '../../api/schemas.js';
import { drainBody, parseBody, tarBody } from '../http/body.js';
import { errorEvent, ndjson } from '../http/ndjson.js';
import { readQuery } from '../http/input.js';
import { on, ref, type RouteDeps } from './deps.js';

/** Copy-in bound for single files (the body streams to disk). */
export const MAX_COPY_IN_BYTES = Number(process.env.NOOK_MAX_COPY_IN_BYTES ?? 16 * 1024 ** 3);
/** Directory copies stream through, so their bound can be large. */
const MAX_TAR_IN_BYTES = Number(process.env.NOOK_MAX_TAR_IN_BYTES ?? 16 * 1024 ** 3);

/** A byte stream answer (file bytes or a tar archive). */
function bytes(stream: Readable, headers: Record<string, string>): Response {
  return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, { headers });
}

/** Runs `consume` on a streamed body; on a refusal, reads (and drops) the rest so the client gets the answer rather than a broken pipe. */
async function consuming<T>(body: ReadableStream<Uint8Array>, consume: () => Promise<T>): Promise<T> {
  try {
    return await consume();
  } catch (e) {
    await drainBody(body);
    throw e;
  }
}

export function register(app: Hono, { nook, answer, options }: RouteDeps): void {
  const files = nook.files;
  on(app, 'statFile', async (c) => answer(c, await files.stat(ref(c), readQuery(c, routes.statFile.query).path)));
  on(app, 'listFiles', async (c) => {
    const q = readQuery(c, routes.listFiles.query);
    const all = await files.list(ref(c), q.path);
    // A page of the listing when asked for one (the console never renders a huge directory whole).
    if (q.limit === undefined && q.offset === undefined) return answer(c, { files: all });
    const offset = q.offset ?? 0;
    return answer(c, { files: all.slice(offset, offset + (q.limit ?? all.length)), total: all.length });
  });
  on(app, 'readFile', async (c) => {
    const q = readQuery(c, routes.readFile.query);
    const { info, stream } = await files.readStream(ref(c), q.path, q.maxBytes);
    return bytes(stream, { 'content-type': 'application/octet-stream', 'content-length': String(info.size) });
  });
  on(app, 'writeFile', async (c) => {
    const q = readQuery(c, routes.writeFile.query);
    // Refused before a byte is read when the client says up front that it is too large.
    const declared = Number(c.req.header('content-length') ?? 0);
    if (declared > MAX_COPY_IN_BYTES) {
      throw new NookError('PAYLOAD_TOO_LARGE', `${declared} bytes is more than the copy-in limit of ${MAX_COPY_IN_BYTES}`, {
        hint: 'copy a smaller file, or raise NOOK_MAX_COPY_IN_BYTES on the daemon',
        context: { maxBytes: MAX_COPY_IN_BYTES },
      });
    }
    const body = c.req.raw.body;
    // A JSON-typed body was already read for the audit record: write what was read.
    if (!body || c.req.raw.bodyUsed) return answer(c, await files.write(ref(c), q.path, Buffer.from(await c.req.arrayBuffer()), q.mode));
    return answer(c, await consuming(body, () => files.writeStream(ref(c), q.path, body.values({ preventCancel: true }), q.mode, MAX_COPY_IN_BYTES)));
  });
  on(app, 'fastCopy', async (c) => {
    // An fd can only be handed over a local socket: a TCP client streams.
    if (options.token) throw new NookError('NOT_SUPPORTED', 'the fast copy is for clients on the unix socket', { hint: 'copy with the streaming file routes (the CLI and SDK do)' });
    const req = await parseBody(c, routes.fastCopy.body);
    nook.sandboxes.get(ref(c)); // a missing sandbox is an HTTP error, before any stream starts
    return ndjson<FastCopyEvent>(
      c,
      nook.audit,
      async (emit, signal) => emit({ type: 'result', result: await files.fastCopy(ref(c), req, req.kind === 'tar' ? MAX_TAR_IN_BYTES : MAX_COPY_IN_BYTES, (socket) => emit({ type: 'ready', socket }), signal) }),
      errorEvent,
    );
  });
  on(app, 'makeDir', async (c) => {
    const req = await parseBody(c, routes.makeDir.body);
    return answer(c, await files.mkdir(ref(c), req.path, req.parents ?? false));
  });
  on(app, 'putTar', async (c) => {
    const { path } = readQuery(c, routes.putTar.query);
    const body = tarBody(c);
    return answer(c, await consuming(body, () => nook.tar.extractInto(ref(c), path, body, MAX_TAR_IN_BYTES)));
  });
  on(app, 'getTar', async (c) => {
    const q = readQuery(c, routes.getTar.query);
    return bytes(await nook.tar.archive(ref(c), q.path, q.maxBytes), { 'content-type': 'application/x-tar' });
  });
  on(app, 'removeFile', async (c) => {
    const q = readQuery(c, routes.removeFile.query);
    await files.remove(ref(c), q.path, q.recursive);
    return answer(c, { path: q.path });
  });
}
