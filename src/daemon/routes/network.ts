/** Egress policy (mode, allow-list, learned suggestions) and ports exposed on the host loopback. */
import type { Hono } from 'hono';
import { routes } from '../../api/routes.js';
import { parseBody } from '../http/body.js';
import { readParams, readQuery } from '../http/input.js';
import { on, ref, type RouteDeps } from './deps.js';

export function register(app: Hono, { nook, answer }: RouteDeps): void {
  const net = nook.network;
  on(app, 'showNetwork', (c) => answer(c, net.show(ref(c), readQuery(c, routes.showNetwork.query).limit)));
  on(app, 'setNetwork', async (c) => answer(c, await net.set(ref(c), await parseBody(c, routes.setNetwork.body))));
  on(app, 'allowHosts', async (c) => answer(c, await net.allow(ref(c), (await parseBody(c, routes.allowHosts.body)).hosts)));
  on(app, 'denyHosts', async (c) => answer(c, await net.deny(ref(c), (await parseBody(c, routes.denyHosts.body)).hosts)));
  on(app, 'suggestNetwork', (c) => answer(c, { allow: net.suggestFor(ref(c)) }));
  on(app, 'expose', async (c) => {
    const req = await parseBody(c, routes.expose.body);
    return answer(c, await net.expose(ref(c), req.port, req.hostPort));
  });
  on(app, 'listExposures', (c) => answer(c, { exposures: net.exposures(ref(c)) }));
  on(app, 'unexpose', async (c) => answer(c, await net.unexpose(ref(c), readParams(c, routes.unexpose.params).port)));
}
