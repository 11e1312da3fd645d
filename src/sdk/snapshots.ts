import { routeRefs as routes } from '../api/route-refs.js';
import type { Snapshot } from '../api/schemas.js';
import type { Api } from './routes.js';

/** Snapshots across sandboxes, destroyed ones included. `client.snapshots`; one sandbox's are `sandbox.snapshots`. */
export class Snapshots {
  constructor(private readonly api: Api) {}

  /** Every snapshot, or those of one sandbox (also a destroyed one, by its name). */
  async list(sandbox?: string): Promise<Snapshot[]> {
    const r = sandbox === undefined ? await this.api.json(routes.listSnapshots, {}) : await this.api.json(routes.listSandboxSnapshots, { ref: sandbox });
    return r.snapshots;
  }

  delete(sandbox: string, name: string): Promise<Snapshot> {
    return this.api.json(routes.deleteSnapshot, { ref: sandbox, name });
  }
}
