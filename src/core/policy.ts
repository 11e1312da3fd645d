import { NookError } from '../api/errors.js';
import { HOST_SETTINGS, ProfileSpec, type CreateSandboxRequest, type HostConfig, type Profile } from '../api/schemas.js';
import type { Db } from '../store/db.js';
import { oneOf } from '../api/constants.js';

type Setting = (typeof HOST_SETTINGS)[number];

interface ProfileRow {
  name: string;
  version: number;
  state: 'draft' | 'published';
  spec_json: string;
  updated_at: number;
}

/** What admission decided: the request with profile defaults and host limits applied. */
export interface Admission {
  request: CreateSandboxRequest;
  profile: string | null;
  adjusted: string[];
  /** The admitting profile allows writable host directories. */
  allowRwDirs: boolean;
}

/**
 * Profiles (named sandbox defaults: a draft, and immutable published versions) and host
 * settings that no profile or request can loosen. Persistence refused at host level makes
 * a sandbox non-persistent and says so (Mistle's rule); so does network.
 */
export class PolicyManager {
  constructor(private readonly db: Db) {}

  // ---- host settings ------------------------------------------------------------------

  setting(key: Setting): boolean {
    const row = this.db.prepare('SELECT value_json FROM host_config WHERE key = ?').get(key) as { value_json: string } | undefined;
    // Everything is allowed until the host says otherwise, except writable host directories.
    return row ? (JSON.parse(row.value_json) as boolean) : key !== 'rwHostDirs.allowed';
  }

  config(): HostConfig {
    return { settings: Object.fromEntries(HOST_SETTINGS.map((k) => [k, this.setting(k)])) };
  }

  /** Sets a host setting; an unknown key or a value that is not true/false is refused with the keys there are. */
  set(key: string, value: unknown): HostConfig {
    if (!oneOf(HOST_SETTINGS, key)) {
      throw new NookError('INVALID_ARGUMENT', `unknown setting ${JSON.stringify(key)}`, {
        hint: `settings: ${HOST_SETTINGS.join(', ')} (true or false), and pool.IMAGE (a warm pool's size, e.g. pool.python 4)`,
      });
    }
    if (typeof value !== 'boolean') throw new NookError('INVALID_ARGUMENT', `${key} takes true or false, not ${JSON.stringify(value)}`, { hint: `e.g. nook config set ${key} false` });
    this.db.prepare('INSERT INTO host_config (key, value_json) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json').run(key, JSON.stringify(value));
    return this.config();
  }

  // ---- profiles ---------------------------------------------------------------------------

  private rows(name: string): ProfileRow[] {
    return this.db.prepare('SELECT * FROM profiles WHERE name = ? ORDER BY version').all(name) as ProfileRow[];
  }

  private toProfile(name: string): Profile {
    const rows = this.rows(name);
    if (rows.length === 0) throw new NookError('NOT_FOUND', `no profile named ${name}`, { hint: 'list them: nook profile ls' });
    const draft = rows.find((r) => r.state === 'draft');
    return {
      name,
      draft: draft ? ProfileSpec.parse(JSON.parse(draft.spec_json)) : null,
      published: rows.filter((r) => r.state === 'published').map((r) => ({ version: r.version, spec: ProfileSpec.parse(JSON.parse(r.spec_json)), publishedAt: new Date(r.updated_at).toISOString() })),
    };
  }

  get(name: string): Profile {
    return this.toProfile(name);
  }

  list(): Profile[] {
    return (this.db.prepare('SELECT DISTINCT name FROM profiles ORDER BY name').all() as { name: string }[]).map((r) => this.toProfile(r.name));
  }

  /** Creates or replaces the draft (version 0) of a profile. */
  saveDraft(name: string, spec: ProfileSpec): Profile {
    this.db
      .prepare("INSERT INTO profiles (name, version, state, spec_json, updated_at) VALUES (?, 0, 'draft', ?, ?) ON CONFLICT(name, version) DO UPDATE SET spec_json = excluded.spec_json, updated_at = excluded.updated_at")
      .run(name, JSON.stringify(spec), Date.now());
    return this.toProfile(name);
  }

  /** The draft becomes the next published version; published versions never change. */
  publish(name: string): Profile {
    const rows = this.rows(name);
    const draft = rows.find((r) => r.state === 'draft');
    if (!draft) throw new NookError('INVALID_STATE', `profile ${name} has no draft to publish`, { hint: `edit it first: nook profile create ${name} ...` });
    const next = Math.max(0, ...rows.map((r) => r.version)) + 1;
    this.db.transaction(() => {
      this.db.prepare("INSERT INTO profiles (name, version, state, spec_json, updated_at) VALUES (?, ?, 'published', ?, ?)").run(name, next, draft.spec_json, Date.now());
      this.db.prepare("DELETE FROM profiles WHERE name = ? AND state = 'draft'").run(name);
    })();
    return this.toProfile(name);
  }

  /** The request with the profile's newest published version under it and host limits over it. */
  admit(req: CreateSandboxRequest): Admission {
    let request = { ...req };
    let profile: string | null = null;
    let allowRwDirs = false;
    if (req.profile) {
      const p = this.toProfile(req.profile);
      const latest = p.published.at(-1);
      if (!latest) throw new NookError('INVALID_STATE', `profile ${req.profile} has no published version`, { hint: `publish it: nook profile publish ${req.profile}` });
      const { allowRwDirs: _rw, ...defaults } = latest.spec;
      request = { ...defaults, ...stripUndefined(req) };
      profile = `${req.profile}@${latest.version}`;
      allowRwDirs = latest.spec.allowRwDirs ?? false;
    }
    const adjusted: string[] = [];
    if (request.persistent !== false && !this.setting('persistence.allowed')) {
      request.persistent = false;
      adjusted.push('created non-persistent: persistence.allowed is false on this host');
    }
    if ((request.network && request.network !== 'none') || (request.allowHosts?.length ?? 0) > 0) {
      if (!this.setting('network.allowed')) {
        delete request.allowHosts;
        request.network = 'none';
        adjusted.push('created without network: network.allowed is false on this host');
      }
    }
    return { request, profile, adjusted, allowRwDirs };
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
