/**
 * E2B's control plane (REST, JSON) on nook's sandbox manager: create, connect and resume,
 * kill, get, list (metadata and state filters, X-Next-Token paging), timeout (nook's TTL),
 * pause (nook's stop), metrics. What nook has no counterpart for answers 501.
 */
import type { Context, Hono } from 'hono';
import { NookError } from '../../api/errors.js';
import { LIMITS, Preset, TemplateName, type Sandbox, type Template } from '../../api/schemas.js';
import type { Nook } from '../../core/nook.js';
import { parseUntrustedJson } from '../../util/json.js';
import { log } from '../../util/log.js';
import { readBounded } from './connect.js';
import { CODE_INTERPRETER_TEMPLATE } from './interpreter.js';
import { apiError, BASE_TEMPLATES, ENVD_VERSION, KIND, newSandboxId, type E2bIds, type E2bSandbox } from './sandboxes.js';

const DEFAULT_TIMEOUT_S = 300;
const MAX_BODY_BYTES = 1024 * 1024;
const LIST_LIMIT_MAX = 1000;

/** Calls E2B has and nook does not: answered 501 with a JSON body naming what to use instead. */
const UNSUPPORTED: [RegExp, string][] = [
  [/^\/(v\d\/)?templates(\/|$)/, 'template builds are not supported: use nook images (nook build, nook image pull) and pass their name as templateID'],
  [/^\/volume(s|content)(\/|$)/, "E2B volumes are not supported: use nook's volumes (nook volume)"],
  [/^\/secrets(\/|$)/, 'secrets are not supported: pass envVars, or use nook profiles'],
  [/^\/snapshots(\/|$)|^\/sandboxes\/[^/]+\/snapshots$/, "E2B snapshots are not supported: use nook's snapshots (nook snapshot)"],
  [/^\/sandboxes\/[^/]+\/(fork|network|logs)$|^\/v\d\/sandboxes\/[^/]+\/logs$/, 'not supported by nook'],
];

type Body = Record<string, unknown>;

async function jsonBody(c: Context): Promise<Body> {
  const raw = await readBounded(c.req.raw.body, MAX_BODY_BYTES);
  if (raw.length === 0) return {};
  const v = parseUntrustedJson(raw.toString('utf8'));
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new NookError('INVALID_ARGUMENT', 'the body must be a JSON object');
  return v as Body;
}

/** timeout (seconds) as a TTL in ms; 300 s when absent, at most nook's longest TTL. */
function ttlOf(body: Body): number {
  const t = body.timeout;
  if (t === undefined || t === null) return DEFAULT_TIMEOUT_S * 1000;
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 0) throw new NookError('INVALID_ARGUMENT', 'timeout must be a whole number of seconds');
  return Math.min(Math.max(t, 1) * 1000, LIMITS.maxTtlMs);
}

function stringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) throw new NookError('INVALID_ARGUMENT', `${what} must be an object of strings`);
  if (Object.keys(v).length > 64) throw new NookError('INVALID_ARGUMENT', `${what}: at most 64 entries`);
  return v as Record<string, string>;
}

export class ControlPlane {
  constructor(
    private readonly nook: Nook,
    private readonly ids: E2bIds,
  ) {}

  private detail(sb: E2bSandbox): object {
    const s: Sandbox = this.nook.sandboxes.get(sb.record.id);
    const started = Date.parse(s.createdAt);
    return {
      sandboxID: sb.foreign.foreignId,
      templateID: sb.foreign.template,
      alias: sb.foreign.template,
      clientID: 'nook',
      startedAt: new Date(started).toISOString(),
      endAt: s.expiresAt ?? new Date(started + (s.ttlMs ?? 0)).toISOString(),
      state: s.state === 'running' ? 'running' : 'paused',
      cpuCount: s.limits.cpus,
      memoryMB: s.limits.memoryMiB,
      diskSizeMB: s.limits.diskMiB ?? 0,
      envdVersion: ENVD_VERSION,
      metadata: sb.foreign.metadata,
      volumeMounts: [],
    };
  }

  private created(sb: E2bSandbox): object {
    return {
      sandboxID: sb.foreign.foreignId,
      templateID: sb.foreign.template,
      alias: sb.foreign.template,
      clientID: 'nook',
      envdVersion: ENVD_VERSION,
      envdAccessToken: this.ids.accessToken(sb.foreign.foreignId),
      // Sent by @e2b/code-interpreter on its context calls (which carry no envd token) and accepted for any port.
      trafficAccessToken: this.ids.trafficToken(sb.foreign.foreignId),
      domain: null,
    };
  }

  /** The nook create fields for an E2B templateID: a template, else an image of that name; else E2B's 404. */
  private source(templateID: string): { template: Template['name'] } | { image: string } | undefined {
    // The code interpreter is the base template plus a runner nook starts on demand (interpreter.ts).
    if (templateID === CODE_INTERPRETER_TEMPLATE) return { template: 'base' };
    if (TemplateName.safeParse(templateID).success) return { template: templateID as Template['name'] };
    if (this.nook.images.find(templateID) || Preset.safeParse(templateID).success) return { image: templateID };
    return undefined;
  }

  private async create(c: Context): Promise<Response> {
    const body = await jsonBody(c);
    const templateID = typeof body.templateID === 'string' && body.templateID ? body.templateID : 'base';
    const source = this.source(templateID);
    if (!source) return apiError(c, 404, `template '${templateID.slice(0, 100)}' not found`);
    const metadata = stringMap(body.metadata, 'metadata');
    const env = stringMap(body.envVars, 'envVars');
    const ttlMs = ttlOf(body);
    const id = newSandboxId();
    // Metadata that fits nook's label rules shows in `nook ls` too; all of it stays in foreign_ids.
    const labels: Record<string, string> = { 'e2b.id': id, 'e2b.template': templateID.slice(0, 256) };
    for (const [k, v] of Object.entries(metadata)) {
      const key = `e2b.meta.${k}`;
      if (/^[A-Za-z0-9._/-]{1,63}$/.test(key) && v.length <= 256 && Object.keys(labels).length < LIMITS.maxLabels) labels[key] = v;
    }
    const sandbox = await this.nook.sandboxes.create({
      name: id,
      ...source,
      persistent: true,
      ttlMs,
      labels,
      env,
      ...(BASE_TEMPLATES.has(templateID) ? { cwd: '/home/user' } : {}),
    });
    const foreign = this.nook.foreignIds.put({ foreignId: id, sandboxId: sandbox.id, kind: KIND, template: templateID, metadata, onExpiry: body.autoPause === true ? 'stop' : 'destroy' });
    log('e2b sandbox created', { id, sandbox: sandbox.id, template: templateID });
    return c.json(this.created({ foreign, record: this.nook.sandboxes.record(sandbox.id) }), 201);
  }

  /** connect and resume: a paused sandbox is resumed; the timeout is set either way. */
  private async connect(c: Context, sb: E2bSandbox, resumeOnly: boolean): Promise<Response> {
    const body = await jsonBody(c);
    const wasRunning = sb.record.state === 'running';
    if (resumeOnly && wasRunning) return apiError(c, 409, `sandbox ${sb.foreign.foreignId} is already running`);
    if (!wasRunning) await this.nook.sandboxes.resume(sb.record.id);
    this.nook.sandboxes.setTtl(sb.record.id, ttlOf(body));
    if (typeof body.autoPause === 'boolean') this.nook.foreignIds.setOnExpiry(sb.record.id, body.autoPause ? 'stop' : 'destroy');
    const fresh = this.ids.find(sb.foreign.foreignId);
    if (!fresh) return apiError(c, 404, `sandbox ${sb.foreign.foreignId} not found`);
    return c.json(this.created(fresh), wasRunning ? 200 : 201);
  }

  private list(c: Context, version: 1 | 2): Response {
    const wanted = version === 1 ? ['running'] : (c.req.query('state') ?? 'running,paused').split(',').filter(Boolean);
    const metadata = new URLSearchParams(c.req.query('metadata') ?? '');
    const limit = Math.min(Math.max(Number(c.req.query('limit') ?? 100) || 100, 1), LIST_LIMIT_MAX);
    const after = c.req.query('nextToken') ?? '';
    const all = this.nook.foreignIds
      .list(KIND)
      .map((f) => this.ids.find(f.foreignId))
      .filter((s): s is E2bSandbox => !!s)
      .map((s) => this.detail(s) as { sandboxID: string; state: string; metadata: Record<string, string> })
      .filter((d) => wanted.includes(d.state))
      .filter((d) => [...metadata.entries()].every(([k, v]) => d.metadata[k] === v));
    // The token is the last id of the page before; ids are listed in creation order.
    const start = after ? all.findIndex((d) => d.sandboxID === after) + 1 : 0;
    const page = all.slice(start, start + limit);
    if (version === 2 && start + limit < all.length && page.length > 0) c.header('X-Next-Token', page[page.length - 1]?.sandboxID ?? '');
    return c.json(page);
  }

  private async metrics(c: Context, sb: E2bSandbox): Promise<Response> {
    const s = this.nook.sandboxes.get(sb.record.id);
    const usage = await this.nook.retention.usage(sb.record.id);
    // What nook measures: no CPU or memory sampling, so those fields are left out.
    return c.json([
      {
        timestamp: new Date().toISOString(),
        timestampUnix: Math.floor(Date.now() / 1000),
        cpuCount: s.limits.cpus,
        memTotal: s.limits.memoryMiB * 1024 * 1024,
        diskUsed: usage.disk.usedBytes ?? usage.storedBytes.files,
        diskTotal: (s.limits.diskMiB ?? 0) * 1024 * 1024,
      },
    ]);
  }

  register(app: Hono): void {
    const withSandbox = (fn: (c: Context, sb: E2bSandbox) => Promise<Response> | Response) => async (c: Context): Promise<Response> => {
      const sb = this.ids.find(c.req.param('id') ?? '');
      if (!sb) return apiError(c, 404, `sandbox ${(c.req.param('id') ?? '').slice(0, 64)} not found`);
      return fn(c, sb);
    };
    for (const [re, message] of UNSUPPORTED) {
      app.use('*', async (c, next) => (re.test(c.req.path) ? apiError(c, 501, message) : next()));
    }
    app.post('/sandboxes', (c) => this.create(c));
    app.post('/v2/sandboxes', (c) => this.create(c));
    app.get('/sandboxes', (c) => this.list(c, 1));
    app.get('/v2/sandboxes', (c) => this.list(c, 2));
    app.get('/sandboxes/:id', withSandbox((c, sb) => c.json(this.detail(sb))));
    app.delete(
      '/sandboxes/:id',
      withSandbox(async (c, sb) => {
        await this.nook.sandboxes.destroy(sb.record.id);
        return c.body(null, 204);
      }),
    );
    for (const prefix of ['', '/v2']) {
      app.post(`${prefix}/sandboxes/:id/connect`, withSandbox((c, sb) => this.connect(c, sb, false)));
      app.post(`${prefix}/sandboxes/:id/resume`, withSandbox((c, sb) => this.connect(c, sb, true)));
    }
    app.post(
      '/sandboxes/:id/timeout',
      withSandbox(async (c, sb) => {
        this.nook.sandboxes.setTtl(sb.record.id, ttlOf(await jsonBody(c)));
        return c.body(null, 204);
      }),
    );
    app.post(
      '/sandboxes/:id/refreshes',
      withSandbox(async (c, sb) => {
        const body = await jsonBody(c);
        this.nook.sandboxes.setTtl(sb.record.id, ttlOf({ timeout: body.duration }));
        return c.body(null, 204);
      }),
    );
    app.post(
      '/sandboxes/:id/pause',
      withSandbox(async (c, sb) => {
        if (sb.record.state === 'paused') return apiError(c, 409, `sandbox ${sb.foreign.foreignId} is already paused`);
        await this.nook.sandboxes.stop(sb.record.id);
        return c.body(null, 204);
      }),
    );
    app.get('/sandboxes/:id/metrics', withSandbox((c, sb) => this.metrics(c, sb)));
  }
}
