import { routeRefs as routes } from '../api/route-refs.js';
import type { Profile, ProfileSpec } from '../api/schemas.js';
import type { Api } from './routes.js';

/** Profiles: drafts and published versions of what sandboxes may do. `client.profiles`. */
export class Profiles {
  constructor(private readonly api: Api) {}

  async list(): Promise<Profile[]> {
    return (await this.api.json(routes.listProfiles, {})).profiles;
  }

  get(name: string): Promise<Profile> {
    return this.api.json(routes.getProfile, { name });
  }

  /** Creates or replaces the draft. */
  save(name: string, spec: ProfileSpec): Promise<Profile> {
    return this.api.json(routes.saveProfile, { name }, { body: spec });
  }

  /** The draft becomes the next published version. */
  publish(name: string): Promise<Profile> {
    return this.api.json(routes.publishProfile, { name });
  }
}
