/**
 * Plain values the wire schemas are built from, in a module without zod: the CLI reads them
 * at start-up (option parsing, presets) without paying for building every schema.
 */
export const MiB = 1024 * 1024;

export const LIMITS = {
  maxTtlMs: 365 * 24 * 3600 * 1000,
  maxExecTimeoutMs: 24 * 3600 * 1000,
  maxOutputBytes: 64 * MiB,
  maxStdinBytes: 16 * MiB,
  maxMemoryMiB: 256 * 1024,
  minMemoryMiB: 16,
  maxCpus: 256,
  maxPids: 1_000_000,
  minPids: 8,
  maxLabels: 64,
  maxEnv: 256,
  minDiskMiB: 16,
  maxDiskMiB: 1024 * 1024 * 1024,
} as const;

/** Image names may carry a tag, as in the container world: `python`, `python:3.12`. */
export const IMAGE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/;
/** When a registry reference is pulled (see PullPolicy in schemas/common.ts). */
export const PULL_POLICIES = ['missing', 'always', 'never'] as const;
/** The images nook can build itself; the templates carry the same names. */
export const PRESETS = ['minimal', 'python', 'node', 'browser', 'base', 'desktop'] as const;
export const RUNTIME_NAMES = ['crun', 'gvisor'] as const;
export const HOST_SETTINGS = ['persistence.allowed', 'network.allowed', 'hostDirs.allowed', 'rwHostDirs.allowed'] as const;

/** True when `value` is one of `list` (narrows it). */
export function oneOf<T extends string>(list: readonly T[], value: string): value is T {
  return (list as readonly string[]).includes(value);
}
