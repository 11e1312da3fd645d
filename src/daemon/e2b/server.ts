/**
 * The E2B-compatible front (NOOK_E2B_LISTEN): one TCP listener serves E2B's control plane
 * and, for requests that carry E2b-Sandbox-Id, the in-sandbox API (envd's Connect services,
 * /files, /health) or, for any other E2b-Sandbox-Port, that port in the sandbox. The API key
 * (X-API-Key) is the daemon's token; in-sandbox calls carry the sandbox's access token.
 */
import { timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import type { Nook } from '../../core/nook.js';
import { log } from '../../util/log.js';
import { unaryError, ConnectError } from './connect.js';
import { ControlPlane } from './control.js';
import { FilesEndpoint } from './files.js';
import { FilesystemService } from './filesystem.js';
import { InterpreterSupervisor, JUPYTER_PORT } from './interpreter.js';
import { ProcessService } from './process.js';
import { proxyToPort } from './proxy.js';
import { apiError, E2bIds, ENVD_PORT, type E2bSandbox } from './sandboxes.js';

function sameSecret(given: string | undefined, want: string): boolean {
  const a = Buffer.from(given ?? '');
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Which sandbox and port a request is for: E2B's headers, or a Host of the form PORT-ID.domain. */
function target(c: Context): { id: string; port: number } | undefined {
  const id = c.req.header('e2b-sandbox-id');
  if (id) return { id, port: Number(c.req.header('e2b-sandbox-port') ?? ENVD_PORT) };
  const m = /^(\d{1,5})-([a-z0-9]{20})\./.exec(c.req.header('host') ?? '');
  return m ? { id: m[2] ?? '', port: Number(m[1]) } : undefined;
}

export function buildE2bApp(nook: Nook, token: string): Hono {
  const app = new Hono();
  const ids = new E2bIds(nook, token);
  const processes = new ProcessService(nook);
  const filesystem = new FilesystemService(nook);
  const files = new FilesEndpoint(nook);
  const control = new ControlPlane(nook, ids);
  const interpreter = new InterpreterSupervisor(nook);

  app.onError((e, c) => {
    const code = (e as { code?: string }).code;
    const status = code === 'INVALID_ARGUMENT' || code === 'INVALID_NAME' ? 400 : code === 'SANDBOX_NOT_FOUND' || code === 'IMAGE_NOT_FOUND' ? 404 : code === 'INVALID_STATE' || code === 'NAME_TAKEN' ? 409 : code === 'NO_SPACE' ? 507 : code === 'PAYLOAD_TOO_LARGE' ? 400 : 500;
    if (status === 500) log('e2b: internal error', { path: c.req.path, error: (e as Error).stack ?? String(e) });
    return apiError(c, status as 500, (e as Error).message);
  });
  app.notFound((c) => apiError(c, 404, `no endpoint ${c.req.method} ${c.req.path.slice(0, 200)}`));

  // The sandbox plane: routed by header before anything else.
  app.use('*', async (c, next) => {
    const t = target(c);
    if (!t) return next();
    const sb = ids.find(t.id);
    if (!sb || sb.record.state !== 'running') return apiError(c, 502, `sandbox ${t.id.slice(0, 64)} is not running (not found, paused or killed)`);
    const authorised = sameSecret(c.req.header('x-access-token'), ids.accessToken(t.id)) || sameSecret(c.req.header('x-api-key'), token);
    if (t.port !== ENVD_PORT) {
      if (!authorised && !sameSecret(c.req.header('e2b-traffic-access-token'), ids.trafficToken(t.id))) {
        return apiError(c, 401, 'send the sandbox access token (X-Access-Token), its traffic token (E2B-Traffic-Access-Token) or the API key (X-API-Key)');
      }
      if (t.port === JUPYTER_PORT && InterpreterSupervisor.serves(sb)) {
        const failed = await interpreter.ensure(sb).then(() => undefined, (e: Error) => e.message);
        if (failed) return apiError(c, 503, failed);
      }
      return proxyToPort(c, nook, sb, t.port);
    }
    if (!authorised) {
      if (c.req.path.startsWith('/process.') || c.req.path.startsWith('/filesystem.')) return unaryError(new ConnectError('unauthenticated', 'the sandbox access token (X-Access-Token) is missing or wrong'));
      return apiError(c, 401, 'the sandbox access token (X-Access-Token) is missing or wrong');
    }
    return envd(c, sb);
  });

  const envd = async (c: Context, sb: E2bSandbox): Promise<Response> => {
    const path = c.req.path;
    if (path === '/health') return c.body(null, 204);
    if (path === '/files' && c.req.method === 'GET') return files.read(c, sb);
    if (path === '/files' && c.req.method === 'POST') return files.write(c, sb);
    const rpc = /^\/(process\.Process|filesystem\.Filesystem)\/([A-Za-z]{1,64})$/.exec(path);
    if (!rpc || c.req.method !== 'POST') return unaryError(new ConnectError('unimplemented', `no in-sandbox endpoint ${c.req.method} ${path.slice(0, 200)}`));
    return rpc[1] === 'process.Process' ? processes.handle(c, sb, rpc[2] ?? '') : filesystem.handle(c, sb, rpc[2] ?? '');
  };

  // The control plane: the API key first.
  app.use('*', async (c, next) => {
    if (!sameSecret(c.req.header('x-api-key'), token)) return apiError(c, 401, 'Invalid API key: send the nook daemon token as X-API-Key (E2B_API_KEY)');
    await next();
  });
  control.register(app);
  return app;
}
