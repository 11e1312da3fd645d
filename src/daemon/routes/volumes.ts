/** Managed (encrypted) volumes and their mounts into sandboxes, plus host directories. */
import type { Hono } from 'hono';
import { routes } from '../../api/routes.js';
import { parseBody } from '../http/body.js';
import { readQuery } from '../http/input.js';
import { on, param, ref, type RouteDeps } from './deps.js';

export function register(app: Hono, { nook, answer }: RouteDeps): void {
  const vols = nook.volumes;
  on(app, 'createVolume', async (c) => {
    const req = await parseBody(c, routes.createVolume.body);
    return answer(c, await vols.create(req.name, req.sizeMiB));
  });
  on(app, 'listVolumes', (c) => answer(c, { volumes: vols.list() }));
  on(app, 'getVolume', (c) => answer(c, vols.get(param(c, 'name'))));
  on(app, 'removeVolume', async (c) => answer(c, await vols.remove(param(c, 'name'))));
  on(app, 'unlockVolume', async (c) => answer(c, await vols.unlock(param(c, 'name'))));
  on(app, 'lockVolume', async (c) => answer(c, await vols.lock(param(c, 'name'), (await parseBody(c, routes.lockVolume.body)).force ?? false)));
  on(app, 'mountVolume', async (c) => {
    const req = await parseBody(c, routes.mountVolume.body);
    // A host directory is a different mount (bind, gated by the host setting), not a managed volume.
    if (req.host) return answer(c, await vols.mountHostDir(ref(c), req.volume, req.host, req.guest, req.rw ?? false, nook.policy.setting('rwHostDirs.allowed')));
    return answer(c, await vols.mount(ref(c), req.volume, req.guest, req.rw ?? false));
  });
  on(app, 'sandboxVolumes', (c) => answer(c, { volumes: vols.list(ref(c)) }));
  on(app, 'unmountVolume', async (c) => {
    const q = readQuery(c, routes.unmountVolume.query);
    return answer(c, await vols.unmount(ref(c), q.guest, q.force));
  });
}
