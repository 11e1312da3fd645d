/** What a create request becomes before anything starts: its checked name and its spec. */
import { NookError } from '../api/errors.js';
import { DEFAULTS, NAME_PATTERN, NAME_RULE, type CreateSandboxRequest } from '../api/schemas.js';
import type { RuntimeKind } from '../runtime/driver.js';
import type { Admission } from './policy.js';
import type { RestoreSource, SandboxSpec } from './sandbox-model.js';
import { normaliseAllow } from './network.js';

/** Refuses a malformed name, or one another sandbox has (`taken` looks it up). */
export function checkName(name: string | undefined, taken: (name: string) => boolean): void {
  if (name === undefined) return;
  if (!NAME_PATTERN.test(name)) {
    throw new NookError('INVALID_NAME', `invalid sandbox name ${JSON.stringify(name)}: use ${NAME_RULE}`, { context: { name } });
  }
  if (taken(name)) {
    throw new NookError('NAME_TAKEN', `a sandbox named ${name} already exists`, { hint: `choose another name, or remove it: nook destroy ${name}` });
  }
}

/** The stored spec of a new sandbox: the admitted request with defaults filled in. */
export function specFor(req: CreateSandboxRequest, admission: Pick<Admission, 'profile' | 'adjusted'>, opts: {
  diskMiB: number | null; cwd: string | undefined; runtime: RuntimeKind; from?: RestoreSource;
}): SandboxSpec {
  const { from } = opts;
  return {
    limits: { memoryMiB: req.memoryMiB ?? DEFAULTS.memoryMiB, cpus: req.cpus ?? DEFAULTS.cpus, pids: req.pids ?? DEFAULTS.pids, diskMiB: opts.diskMiB },
    labels: req.labels ?? {},
    env: req.env ?? {},
    cwd: req.cwd ?? opts.cwd ?? DEFAULTS.cwd,
    persist: from ? from.persist : (req.persist ?? []),
    origin: from ? from.origin : null,
    network: {
      mode: req.network ?? (req.allowHosts ? 'allowlist' : 'none'),
      allow: normaliseAllow(req.allowHosts ?? []),
    },
    profile: admission.profile,
    adjusted: admission.adjusted,
    ...(req.volumes ? { volumes: req.volumes } : {}),
    ...(req.attach ? { attach: req.attach } : {}),
    runtime: opts.runtime,
  };
}

/** Named phase durations for the `sandbox created` log line (ms, one decimal). */
export function phaseTimer(): { phases: Record<string, number>; phase: (what: string) => void } {
  const phases: Record<string, number> = {};
  let mark = performance.now();
  return {
    phases,
    phase: (what) => {
      const now = performance.now();
      phases[what] = Math.round((now - mark) * 10) / 10;
      mark = now;
    },
  };
}
