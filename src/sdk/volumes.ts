import { routeRefs as routes } from '../api/route-refs.js';
import type { Volume } from '../api/schemas.js';
import type { Api } from './routes.js';

/** Managed volumes: sparse ext4, encrypted with fscrypt, created locked. `client.volumes`; mounts are `sandbox.volumes`. */
export class Volumes {
  constructor(private readonly api: Api) {}

  create(name: string, options: { sizeMiB: number }): Promise<Volume> {
    return this.api.json(routes.createVolume, {}, { body: { name, sizeMiB: options.sizeMiB } });
  }

  async list(): Promise<Volume[]> {
    return (await this.api.json(routes.listVolumes, {})).volumes;
  }

  /** Throws VolumeNotFoundError when there is none of that name. */
  get(name: string): Promise<Volume> {
    return this.api.json(routes.getVolume, { name });
  }

  /** The key goes into the kernel: plaintext becomes reachable. */
  unlock(name: string): Promise<Volume> {
    return this.api.json(routes.unlockVolume, { name });
  }

  /** The key leaves the kernel and the volume is unmounted: only ciphertext remains. */
  lock(name: string, options: { force?: boolean } = {}): Promise<Volume> {
    return this.api.json(routes.lockVolume, { name }, { body: options });
  }

  remove(name: string): Promise<Volume> {
    return this.api.json(routes.removeVolume, { name });
  }
}
