/** What a job leaves behind: usage, the end-of-job checklist, retained state and its clean-up. */
import type { Hono } from 'hono';
import { routes } from '../../api/routes.js';
import { GcKind } from '../../api/schemas.js';
import { parseBody } from '../http/body.js';
import { readQuery } from '../http/input.js';
import { on, ref, type RouteDeps } from './deps.js';

export function register(app: Hono, { nook, answer }: RouteDeps): void {
  const ret = nook.retention;
  on(app, 'usage', async (c) => answer(c, await ret.usage(ref(c))));
  on(app, 'done', async (c) => answer(c, await ret.done(ref(c))));
  on(app, 'retained', async (c) => answer(c, { items: await ret.retained(readQuery(c, routes.retained.query).sandbox) }));
  on(app, 'gc', async (c) => {
    const req = await parseBody(c, routes.gc.body);
    const dryRun = req.dryRun ?? false;
    return answer(c, { dryRun, deleted: await ret.gc(req.olderThanMs, req.kinds ?? GcKind.options, dryRun) });
  });
}
