import { InvalidArgumentError } from 'commander';
import { parseDurationMs } from '../util/duration.js';
import { oneOf, PULL_POLICIES, RUNTIME_NAMES } from '../api/constants.js';
import type { PullPolicy, RuntimeName } from '../api/schemas.js';

export function durationMs(value: string): number {
  const ms = parseDurationMs(value);
  if (ms === null || ms <= 0) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a duration: use e.g. 30s, 10m, 1h, 7d or seconds`);
  return ms;
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a whole number`);
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a positive number`);
  return n;
}

/** Collects repeatable KEY=VALUE options into a record. */
export function keyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`${JSON.stringify(value)} must be KEY=VALUE`);
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) };
}

/** `--pull missing|always|never`: when a registry reference is pulled. */
export function pullPolicy(v: string): PullPolicy {
  if (!oneOf(PULL_POLICIES, v)) throw new InvalidArgumentError(`--pull takes ${PULL_POLICIES.join(', ')}`);
  return v;
}

/** `--runtime crun|gvisor`. */
export function runtimeName(v: string): RuntimeName {
  if (!oneOf(RUNTIME_NAMES, v)) throw new InvalidArgumentError(`--runtime takes ${RUNTIME_NAMES.join(', ')}`);
  return v;
}

/** What the progress bar says while an image is made ready. */
export function imageWork(image: string): string {
  return image.includes('/') ? `pulling image ${image}` : `building image ${image}`;
}
