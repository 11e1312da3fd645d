/** The daemon itself: health, the OpenAPI document, lifecycle events, shutdown. */
import type { Hono } from 'hono';
import { openApiDocument } from '../../api/openapi.js';
import { routes } from '../../api/routes.js';
import type { NookEvent } from '../../api/schemas.js';
import { VERSION } from '../../api/version.js';
import { parseBody } from '../http/body.js';
import { ndjson } from '../http/ndjson.js';
import { on, type RouteDeps } from './deps.js';

export function register(app: Hono, { nook, options, answer }: RouteDeps): void {
  app.get('/v1/openapi.json', (c) => answer(c, openApiDocument(VERSION)));
  on(app, 'health', async (c) => answer(c, { ...nook.health(), pools: await nook.pool.status() }));
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
  on(app, 'shutdown', async (c) => {
    const req = await parseBody(c, routes.shutdown.body);
    const health = nook.health();
    options.onShutdown(req.release ?? false);
    return answer(c, { ...health, ok: false });
  });
}
