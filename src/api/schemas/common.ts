/** Names, limits, defaults and the small shapes every resource uses. */
import { z } from 'zod';
import { IMAGE_NAME_PATTERN, LIMITS, MiB, PULL_POLICIES } from '../constants.js';

export { IMAGE_NAME_PATTERN, LIMITS, MiB } from '../constants.js';

export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const NAME_RULE = 'lower-case letters, digits and dashes, starting with a letter or digit, at most 63 characters';

export const DEFAULTS = {
  image: 'python',
  memoryMiB: 1024,
  cpus: 1,
  pids: 1024,
  execTimeoutMs: 30_000,
  maxOutputBytes: 1 * MiB,
  stopGraceMs: 2_000,
  cwd: '/work',
  /** Disk limit of a sandbox when none is asked for (NOOK_DEFAULT_DISK_MIB; at most half the pool). */
  diskMiB: 10 * 1024,
} as const;


export const Name = z.string().regex(NAME_PATTERN, `must be ${NAME_RULE}`);
export const IMAGE_NAME_RULE = 'lower-case letters, digits, dots, underscores and dashes (at most 63), optionally followed by :TAG';
export const ImageName = z.string().regex(IMAGE_NAME_PATTERN, `must be ${IMAGE_NAME_RULE}`);
/** Where a sandbox starts from: a local image name, or a registry reference (it has a `/`), as in `docker run`. */
export const ImageRef = z
  .string()
  .max(512)
  .refine((v) => IMAGE_NAME_PATTERN.test(v) || v.includes('/'), `must be a local image name (${IMAGE_NAME_RULE}) or a registry reference HOST[:PORT]/REPO[:TAG]`);
/**
 * When a registry reference is pulled: `missing` (default) uses the image already pulled from it,
 * `always` asks the registry each time, `never` only uses what is here.
 */
export const PullPolicy = z.enum(PULL_POLICIES);
export type PullPolicy = z.infer<typeof PullPolicy>;
export const Labels = z
  .record(z.string().regex(/^[A-Za-z0-9._/-]{1,63}$/, 'label keys are letters, digits, . _ / -'), z.string().max(256))
  .refine((l) => Object.keys(l).length <= LIMITS.maxLabels, `at most ${LIMITS.maxLabels} labels`);
export const Env = z
  .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'env names are letters, digits and _'), z.string().max(32_768))
  .refine((e) => Object.keys(e).length <= LIMITS.maxEnv, `at most ${LIMITS.maxEnv} variables`);
export const AbsolutePath = z.string().startsWith('/', 'must be an absolute path').max(4096).refine((p) => !p.includes('\0'), 'must not contain NUL');

export const SandboxState = z.enum(['creating', 'running', 'stopping', 'paused', 'snapshotting', 'destroying']);
export type SandboxState = z.infer<typeof SandboxState>;

/** GET /v1/openapi.json: an OpenAPI 3.1 document (its shape is OpenAPI's, not ours). */
export const OpenApiDocument = z.record(z.string(), z.unknown());

export const ApiError = z.object({
  code: z.string(),
  message: z.string(),
  hint: z.string().optional(),
  context: z.record(z.string(), z.unknown()).optional(),
});
