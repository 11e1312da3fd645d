import { listTemplates } from '../core/templates.js';
import { SPEC_FILE } from '../core/builds.js';
import type { ProgressFn } from '../oci/presets.js';
import { safeUntar } from '../util/safe-untar.js';
import { timingSafeEqual } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Hono, type Context } from 'hono';
import type { z } from 'zod';
import { NookError } from '../api/errors.js';
import { openApiDocument } from '../api/openapi.js';
import { routes, type RouteDef } from '../api/routes.js';
import { GcKind, IMAGE_NAME_PATTERN, IMAGE_NAME_RULE, NAME_PATTERN, NAME_RULE, type BuildEvent, type BuildResult, type ExecEvent, type Image, type ExecResult, type LogEvent, type NookEvent, type ProgressEvent } from '../api/schemas.js';
import { VERSION } from '../api/version.js';
import { AuditLog, digestInputs } from '../core/audit.js';
import type { Nook } from '../core/nook.js';
import { newId } from '../util/ids.js';
import { parseUntrustedJson } from '../util/json.js';
import { log } from '../util/log.js';
import { bodyLimit } from 'hono/body-limit';

export interface AppOptions {
  /** Required bearer token (the TCP listener); the unix socket relies on its file mode. */
  token?: string;
  onShutdown: (release: boolean) => void;
}

const NDJSON = 'application/x-ndjson';
/** JSON bodies are buffered: bound them (the largest is an exec with 16 MiB of base64 stdin). */
const MAX_JSON_BODY_BYTES = Number(process.env.NOOK_MAX_JSON_BODY_BYTES ?? 24 * 1024 * 1024);
/** Routes whose body is a stream (tar, file bytes) with a bound of its own. */
const STREAM_BODY = new Set(['writeFile', 'putTar', 'buildSpec', 'importImage']);
/** Copy-out default and copy-in bound for single files (both stream). */
const DEFAULT_COPY_OUT_BYTES = 16 * 1024 * 1024;
const MAX_COPY_IN_BYTES = Number(process.env.NOOK_MAX_COPY_IN_BYTES ?? 16 * 1024 ** 3);
/** Directory copies stream through, so their bounds can be large. */
const MAX_TAR_IN_BYTES = Number(process.env.NOOK_MAX_TAR_IN_BYTES ?? 16 * 1024 ** 3);
const DEFAULT_TAR_OUT_BYTES = 1024 ** 3;
/** Upper bound of an uploaded build context. */
const MAX_CONTEXT_BYTES = Number(process.env.NOOK_MAX_CONTEXT_BYTES ?? 1024 ** 3);
/** Upper bound of an uploaded image archive. */
const MAX_IMPORT_BYTES = Number(process.env.NOOK_MAX_IMPORT_BYTES ?? 16 * 1024 ** 3);

/** Writes a request body to `file`, refusing more than `maxBytes`. */
async function receiveBounded(body: ReadableStream<Uint8Array> | null, file: string, maxBytes: number): Promise<void> {
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

/** How much of a refused upload the daemon reads and drops so the client sees the answer. */
const DRAIN_LIMIT_BYTES = 256 * 1024 * 1024;

async function drainBody(body: ReadableStream<Uint8Array>, limitBytes: number): Promise<void> {
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

/** Calls that free space (or take none) stay allowed when the state dir is nearly full. */
const SPACE_FREEING = new Set(['destroySandbox', 'deleteSnapshot', 'removeImage', 'removeVolume', 'lockVolume', 'unmountVolume', 'stopSandbox', 'killProcess', 'removeFile', 'gc', 'done', 'unexpose', 'shutdown']);
/** Below this much free space where the state dir lives, other mutating calls are refused. */
const MIN_FREE_BYTES = Number(process.env.NOOK_MIN_FREE_MIB ?? 64) * 1024 * 1024;

/**
 * Refuses work before it starts when the state dir's file system is nearly full: the pool
 * is a loop file there too, and a btrfs whose backing file cannot grow goes read-only.
 */
async function ensureStateSpace(stateDir: string): Promise<void> {
  if (MIN_FREE_BYTES <= 0) return;
  const st = await fsp.statfs(stateDir);
  const free = st.bavail * st.bsize;
  if (free < MIN_FREE_BYTES) {
    throw new NookError('NO_SPACE', `only ${Math.floor(free / 1048576)} MiB are free where the state dir lives (${stateDir}); nothing was done`, {
      hint: 'free space there (nook gc, nook destroy, nook image rm), then retry; reads and clean-ups still work',
      context: { freeBytes: free, minFreeBytes: MIN_FREE_BYTES },
    });
  }
}

/** The raw body of a route that takes a tar archive (a JSON body was already read for the audit). */
function tarBody(c: Context): ReadableStream<Uint8Array> {
  const type = c.req.header('content-type') ?? '';
  if (type.includes('json') || !c.req.raw.body || c.req.raw.bodyUsed) {
    throw new NookError('INVALID_ARGUMENT', 'send a tar archive as the request body (content-type: application/x-tar)', { hint: 'the SDK and CLI do this for you' });
  }
  return c.req.raw.body;
}

/** Path parameters as the client meant them; a malformed escape is the client's error, not a 500. */
function decodeParams(params: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      throw new NookError('INVALID_ARGUMENT', `the path parameter ${k} has a malformed %-escape`, { hint: 'percent-encode names with encodeURIComponent' });
    }
  }
  return out;
}

/** Hono path syntax from the route table's OpenAPI syntax: /v1/sandboxes/{ref} -> /:ref. */
function honoPath(path: string): string {
  return path.replace(/\{(\w+)\}/g, ':$1');
}

async function parseBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  const text = await c.req.text();
  const raw = text.trim() === '' ? {} : parseUntrustedJson(text);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.length ? first.path.join('.') : 'body';
    const badName = first?.path.length === 1 && (first.path[0] === 'name' || first.path[0] === 'image');
    throw new NookError(badName ? 'INVALID_NAME' : 'INVALID_ARGUMENT', `${where}: ${first?.message ?? 'invalid'}`, {
      hint: badName ? 'for example: my-agent-1' : 'see /v1/openapi.json for the request schema',
      context: { issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return parsed.data;
}

function errorBody(e: unknown): NookError {
  if (e instanceof NookError) return e;
  const code = (e as { code?: unknown }).code;
  // The state dir (SQLite, logs, scratch) filled up: the operation failed before it counted.
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') {
    log('state dir full', { error: (e as Error).message });
    return new NookError('NO_SPACE', `the daemon's state dir is full (${(e as Error).message}); the operation was not done`, {
      hint: 'free space on the file system that holds NOOK_STATE_DIR, then retry',
    });
  }
  log('internal error', { error: (e as Error).stack ?? String(e) });
  return new NookError('INTERNAL', (e as Error).message || 'internal error', { hint: 'see the daemon log' });
}

/**
 * Streams NDJSON events produced by `work`. Errors after the stream began become an
 * `error` event; the request's abort signal (client gone) reaches `work`.
 */
function ndjson<E>(c: Context, work: (emit: (event: E) => void, signal: AbortSignal) => Promise<void>, toError: (e: NookError) => E, audit?: AuditLog): Response {
  const signal = c.req.raw.signal;
  const encoder = new TextEncoder();
  const ctx = audit?.current();
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      const emit = (event: E): void => {
        // A streamed operation is recorded when its final event is known; the event carries the receipt.
        const e = event as { type?: string; result?: Record<string, unknown>; error?: { code?: string }; receipt?: string };
        if (ctx && audit && !ctx.appended && (e.type === 'result' || e.type === 'done' || e.type === 'error')) {
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
      if (ctx && audit && !ctx.appended) {
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

function execSink(emit: (e: ExecEvent) => void): { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void } {
  return {
    onStdout: (b) => emit({ type: 'stdout', data: b.toString('base64') }),
    onStderr: (b) => emit({ type: 'stderr', data: b.toString('base64') }),
  };
}

function labelsFromQuery(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const i = v.indexOf('=');
    if (i <= 0) throw new NookError('INVALID_ARGUMENT', `label filter ${JSON.stringify(v)} must be key=value`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

export function buildApp(nook: Nook, options: AppOptions): Hono {
  const app = new Hono();
  const sb = nook.sandboxes;

  app.onError((e, c) => {
    const err = errorBody(e);
    return c.json(err.toJSON(), err.status as 400);
  });
  app.notFound((c) => c.json(new NookError('NOT_FOUND', `no endpoint ${c.req.method} ${c.req.path}`, { hint: 'see GET /v1/openapi.json' }).toJSON(), 404));

  if (options.token) {
    const expected = Buffer.from(`Bearer ${options.token}`);
    app.use('*', async (c, next) => {
      const given = Buffer.from(c.req.header('authorization') ?? '');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw new NookError('UNAUTHORIZED', 'a valid bearer token is required on the TCP listener', { hint: 'send Authorization: Bearer <token> (NOOK_TOKEN for the CLI and SDK)' });
      }
      await next();
    });
  }

  // Every body that is read whole is bounded; streamed bodies are bounded where they are consumed.
  const jsonLimit = bodyLimit({
    maxSize: MAX_JSON_BODY_BYTES,
    onError: () => {
      throw new NookError('PAYLOAD_TOO_LARGE', `the request body is over ${MAX_JSON_BODY_BYTES} bytes`, {
        hint: 'send files with nook cp / sandbox.files.write (they stream), not inside a JSON body',
        context: { maxBytes: MAX_JSON_BODY_BYTES },
      });
    },
  });

  // Every mutating call is one audited operation with a receipt in its answer.
  const mutating = (Object.entries(routes) as [string, RouteDef][])
    .filter(([, d]) => d.method !== 'get')
    .map(([action, d]) => ({ action, method: d.method.toUpperCase(), re: new RegExp(`^${d.path.replace(/\{(\w+)\}/g, '(?<$1>[^/]+)')}$`) }));
  app.use('*', async (c, next) => {
    const route = mutating.find((r) => r.method === c.req.method && r.re.test(c.req.path));
    const streamed = route && STREAM_BODY.has(route.action) && !(c.req.header('content-type') ?? '').includes('json');
    if (streamed) return next();
    return jsonLimit(c, next);
  });
  app.use('*', async (c, next) => {
    const route = mutating.find((r) => r.method === c.req.method && r.re.test(c.req.path));
    if (!route) return next();
    const params = decodeParams(route.re.exec(c.req.path)?.groups ?? {});
    const isJson = (c.req.header('content-type') ?? '').includes('json');
    let body: unknown = undefined;
    if (isJson) {
      try {
        body = parseUntrustedJson((await c.req.text()) || '{}');
      } catch (e) {
        // Too large is the caller's error to see; unparsable is parseBody's to answer.
        if (e instanceof NookError && e.code === 'PAYLOAD_TOO_LARGE') throw e;
        body = { unparsable: true };
      }
    }
    if (!SPACE_FREEING.has(route.action)) await ensureStateSpace(nook.paths.stateDir);
    const ref = params.ref;
    const known = ref ? sb.find(ref) : undefined;
    const ctx = {
      receipt: AuditLog.newReceipt(),
      actor: `${options.token ? 'tcp' : 'unix'}:${(c.req.header('x-nook-actor') ?? 'unknown').slice(0, 200)}`,
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
    // Streams record themselves at their last event (see ndjson).
    if (ctx.appended || (c.res.headers.get('content-type') ?? '').includes(NDJSON)) return;
    ctx.appended = true;
    const status = c.res.status;
    const json = (c.res.headers.get('content-type') ?? '').includes('application/json') ? ((await c.res.clone().json().catch(() => null)) as Record<string, unknown> | null) : null;
    const receipt = nook.audit.append(ctx, status < 400 ? 'ok' : 'error', status < 400 ? null : String(json?.code ?? 'INTERNAL'));
    if (json && typeof json === 'object' && !Array.isArray(json)) c.res = new Response(JSON.stringify({ ...json, receipt }), { status, headers: c.res.headers });
    else c.res.headers.set('x-nook-receipt', receipt);
  });

  app.get('/v1/openapi.json', (c) => c.json(openApiDocument(VERSION)));
  app.get(routes.listAudit.path, (c) =>
    c.json({ records: nook.audit.list({ ...(c.req.query('sandbox') ? { sandbox: c.req.query('sandbox') } : {}), ...(c.req.query('action') ? { action: c.req.query('action') } : {}), limit: Number(c.req.query('limit') ?? 100) || 100 }) }),
  );
  app.get(routes.verifyAudit.path, (c) => c.json(nook.audit.verify()));
  app.get(routes.exportAudit.path, () => {
    const encoder = new TextEncoder();
    const records = nook.audit.all();
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = records.next();
        if (next.done) controller.close();
        else controller.enqueue(encoder.encode(JSON.stringify(next.value) + '\n'));
      },
    });
    return new Response(body, { headers: { 'content-type': NDJSON } });
  });
  app.get(honoPath(routes.getAudit.path), (c) => c.json(nook.audit.get(c.req.param('receipt') ?? '')));
  app.get(routes.health.path, (c) => c.json(nook.health()));

  app.get(routes.listSandboxes.path, (c) => {
    const state = c.req.query('state');
    return c.json({ sandboxes: sb.list({ labels: labelsFromQuery(c.req.queries('label')), ...(state ? { state } : {}) }) });
  });
  app.post(routes.createSandbox.path, async (c) => {
    const req = await parseBody(c, routes.createSandbox.body);
    return c.json(req.snapshot ? await nook.snapshots.restore({ ...req, snapshot: req.snapshot }) : await sb.create(req));
  });
  app.get(honoPath(routes.getSandbox.path), (c) => c.json(sb.get(c.req.param('ref') ?? '')));
  app.delete(honoPath(routes.destroySandbox.path), async (c) =>
    c.json(await sb.destroy(c.req.param('ref') ?? '', { withSnapshots: c.req.query('withSnapshots') === 'true' })),
  );
  app.post(honoPath(routes.recycleSandbox.path), async (c) => c.json(await sb.recycle(c.req.param('ref') ?? '')));
  app.post(honoPath(routes.createSnapshot.path), async (c) =>
    c.json(await nook.snapshots.create(c.req.param('ref') ?? '', await parseBody(c, routes.createSnapshot.body))),
  );
  app.get(honoPath(routes.listSandboxSnapshots.path), (c) => {
    const ref = c.req.param('ref') ?? '';
    const snapshots = nook.snapshots.list(ref);
    // A name that is neither a sandbox nor the old name of one with snapshots is a typo.
    if (snapshots.length === 0 && !sb.find(ref)) sb.get(ref);
    return c.json({ snapshots });
  });
  app.delete(honoPath(routes.deleteSnapshot.path), async (c) => c.json(await nook.snapshots.remove(c.req.param('ref') ?? '', c.req.param('name') ?? '')));
  app.get(routes.listSnapshots.path, (c) => c.json({ snapshots: nook.snapshots.list() }));
  app.post(honoPath(routes.fork.path), async (c) =>
    c.json({ sandboxes: await nook.snapshots.fork(c.req.param('ref') ?? '', await parseBody(c, routes.fork.body)) }),
  );
  app.post(honoPath(routes.commit.path), async (c) => c.json(await nook.snapshots.commit(c.req.param('ref') ?? '', await parseBody(c, routes.commit.body))));
  app.post(honoPath(routes.stopSandbox.path), async (c) => {
    const ref = c.req.param('ref') ?? '';
    const before = sb.get(ref);
    const after = await sb.stop(ref);
    // A non-persistent sandbox is destroyed by stop: say so rather than 404 on the next call.
    return c.json(after ?? { ...before, state: 'destroying' as const });
  });
  app.post(honoPath(routes.resumeSandbox.path), async (c) => c.json(await sb.resume(c.req.param('ref') ?? '')));

  app.post(honoPath(routes.exec.path), async (c) => {
    const ref = c.req.param('ref') ?? '';
    const req = await parseBody(c, routes.exec.body);
    sb.get(ref); // a missing sandbox is an HTTP error, before any stream starts
    if (!req.stream) return c.json(await sb.exec(ref, req, {}, c.req.raw.signal));
    return ndjson<ExecEvent>(
      c,
      async (emit, signal) => {
        const result: ExecResult = await sb.exec(ref, req, execSink(emit), signal);
        emit({ type: 'result', result });
      },
      (error) => ({ type: 'error', error: error.toJSON() }),
      nook.audit,
    );
  });

  app.post(routes.run.path, async (c) => {
    const req = await parseBody(c, routes.run.body);
    if (!req.stream) return c.json(await sb.run(req, {}, c.req.raw.signal));
    return ndjson<ExecEvent>(
      c,
      async (emit, signal) => {
        const result = await sb.run(req, { ...execSink(emit), onSandbox: (sandbox) => emit({ type: 'sandbox', sandbox }) }, signal);
        emit({ type: 'result', result });
      },
      (error) => ({ type: 'error', error: error.toJSON() }),
      nook.audit,
    );
  });

  const net = nook.network;
  const ref = (c: Context): string => c.req.param('ref') ?? '';
  app.get(honoPath(routes.showNetwork.path), (c) => c.json(net.show(ref(c), Number(c.req.query('limit') ?? 50) || 50)));
  app.post(honoPath(routes.setNetwork.path), async (c) => c.json(await net.set(ref(c), await parseBody(c, routes.setNetwork.body))));
  app.post(honoPath(routes.allowHosts.path), async (c) => c.json(await net.allow(ref(c), (await parseBody(c, routes.allowHosts.body)).hosts)));
  app.post(honoPath(routes.denyHosts.path), async (c) => c.json(await net.deny(ref(c), (await parseBody(c, routes.denyHosts.body)).hosts)));
  app.get(honoPath(routes.suggestNetwork.path), (c) => c.json({ allow: net.suggestFor(ref(c)) }));
  app.post(honoPath(routes.expose.path), async (c) => {
    const req = await parseBody(c, routes.expose.body);
    return c.json(await net.expose(ref(c), req.port, req.hostPort));
  });
  app.get(honoPath(routes.listExposures.path), (c) => c.json({ exposures: net.exposures(ref(c)) }));
  app.delete(honoPath(routes.unexpose.path), async (c) => {
    const port = Number(c.req.param('port'));
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new NookError('INVALID_ARGUMENT', `port ${c.req.param('port')} is not a port number`);
    return c.json(await net.unexpose(ref(c), port));
  });

  const procs = nook.processes;
  app.post(honoPath(routes.startProcess.path), async (c) => c.json(await procs.start(ref(c), await parseBody(c, routes.startProcess.body))));
  app.get(honoPath(routes.listProcesses.path), (c) => c.json({ processes: procs.list(ref(c)) }));
  app.get(honoPath(routes.getProcess.path), (c) => c.json(procs.get(ref(c), c.req.param('proc') ?? '')));
  app.post(honoPath(routes.killProcess.path), async (c) => {
    const req = await parseBody(c, routes.killProcess.body);
    return c.json(await procs.kill(ref(c), c.req.param('proc') ?? '', req.signal));
  });
  app.get(honoPath(routes.processLogs.path), (c) => {
    const proc = c.req.param('proc') ?? '';
    procs.get(ref(c), proc); // unknown sandbox or process: an HTTP error before the stream
    const tail = c.req.query('tail');
    const since = c.req.query('since');
    const sinceMs = since === undefined ? undefined : /^\d+$/.test(since) ? Number(since) : Date.parse(since);
    if (sinceMs !== undefined && Number.isNaN(sinceMs)) throw new NookError('INVALID_ARGUMENT', `since=${since} is not a time`, { hint: 'give an ISO time or ms since epoch' });
    if (tail !== undefined && !/^\d+$/.test(tail)) throw new NookError('INVALID_ARGUMENT', `tail=${tail} is not a number of lines`);
    const opts = { follow: c.req.query('follow') === 'true', ...(tail !== undefined ? { tail: Number(tail) } : {}), ...(sinceMs !== undefined ? { sinceMs } : {}) };
    return ndjson<LogEvent>(c, (emit, signal) => procs.streamLogs(ref(c), proc, opts, emit, signal), (error) => ({ type: 'error', error: error.toJSON() }));
  });
  app.get(routes.events.path, (c) =>
    ndjson<NookEvent>(
      c,
      (emit, signal) =>
        new Promise<void>((resolve) => {
          const unsubscribe = nook.sandboxes.events.subscribe(emit);
          signal.addEventListener('abort', () => {
            unsubscribe();
            resolve();
          });
        }),
      (error) => ({ at: new Date().toISOString(), type: 'error', detail: error.toJSON() as unknown as Record<string, unknown> }),
    ),
  );

  const ret = nook.retention;
  app.get(honoPath(routes.usage.path), async (c) => c.json(await ret.usage(ref(c))));
  app.post(honoPath(routes.done.path), async (c) => c.json(await ret.done(ref(c))));
  app.get(routes.retained.path, async (c) => c.json({ items: await ret.retained(c.req.query('sandbox')) }));
  app.post(routes.gc.path, async (c) => {
    const req = await parseBody(c, routes.gc.body);
    const dryRun = req.dryRun ?? false;
    return c.json({ dryRun, deleted: await ret.gc(req.olderThanMs, req.kinds ?? GcKind.options, dryRun) });
  });
  app.get(routes.listProfiles.path, (c) => c.json({ profiles: nook.policy.list() }));
  app.get(honoPath(routes.getProfile.path), (c) => c.json(nook.policy.get(c.req.param('name') ?? '')));
  app.post(honoPath(routes.publishProfile.path), (c) => c.json(nook.policy.publish(c.req.param('name') ?? '')));
  app.post(honoPath(routes.saveProfile.path), async (c) => {
    const name = c.req.param('name') ?? '';
    if (!NAME_PATTERN.test(name)) throw new NookError('INVALID_NAME', `invalid profile name ${JSON.stringify(name)}: use ${NAME_RULE}`);
    return c.json(nook.policy.saveDraft(name, await parseBody(c, routes.saveProfile.body)));
  });
  app.get(routes.getConfig.path, (c) => c.json(nook.policy.config()));
  app.post(routes.setConfig.path, async (c) => {
    const req = await parseBody(c, routes.setConfig.body);
    return c.json(nook.policy.set(req.key, req.value));
  });

  const files = nook.files;
  const pathQuery = (c: Context): string => c.req.query('path') ?? '';
  app.get(honoPath(routes.statFile.path), async (c) => c.json(await files.stat(ref(c), pathQuery(c))));
  app.get(honoPath(routes.listFiles.path), async (c) => c.json({ files: await files.list(ref(c), pathQuery(c)) }));
  app.get(honoPath(routes.readFile.path), async (c) => {
    const maxBytes = Number(c.req.query('maxBytes') ?? DEFAULT_COPY_OUT_BYTES);
    if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new NookError('INVALID_ARGUMENT', `maxBytes=${c.req.query('maxBytes')} is not a byte count`);
    const { info, stream } = await files.readStream(ref(c), pathQuery(c), maxBytes);
    return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(info.size) } });
  });
  app.post(honoPath(routes.writeFile.path), async (c) => {
    const mode = Number.parseInt(c.req.query('mode') ?? '644', 8);
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new NookError('INVALID_ARGUMENT', `mode=${c.req.query('mode')} is not octal permission bits`, { hint: 'e.g. 644 or 755' });
    const body = c.req.raw.body;
    // A JSON-typed body was already read for the audit record: write what was read.
    if (!body || c.req.raw.bodyUsed) return c.json(await files.write(ref(c), pathQuery(c), Buffer.from(await c.req.arrayBuffer()), mode));
    try {
      return c.json(await files.writeStream(ref(c), pathQuery(c), body.values({ preventCancel: true }), mode, MAX_COPY_IN_BYTES));
    } catch (e) {
      await drainBody(body, DRAIN_LIMIT_BYTES);
      throw e;
    }
  });
  app.post(honoPath(routes.makeDir.path), async (c) => {
    const req = await parseBody(c, routes.makeDir.body);
    return c.json(await files.mkdir(ref(c), req.path, req.parents ?? false));
  });
  app.post(honoPath(routes.putTar.path), async (c) => {
    const body = tarBody(c);
    try {
      return c.json(await nook.tar.extractInto(ref(c), pathQuery(c), body, MAX_TAR_IN_BYTES));
    } catch (e) {
      // Read (and drop) what the client is still sending, so it gets this answer rather than a broken pipe.
      await drainBody(body, DRAIN_LIMIT_BYTES);
      throw e;
    }
  });
  app.get(honoPath(routes.getTar.path), async (c) => {
    const maxBytes = Number(c.req.query('maxBytes') ?? DEFAULT_TAR_OUT_BYTES);
    if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new NookError('INVALID_ARGUMENT', `maxBytes=${c.req.query('maxBytes')} is not a byte count`);
    const stream = await nook.tar.archive(ref(c), pathQuery(c), maxBytes);
    return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, { headers: { 'content-type': 'application/x-tar' } });
  });
  app.delete(honoPath(routes.removeFile.path), async (c) => {
    await files.remove(ref(c), pathQuery(c), c.req.query('recursive') === 'true');
    return c.json({ path: pathQuery(c) });
  });

  const vols = nook.volumes;
  const vname = (c: Context): string => c.req.param('name') ?? '';
  app.post(routes.createVolume.path, async (c) => {
    const req = await parseBody(c, routes.createVolume.body);
    return c.json(await vols.create(req.name, req.sizeMiB));
  });
  app.get(routes.listVolumes.path, (c) => c.json({ volumes: vols.list() }));
  app.get(honoPath(routes.getVolume.path), (c) => c.json(vols.get(vname(c))));
  app.delete(honoPath(routes.removeVolume.path), async (c) => c.json(await vols.remove(vname(c))));
  app.post(honoPath(routes.unlockVolume.path), async (c) => c.json(await vols.unlock(vname(c))));
  app.post(honoPath(routes.lockVolume.path), async (c) => c.json(await vols.lock(vname(c), (await parseBody(c, routes.lockVolume.body)).force ?? false)));
  app.post(honoPath(routes.mountVolume.path), async (c) => {
    const req = await parseBody(c, routes.mountVolume.body);
    if (req.host) return c.json(await vols.mountHostDir(ref(c), req.volume, req.host, req.guest, req.rw ?? false, nook.policy.setting('rwHostDirs.allowed')));
    return c.json(await vols.mount(ref(c), req.volume, req.guest, req.rw ?? false));
  });
  app.get(honoPath(routes.sandboxVolumes.path), (c) => c.json({ volumes: vols.list(ref(c)) }));
  app.delete(honoPath(routes.unmountVolume.path), async (c) => c.json(await vols.unmount(ref(c), c.req.query('guest') ?? '', c.req.query('force') === 'true')));

  app.get(routes.listTemplates.path, (c) => c.json({ templates: listTemplates() }));
  app.get(routes.listImages.path, (c) => c.json({ images: nook.images.list(c.req.query('all') === 'true') }));
  app.post(routes.buildSpec.path, async (c) => {
    await fsp.mkdir(nook.paths.tmpDir, { recursive: true, mode: 0o700 });
    const dir = await fsp.mkdtemp(join(nook.paths.tmpDir, 'build-'));
    const specFile = c.req.query('spec') ?? SPEC_FILE;
    const build = async (emit: (e: BuildEvent) => void): Promise<BuildResult> => {
      const upload = join(dir, 'context.tar');
      const context = join(dir, 'context');
      await fsp.mkdir(context);
      await receiveBounded(tarBody(c), upload, MAX_CONTEXT_BYTES);
      await safeUntar(createReadStream(upload), context, MAX_CONTEXT_BYTES * 2);
      return nook.builds.build(context, specFile, emit);
    };
    const cleanup = (): Promise<void> => fsp.rm(dir, { recursive: true, force: true });
    if (c.req.query('stream') !== 'true') {
      try {
        return c.json(await build(() => undefined));
      } finally {
        await cleanup();
      }
    }
    return ndjson<BuildEvent>(
      c,
      async (emit) => {
        try {
          emit({ type: 'done', result: await build(emit) });
        } finally {
          await cleanup();
        }
      },
      (error) => ({ type: 'error', error: error.toJSON() }),
      nook.audit,
    );
  });
  app.get(honoPath(routes.getImage.path), (c) => c.json(nook.images.get(c.req.param('name') ?? '')));
  app.get(honoPath(routes.exportImage.path), async (c) => {
    const { file, cleanup } = await nook.images.exportLayout(c.req.param('name') ?? '', nook.paths.tmpDir);
    const size = (await fsp.stat(file)).size;
    const body = Readable.toWeb(createReadStream(file).on('close', () => void cleanup())) as ReadableStream<Uint8Array>;
    return new Response(body, { headers: { 'content-type': 'application/x-tar', 'content-length': String(size) } });
  });
  app.post(routes.importImage.path, async (c) => {
    const name = c.req.query('name') ?? '';
    if (!IMAGE_NAME_PATTERN.test(name)) throw new NookError('INVALID_NAME', `give the new image a valid name (?name=): ${IMAGE_NAME_RULE}`);
    await fsp.mkdir(nook.paths.tmpDir, { recursive: true, mode: 0o700 });
    const file = join(nook.paths.tmpDir, `upload-${newId('u')}.tar`);
    try {
      await receiveBounded(tarBody(c), file, MAX_IMPORT_BYTES);
      return c.json(await nook.images.importLayout(name, file, nook.paths.tmpDir));
    } finally {
      await fsp.rm(file, { force: true });
    }
  });
  app.delete(honoPath(routes.removeImage.path), async (c) => c.json(await nook.images.remove(c.req.param('name') ?? '')));
  /** An image job answered as JSON, or (stream: true) as NDJSON progress events ending in the image. */
  const imageJob = async (c: Context, stream: boolean | undefined, job: (progress: ProgressFn) => Promise<Image>): Promise<Response> => {
    if (!stream) return c.json(await job(() => undefined));
    return ndjson<ProgressEvent>(
      c,
      async (emit) => emit({ type: 'done', image: await job((phase, percent, message) => emit({ type: 'progress', phase, percent, message })) }),
      (error) => ({ type: 'error', error: error.toJSON() }),
      nook.audit,
    );
  };
  app.post(routes.pullImage.path, async (c) => {
    const req = await parseBody(c, routes.pullImage.body);
    const pull = { reference: req.reference, ...(req.name ? { name: req.name } : {}), ...(req.auth ? { auth: req.auth } : {}), ...(req.replace ? { replace: true } : {}), ...(req.policy ? { policy: req.policy } : {}) };
    return imageJob(c, req.stream, (progress) => nook.images.pull(pull, progress));
  });
  app.post(routes.buildImage.path, async (c) => {
    const req = await parseBody(c, routes.buildImage.body);
    const build = { preset: req.preset, ...(req.name ? { name: req.name } : {}), ...(req.rebuild ? { rebuild: true } : {}) };
    return imageJob(c, req.stream, (progress) => nook.images.build(build, progress));
  });

  app.post(routes.shutdown.path, async (c) => {
    const req = await parseBody(c, routes.shutdown.body);
    const health = nook.health();
    options.onShutdown(req.release ?? false);
    return c.json({ ...health, ok: false });
  });

  return app;
}
