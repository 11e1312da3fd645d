/** Snapshots: take, list (of a sandbox or all), delete; fork and commit from a sandbox's files. */
import type { Hono } from 'hono';
import { routes } from '../../api/routes.js';
import { parseBody } from '../http/body.js';
import { on, param, ref, type RouteDeps } from './deps.js';

export function register(app: Hono, { nook, answer }: RouteDeps): void {
  const snaps = nook.snapshots;
  on(app, 'createSnapshot', async (c) => answer(c, await snaps.create(ref(c), await parseBody(c, routes.createSnapshot.body))));
  on(app, 'listSandboxSnapshots', (c) => answer(c, { snapshots: snaps.listOf(ref(c)) }));
  on(app, 'deleteSnapshot', async (c) => answer(c, await snaps.remove(ref(c), param(c, 'name'))));
  on(app, 'listSnapshots', (c) => answer(c, { snapshots: snaps.list() }));
  on(app, 'fork', async (c) => answer(c, { sandboxes: await snaps.fork(ref(c), await parseBody(c, routes.fork.body)) }));
  on(app, 'commit', async (c) => answer(c, await snaps.commit(ref(c), await parseBody(c, routes.commit.body))));
}
