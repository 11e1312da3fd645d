/** Sandboxes: create (from an image or a snapshot), list, get, stop, resume, recycle, destroy. */
import type { Hono } from 'hono';
import { routes } from '../../api/routes.js';
import { parseBody } from '../http/body.js';
import { readQuery } from '../http/input.js';
import { on, ref, type RouteDeps } from './deps.js';

export function register(app: Hono, { nook, answer }: RouteDeps): void {
  const sb = nook.sandboxes;
  on(app, 'listSandboxes', (c) => {
    const { label, state } = readQuery(c, routes.listSandboxes.query);
    return answer(c, { sandboxes: sb.list({ labels: label, ...(state ? { state } : {}) }) });
  });
  on(app, 'createSandbox', async (c) => {
    const req = await parseBody(c, routes.createSandbox.body);
    // From a snapshot, or from an image: the same request shape, two creators.
    return answer(c, req.snapshot ? await nook.snapshots.restore({ ...req, snapshot: req.snapshot }) : await sb.create(req));
  });
  on(app, 'getSandbox', (c) => answer(c, sb.get(ref(c))));
  on(app, 'destroySandbox', async (c) => answer(c, await sb.destroy(ref(c), readQuery(c, routes.destroySandbox.query))));
  on(app, 'recycleSandbox', async (c) => answer(c, await sb.recycle(ref(c))));
  on(app, 'stopSandbox', async (c) => answer(c, await sb.stopForCaller(ref(c), await parseBody(c, routes.stopSandbox.body))));
  on(app, 'resumeSandbox', async (c) => answer(c, await sb.resume(ref(c))));
}
