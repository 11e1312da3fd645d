import { routeRefs as routes } from '../../api/route-refs.js';
import type { CreateSnapshotRequest, Snapshot } from '../../api/schemas.js';
import type { Api } from '../routes.js';

/** Named, read-only checkpoints of a sandbox's files. `sandbox.snapshots`. */
export class SandboxSnapshots {
  constructor(
    private readonly api: Api,
    private readonly ref: () => string,
  ) {}

  create(options: CreateSnapshotRequest): Promise<Snapshot> {
    return this.api.json(routes.createSnapshot, { ref: this.ref() }, { body: options });
  }

  async list(): Promise<Snapshot[]> {
    return (await this.api.json(routes.listSandboxSnapshots, { ref: this.ref() })).snapshots;
  }

  delete(name: string): Promise<Snapshot> {
    return this.api.json(routes.deleteSnapshot, { ref: this.ref(), name });
  }
}
