/** Profiles (draft and published versions) and host settings no profile can loosen. */
import type { Hono } from 'hono';
import { routes } from '../../api/routes.js';
import { parseBody } from '../http/body.js';
import { readParams } from '../http/input.js';
import { on, param, type RouteDeps } from './deps.js';
import type { HostConfig } from '../../api/schemas.js';
import { poolKeyImage } from '../../core/pool.js';

export function register(app: Hono, { nook, answer }: RouteDeps): void {
  const policy = nook.policy;
  on(app, 'listProfiles', (c) => answer(c, { profiles: policy.list() }));
  on(app, 'getProfile', (c) => answer(c, policy.get(param(c, 'name'))));
  on(app, 'publishProfile', (c) => answer(c, policy.publish(param(c, 'name'))));
  on(app, 'saveProfile', async (c) => {
    const { name } = readParams(c, routes.saveProfile.params);
    return answer(c, policy.saveDraft(name, await parseBody(c, routes.saveProfile.body)));
  });
  const config = (): HostConfig => ({ ...policy.config(), pools: nook.pool.sizes() });
  on(app, 'getConfig', (c) => answer(c, config()));
  on(app, 'setConfig', async (c) => {
    const req = await parseBody(c, routes.setConfig.body);
    const image = poolKeyImage(req.key);
    if (image !== null) await nook.pool.setSize(image, req.value);
    else policy.set(req.key, req.value);
    return answer(c, config());
  });
}
