/** The daemon itself: health, the OpenAPI document, lifecycle events, shutdown. */
import type { Hono } from 'hono';
import { openApiDocument } from '../../api/openapi.js';
import { NookError } from '../../api/errors.js';
import { routes } from '../../api/routes.js';
import type { NookEvent } from '../../api/schemas.js';
import { VERSION } from '../../api/version.js';
import { parseBody } from '../http/body.js';
import { ndjson } from '../http/ndjson.js';
import { on, type RouteDeps } from './deps.js';
import { MAX_COPY_IN_BYTES } from './files.js';

export function register(app: Hono, { nook, options, answer }: RouteDeps): void {
  app.get('/v1/openapi.json', (c) => answer(c, openApiDocument(VERSION)));
  on(app, 'health', async (c) => answer(c, { ...nook.health(), pools: await nook.pool.status(), limits: { copyInBytes: MAX_COPY_IN_BYTES } }));
  on(app, 'events', (c) =>
    ndjson<NookEvent>(
      c,
      nook.audit,
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
  on(app, 'consoleLogin', (c) => {
    if (!options.console) throw new NookError('NOT_SUPPORTED', 'the web console is not enabled on this daemon', { hint: 'start nookd with NOOK_TCP=127.0.0.1:7878 and NOOK_TOKEN_FILE=/etc/nook/token' });
    return answer(c, options.console.issueLogin());
  });
  on(app, 'shutdown', async (c) => {
    const req = await parseBody(c, routes.shutdown.body);
    const health = nook.health();
    options.onShutdown(req.release ?? false);
    return answer(c, { ...health, ok: false });
  });
}
