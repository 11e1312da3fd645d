/**
 * envd's plain HTTP file endpoints: GET /files (a file's bytes) and POST /files (multipart
 * parts whose filenames are full paths, or one raw body, optionally gzip-encoded, for
 * ?path=). Bytes stream through core's file manager, bounded; files end up owned by the
 * caller, as envd writes them.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { httpStatusFor, NookError } from '../../api/errors.js';
import type { Nook } from '../../core/nook.js';
import { ConnectError, readBounded } from './connect.js';
import { FilesystemService } from './filesystem.js';
import { identity, type E2bSandbox } from './sandboxes.js';

/** One raw upload (after gunzip) at most; the sandbox's disk limit bounds it too. */
const MAX_UPLOAD_BYTES = Number(process.env.NOOK_MAX_COPY_IN_BYTES ?? 16 * 1024 ** 3);
/** A multipart body is read whole before it is parsed, so it has a bound of its own. */
const MAX_MULTIPART_BYTES = Number(process.env.NOOK_E2B_MAX_MULTIPART_BYTES ?? 256 * 1024 * 1024);
/** A file GET streams, bounded like nook's own reads. */
const MAX_READ_BYTES = Number(process.env.NOOK_MAX_COPY_OUT_BYTES ?? 16 * 1024 ** 3);

/** An error's HTTP status: nook's table for nook's codes, the Connect code's for a bad path or request. */
function httpError(c: Context, e: unknown): Response {
  const status = e instanceof NookError ? httpStatusFor[e.code] : e instanceof ConnectError ? e.status : 500;
  return c.json({ code: status, message: (e as Error).message }, status as ContentfulStatusCode);
}

export class FilesEndpoint {
  constructor(private readonly nook: Nook) {}

  async read(c: Context, sb: E2bSandbox): Promise<Response> {
    const who = identity(sb, c.req.query('username') || undefined);
    try {
      const path = FilesystemService.resolve(c.req.query('path') ?? '', who.home);
      const { info, stream } = await this.nook.files.readStream(sb.record.id, path, MAX_READ_BYTES);
      return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, {
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(info.size), 'content-disposition': 'attachment' },
      });
    } catch (e) {
      return httpError(c, e);
    }
  }

  async write(c: Context, sb: E2bSandbox): Promise<Response> {
    const who = identity(sb, c.req.query('username') || undefined);
    const type = c.req.header('content-type') ?? '';
    try {
      if (type.startsWith('multipart/form-data')) {
        const raw = await readBounded(c.req.raw.body, MAX_MULTIPART_BYTES).catch(() => {
          throw new NookError('PAYLOAD_TOO_LARGE', `the multipart body is over ${MAX_MULTIPART_BYTES} bytes`, { hint: 'upload large files one at a time as application/octet-stream' });
        });
        const form = await new Request('http://local/', { method: 'POST', headers: { 'content-type': type }, body: new Uint8Array(raw) }).formData().catch(() => {
          throw new NookError('INVALID_ARGUMENT', 'the multipart body could not be parsed');
        });
        const written: object[] = [];
        for (const [, part] of form.entries()) {
          if (typeof part === 'string') continue;
          const target = FilesystemService.resolve(part.name || c.req.query('path') || '', who.home);
          const body = Readable.fromWeb(part.stream() as import('node:stream/web').ReadableStream<Uint8Array>);
          written.push(await this.put(sb, who.user, target, body));
        }
        if (written.length === 0) throw new NookError('INVALID_ARGUMENT', 'no file parts in the multipart body');
        return c.json(written);
      }
      const target = FilesystemService.resolve(c.req.query('path') ?? '', who.home);
      const body = c.req.raw.body ? Readable.fromWeb(c.req.raw.body as import('node:stream/web').ReadableStream<Uint8Array>) : Readable.from([]);
      const encoding = (c.req.header('content-encoding') ?? 'identity').toLowerCase();
      if (encoding !== 'identity' && encoding !== 'gzip') throw new NookError('INVALID_ARGUMENT', `Content-Encoding ${encoding.slice(0, 40)} is not supported (gzip or identity)`);
      const bytes = encoding === 'gzip' ? body.pipe(createGunzip()) : body;
      if (encoding === 'gzip') body.on('error', (e) => bytes.destroy(e));
      return c.json([await this.put(sb, who.user, target, bytes)]);
    } catch (e) {
      return httpError(c, e);
    }
  }

  /** Writes one file: its parent made first (as the caller), the file then owned by the caller. */
  private async put(sb: E2bSandbox, user: string | undefined, path: string, body: Readable): Promise<object> {
    const parent = path.slice(0, path.lastIndexOf('/')) || '/';
    const files = this.nook.files;
    const exists = await files.stat(sb.record.id, parent).then(() => true, () => false);
    if (!exists) await this.run(sb, user, ['mkdir', '-p', '--', parent]);
    await files.writeStream(sb.record.id, path, body, 0o644, MAX_UPLOAD_BYTES);
    if (user && user !== 'root') await this.run(sb, undefined, ['chown', `${user}:${user}`, '--', path], 'root');
    return { name: path.slice(path.lastIndexOf('/') + 1), type: 'file', path };
  }

  private async run(sb: E2bSandbox, user: string | undefined, argv: string[], asRoot?: 'root'): Promise<void> {
    const r = await this.nook.commands.exec(sb.record.id, { argv, timeoutMs: 60_000, ...(asRoot ? { user: 'root' } : user ? { user } : {}) });
    if (r.exitCode !== 0) throw new NookError(/Permission denied/.test(r.stderr) ? 'INVALID_ARGUMENT' : 'RUNTIME_ERROR', r.stderr.trim() || `${argv[0]} exited ${r.exitCode}`);
  }
}
