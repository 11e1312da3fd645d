/** Images: presets, builds, pulls, build specs and their progress events. */
import { z } from 'zod';
import { PRESETS } from '../constants.js';
import { AbsolutePath, ApiError, Env, ImageName, LIMITS, PullPolicy } from './common.js';

export const Preset = z.enum(PRESETS);
export type Preset = z.infer<typeof Preset>;

export const Image = z.object({
  /** The audit receipt of the call that returned this (mutating calls only). */
  receipt: z.string().optional(),
  id: z.string(),
  name: z.string(),
  preset: z.string().nullable(),
  state: z.enum(['building', 'ready']),
  sizeBytes: z.number().int(),
  createdAt: z.string(),
  usedBy: z.array(z.string()),
  /** Where it came from: `preset:python`, a registry reference, `import`, `commit:SANDBOX`, `build:DIR`. */
  source: z.string(),
  /** The manifest digest, for images pulled or imported (null for local builds). */
  digest: z.string().nullable(),
  layers: z.array(z.object({ digest: z.string(), sizeBytes: z.number().int() })),
  /** The defaults a sandbox of this image gets. */
  config: z.object({
    env: z.record(z.string(), z.string()),
    cwd: z.string().nullable(),
    user: z.string().nullable(),
    entrypoint: z.array(z.string()),
    cmd: z.array(z.string()),
  }),
});
export type Image = z.infer<typeof Image>;

export const BuildImageRequest = z.strictObject({
  preset: Preset,
  name: ImageName.optional(),
  rebuild: z.boolean().optional(),
  stream: z.boolean().optional(),
});
export type BuildImageRequest = z.infer<typeof BuildImageRequest>;

export const RegistryAuth = z.strictObject({ username: z.string().min(1).max(256), password: z.string().max(4096) });
export const PullImageRequest = z.strictObject({
  /** `HOST[:PORT]/REPO[:TAG|@sha256:...]`; plain HTTP is used for loopback registries and NOOK_INSECURE_REGISTRIES. */
  reference: z.string().min(1).max(512),
  /** Local name (default: the repository's last part and tag, e.g. `python:3.12`). */
  name: ImageName.optional(),
  auth: RegistryAuth.optional(),
  /** Replace an existing image of that name. */
  replace: z.boolean().optional(),
  /**
   * Set by `create --pull`: `missing` answers the image already pulled from this reference
   * without asking the registry, `never` only that, `always` updates it; each picks a free
   * local name when the default one holds another image.
   */
  policy: PullPolicy.optional(),
  stream: z.boolean().optional(),
});
export type PullImageRequest = z.infer<typeof PullImageRequest>;

/**
 * A build spec (`nook.json` in a build context): the base image, then apt packages, files
 * copied from the context, and shell steps, each cached by content; then the defaults the
 * image gives its sandboxes.
 */
export const BuildSpec = z.strictObject({
  /** The image this builds. */
  name: ImageName,
  /** A template or preset (python, node, ...), a local image, or a registry reference. */
  base: z.string().min(1).max(512),
  /** Debian packages installed with apt-get (list the mirror in allowHosts). */
  packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]{0,127}$/, 'Debian package names')).max(256).optional(),
  /** Context paths (relative) copied in: a directory's contents into `to`, or one file to `to`. */
  copy: z.array(z.strictObject({ from: z.string().min(1).max(4096), to: AbsolutePath })).max(64).optional(),
  /** Shell steps (`/bin/sh -c`), run in order as root in the builder sandbox. */
  run: z.array(z.string().min(1).max(65_536)).max(256).optional(),
  env: Env.optional(),
  workdir: AbsolutePath.optional(),
  user: z.string().regex(/^[A-Za-z0-9._-]{1,64}(:[A-Za-z0-9._-]{1,64})?$/).optional(),
  /** The default command (`nook up` starts it as the process named main). */
  cmd: z.array(z.string().max(131_072)).min(1).max(4096).optional(),
  /** Egress the builder may use (host, *.suffix, IP, optional :port); none when absent. */
  allowHosts: z.array(z.string().min(1).max(260)).max(256).optional(),
  stepTimeoutMs: z.number().int().positive().max(LIMITS.maxExecTimeoutMs).optional(),
  memoryMiB: z.number().int().min(LIMITS.minMemoryMiB).max(LIMITS.maxMemoryMiB).optional(),
});
export type BuildSpec = z.infer<typeof BuildSpec>;

export const BuildStep = z.object({ index: z.number().int(), kind: z.enum(['packages', 'copy', 'run']), description: z.string(), cached: z.boolean(), durationMs: z.number() });
export const BuildResult = z.object({
  receipt: z.string().optional(),
  image: z.lazy(() => Image),
  /** True when the image already matched the spec and nothing ran. */
  upToDate: z.boolean(),
  steps: z.array(BuildStep),
  specDigest: z.string(),
  durationMs: z.number(),
});
export type BuildResult = z.infer<typeof BuildResult>;
export const BuildEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('progress'), phase: z.string(), percent: z.number(), message: z.string() }),
  z.object({ type: z.literal('log'), step: z.number().int(), stream: z.enum(['stdout', 'stderr']), text: z.string() }),
  z.object({ type: z.literal('done'), result: BuildResult }),
  z.object({ type: z.literal('error'), error: ApiError }),
]);
export type BuildEvent = z.infer<typeof BuildEvent>;

export const ProgressEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('progress'), phase: z.string(), percent: z.number(), message: z.string() }),
  z.object({ type: z.literal('done'), image: Image }),
  z.object({ type: z.literal('error'), error: ApiError }),
]);
export type ProgressEvent = z.infer<typeof ProgressEvent>;

export const ImageList = z.object({ images: z.array(Image) });
