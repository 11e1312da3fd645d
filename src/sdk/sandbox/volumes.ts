import { routeRefs as routes } from '../../api/route-refs.js';
import type { Volume } from '../../api/schemas.js';
import type { Api } from '../routes.js';

/** Managed volumes mounted into a (running) sandbox. `sandbox.volumes`; the volumes themselves are `client.volumes`. */
export class SandboxVolumes {
  constructor(
    private readonly api: Api,
    private readonly ref: () => string,
  ) {}

  /** Mounts an unlocked volume at `guest` (single-attach); read-only unless rw. */
  mount(volume: string, guest: string, options: { rw?: boolean; host?: string } = {}): Promise<Volume> {
    return this.api.json(routes.mountVolume, { ref: this.ref() }, { body: { volume, guest, rw: options.rw ?? false, ...(options.host ? { host: options.host } : {}) } });
  }

  /** Refused (VolumeBusyError, naming them) while processes reach it; `force` kills them first. */
  unmount(guest: string, options: { force?: boolean } = {}): Promise<Volume> {
    return this.api.json(routes.unmountVolume, { ref: this.ref() }, { query: { guest, ...(options.force ? { force: 'true' } : {}) } });
  }

  async list(): Promise<Volume[]> {
    return (await this.api.json(routes.sandboxVolumes, { ref: this.ref() })).volumes;
  }
}
