/**
 * A client for the OCI distribution API (pull side): manifests and blobs, with Docker's
 * token auth (401 + `WWW-Authenticate: Bearer realm=...` -> token) and basic auth.
 * Every byte is checked against its digest before anyone uses it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NookError } from '../api/errors.js';
import { MANIFEST_ACCEPT, sha256Hex, type Manifest } from './layers.js';
import { formatReference, registryScheme, type ImageReference } from './reference.js';

export interface RegistryCredentials {
  username: string;
  password: string;
}

/** Longest wait for a registry to answer, and for the next chunk of a body. */
const REQUEST_TIMEOUT_MS = Number(process.env.NOOK_REGISTRY_TIMEOUT_MS ?? 60_000);
/** Manifests are small JSON; a registry that sends more is refused. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Parses `Bearer realm="...",service="...",scope="..."`. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/.exec(header.trim());
  const params: Record<string, string> = {};
  for (const p of (m?.[2] ?? '').matchAll(/(\w+)="([^"]*)"|(\w+)=([^,\s]+)/g)) {
    const key = p[1] ?? p[3];
    const value = p[2] ?? p[4];
    if (key && value !== undefined) params[key] = value;
  }
  return { scheme: (m?.[1] ?? '').toLowerCase(), params };
}

export class RegistryClient {
  private authorization: string | null = null;
  readonly base: string;

  constructor(
    readonly ref: ImageReference,
    private readonly credentials?: RegistryCredentials,
  ) {
    this.base = `${registryScheme(ref.registry)}://${ref.registry}/v2/${ref.repository}`;
  }

  private basic(): string | null {
    return this.credentials ? `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}` : null;
  }

  private async fetchOnce(url: string, headers: Record<string, string>, cancel?: AbortSignal): Promise<Response> {
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    try {
      return await fetch(url, { headers: { ...headers, ...(this.authorization ? { authorization: this.authorization } : {}) }, signal: cancel ? AbortSignal.any([timeout, cancel]) : timeout, redirect: 'follow' });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new NookError('REGISTRY_ERROR', `cannot reach the registry ${this.ref.registry}: ${cause?.code ?? cause?.message ?? (e as Error).message}`, {
        hint: 'check the host and port; loopback registries and NOOK_INSECURE_REGISTRIES use plain HTTP, others HTTPS',
      });
    }
  }

  /** Answers a 401 challenge: fetches a bearer token, or falls back to basic credentials. */
  private async authenticate(challenge: string | null): Promise<void> {
    const { scheme, params } = parseChallenge(challenge ?? '');
    if (scheme === 'basic') {
      const basic = this.basic();
      if (!basic) throw this.authError('the registry asks for a user name and password');
      this.authorization = basic;
      return;
    }
    if (scheme !== 'bearer' || !params.realm) throw this.authError(`the registry asks for authentication we do not speak (${challenge ?? 'no challenge'})`);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope ?? `repository:${this.ref.repository}:pull`);
    const basic = this.basic();
    let res: Response;
    try {
      res = await fetch(url, { headers: basic ? { authorization: basic } : {}, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (e) {
      throw new NookError('REGISTRY_ERROR', `cannot reach the registry's token service ${url.origin}: ${(e as Error).message}`);
    }
    if (res.status === 401 || res.status === 403) throw this.authError('the token service refused the credentials');
    if (!res.ok) throw new NookError('REGISTRY_ERROR', `the registry's token service answered ${res.status}`);
    const body = (await res.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown };
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : null;
    if (!token) throw new NookError('REGISTRY_ERROR', 'the registry\'s token service answered without a token');
    this.authorization = `Bearer ${token}`;
  }

  private authError(why: string): NookError {
    return new NookError('REGISTRY_AUTH_FAILED', `${why} for ${formatReference(this.ref)}`, {
      hint: this.credentials ? 'check the user name and password (nook image pull --username U --password-stdin)' : 'give credentials: nook image pull --username U --password-stdin',
    });
  }

  /** GET with auth: a 401 is answered once with a token or credentials, then retried. */
  private async get(path: string, headers: Record<string, string> = {}, cancel?: AbortSignal): Promise<Response> {
    let res = await this.fetchOnce(`${this.base}${path}`, headers, cancel);
    if (res.status === 401) {
      await res.body?.cancel();
      await this.authenticate(res.headers.get('www-authenticate'));
      res = await this.fetchOnce(`${this.base}${path}`, headers, cancel);
      if (res.status === 401) {
        await res.body?.cancel();
        throw this.authError('the registry refused access');
      }
    }
    return res;
  }

  private async failed(res: Response, what: string): Promise<NookError> {
    const text = (await res.text().catch(() => '')).slice(0, 300);
    if (res.status === 404) {
      return new NookError('IMAGE_NOT_FOUND', `${what} not found in ${this.ref.registry}/${this.ref.repository}`, { hint: 'check the repository and tag' });
    }
    if (res.status === 403) return this.authError('the registry denied access');
    return new NookError('REGISTRY_ERROR', `the registry answered ${res.status} for ${what}: ${text}`);
  }

  /** A manifest or index by tag or digest, its digest verified (and matched when asked by digest). */
  async manifest(reference: string): Promise<{ manifest: Manifest; mediaType: string | undefined; digest: string; bytes: Buffer }> {
    const res = await this.get(`/manifests/${reference}`, { accept: MANIFEST_ACCEPT });
    if (!res.ok) throw await this.failed(res, `manifest ${reference}`);
    const declared = Number(res.headers.get('content-length') ?? 0);
    if (declared > MAX_MANIFEST_BYTES) throw new NookError('REGISTRY_ERROR', `manifest ${reference} is ${declared} bytes: too large`);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > MAX_MANIFEST_BYTES) throw new NookError('REGISTRY_ERROR', `manifest ${reference} is too large`);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new NookError('DIGEST_MISMATCH', `manifest ${reference} arrived with digest ${digest}: refused`);
    }
    let manifest: Manifest;
    try {
      manifest = JSON.parse(bytes.toString('utf8')) as Manifest;
    } catch {
      throw new NookError('REGISTRY_ERROR', `manifest ${reference} is not JSON`);
    }
    const mediaType = manifest.mediaType ?? res.headers.get('content-type')?.split(';')[0]?.trim();
    return { manifest, mediaType, digest, bytes };
  }

  /**
   * Downloads a blob to `dest`, resuming from `dest.partial` when an earlier try left one
   * (a Range request; a registry that ignores it sends the whole blob again). The bytes are
   * hashed as they arrive (node:crypto, no second read), and handed in order to `sink`
   * (the partial's bytes first when resuming), which may be slower than the network: the
   * download waits for it. The file appears at `dest` only after its sha256 and size match.
   */
  async blob(digest: string, size: number | undefined, dest: string, onBytes: (n: number) => void, opts: BlobOptions = {}): Promise<void> {
    const hex = sha256Hex(digest);
    const partial = `${dest}.partial`;
    const sink = opts.sink ?? ((): void => undefined);
    let have = 0;
    const st = await fsp.stat(partial).catch(() => null);
    if (st && (size === undefined || st.size < size)) have = st.size;
    else if (st) await fsp.rm(partial, { force: true });
    const res = await this.get(`/blobs/${digest}`, have > 0 ? { range: `bytes=${have}-` } : {}, opts.signal);
    if (!res.ok || !res.body) throw await this.failed(res, `blob ${digest}`);
    // A registry that ignores the range sends the whole blob: start the hash and the file over.
    const resumed = have > 0 && res.status === 206;
    const hash = createHash('sha256');
    let received = 0;
    if (resumed) {
      for await (const chunk of createReadStream(partial, { end: have - 1 }) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        received += chunk.length;
        await sink(chunk);
      }
      onBytes(received);
    }
    const counter = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
      for await (const chunk of source) {
        received += chunk.length;
        if (size !== undefined && received > size) throw new NookError('DIGEST_MISMATCH', `blob ${digest} is larger than its declared ${size} bytes: refused`);
        hash.update(chunk);
        onBytes(chunk.length);
        await sink(chunk);
        yield chunk;
      }
    };
    try {
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), counter, createWriteStream(partial, { flags: resumed ? 'r+' : 'w', start: resumed ? have : 0 }));
    } catch (e) {
      if (e instanceof NookError) throw e;
      // What arrived stays in the partial file: the next pull resumes from it.
      const why = opts.signal?.aborted ? 'the pull was given up' : ((e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message);
      throw new NookError('REGISTRY_ERROR', `the download of blob ${digest} was cut off after ${received} bytes (${why})`, { hint: 'pull again: it resumes where it stopped' });
    }
    const got = hash.digest('hex');
    if (got !== hex || (size !== undefined && received !== size)) {
      await fsp.rm(partial, { force: true });
      throw new NookError('DIGEST_MISMATCH', `blob ${digest} arrived with sha256:${got} (${received} bytes): refused`, { hint: 'the registry or something between us altered it; pull again' });
    }
    await fsp.rename(partial, dest);
  }
}

export interface BlobOptions {
  /** Receives every byte of the blob in order; the download waits on its promise. */
  sink?: (chunk: Buffer) => Promise<void> | void;
  /** Gives the download up (what arrived stays in the partial file, to resume). */
  signal?: AbortSignal;
}
