import { routeRefs as routes } from '../../api/route-refs.js';
import type { Exposure, NetworkShow } from '../../api/schemas.js';
import type { Api } from '../routes.js';

/** Egress policy: changes apply to a running sandbox at once. `sandbox.network`. */
export class Network {
  constructor(
    private readonly api: Api,
    private readonly ref: () => string,
  ) {}

  /** Adds hosts to the allow-list. */
  allow(...hosts: string[]): Promise<NetworkShow> {
    return this.api.json(routes.allowHosts, { ref: this.ref() }, { body: { hosts } });
  }

  /** Removes hosts from the allow-list. */
  deny(...hosts: string[]): Promise<NetworkShow> {
    return this.api.json(routes.denyHosts, { ref: this.ref() }, { body: { hosts } });
  }

  /** Replaces the mode and/or the allow-list. */
  set(policy: { mode?: 'none' | 'allowlist' | 'learn'; allow?: string[] }): Promise<NetworkShow> {
    return this.api.json(routes.setNetwork, { ref: this.ref() }, { body: policy });
  }

  /** The policy and the most recent decisions (default 50). */
  show(options: { limit?: number } = {}): Promise<NetworkShow> {
    return this.api.json(routes.showNetwork, { ref: this.ref() }, { query: { limit: options.limit ? String(options.limit) : undefined } });
  }

  /** The allow-list that learn-mode runs needed. */
  async suggest(): Promise<string[]> {
    return (await this.api.json(routes.suggestNetwork, { ref: this.ref() })).allow;
  }
}

/** Ports exposed on the host's loopback behind a token. `sandbox.exposures`. */
export class Exposures {
  constructor(
    private readonly api: Api,
    private readonly ref: () => string,
  ) {}

  /** Exposes a port; answers with the URL that carries the token. */
  add(port: number, options: { hostPort?: number } = {}): Promise<Exposure> {
    return this.api.json(routes.expose, { ref: this.ref() }, { body: { port, ...options } });
  }

  async list(): Promise<Exposure[]> {
    return (await this.api.json(routes.listExposures, { ref: this.ref() })).exposures;
  }

  remove(port: number): Promise<Exposure> {
    return this.api.json(routes.unexpose, { ref: this.ref(), port });
  }
}
