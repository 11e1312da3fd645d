/**
 * Wire schemas: the single source for request validation in the daemon, the SDK's types
 * and the OpenAPI document (see openapi.ts). Units are in the names (timeoutMs, memoryMiB).
 */
import { z } from 'zod';

export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const NAME_RULE = 'lower-case letters, digits and dashes, starting with a letter or digit, at most 63 characters';

export const MiB = 1024 * 1024;
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

export const Name = z.string().regex(NAME_PATTERN, `must be ${NAME_RULE}`);
/** Image names may carry a tag, as in the container world: `python`, `python:3.12`. */
export const IMAGE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/;
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
export const PullPolicy = z.enum(['missing', 'always', 'never']);
export type PullPolicy = z.infer<typeof PullPolicy>;
export const Labels = z
  .record(z.string().regex(/^[A-Za-z0-9._/-]{1,63}$/, 'label keys are letters, digits, . _ / -'), z.string().max(256))
  .refine((l) => Object.keys(l).length <= LIMITS.maxLabels, `at most ${LIMITS.maxLabels} labels`);
export const Env = z
  .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'env names are letters, digits and _'), z.string().max(32_768))
  .refine((e) => Object.keys(e).length <= LIMITS.maxEnv, `at most ${LIMITS.maxEnv} variables`);
const AbsolutePath = z.string().startsWith('/', 'must be an absolute path').max(4096).refine((p) => !p.includes('\0'), 'must not contain NUL');

export const SandboxState = z.enum(['creating', 'running', 'stopping', 'paused', 'snapshotting', 'destroying']);
export type SandboxState = z.infer<typeof SandboxState>;

export const Limits = z.object({
  memoryMiB: z.number().int().min(LIMITS.minMemoryMiB).max(LIMITS.maxMemoryMiB),
  cpus: z.number().positive().max(LIMITS.maxCpus),
  pids: z.number().int().min(LIMITS.minPids).max(LIMITS.maxPids),
  /** What the sandbox may write, all its files together; null = not enforced (dir storage, or made before limits). */
  diskMiB: z.number().int().min(LIMITS.minDiskMiB).max(LIMITS.maxDiskMiB).nullable().optional(),
});
export type Limits = z.infer<typeof Limits>;

export const Sandbox = z.object({
  /** The audit receipt of the call that returned this (mutating calls only). */
  receipt: z.string().optional(),
  id: z.string(),
  name: z.string(),
  state: SandboxState,
  image: z.string(),
  persistent: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
  expiresAt: z.string().nullable(),
  ttlMs: z.number().int().nullable(),
  limits: Limits,
  labels: z.record(z.string(), z.string()),
  envKeys: z.array(z.string()),
  cwd: z.string(),
  network: z.object({ mode: z.enum(['none', 'allowlist', 'learn']), allow: z.array(z.string()) }),
  /** The sandbox's isolation: crun (namespaces) or gvisor (a user-space kernel). */
  runtime: z.string(),
  storage: z.string(),
  /** Saved process memory a paused (cold-stopped) sandbox holds: resume continues its processes. */
  memory: z.object({ sizeBytes: z.number().int() }).nullable().optional(),
  /** Paths that survive compute replacement; empty = the whole rootfs persists. */
  persist: z.array(z.string()),
  /** The snapshot or sandbox this one was restored or forked from. */
  origin: z.string().nullable(),
  /** The profile version that admitted it, if any. */
  profile: z.string().nullable(),
  /** Where host policy changed the request (e.g. persistence not allowed on this host). */
  adjusted: z.array(z.string()),
});
export type Sandbox = z.infer<typeof Sandbox>;

export const TemplateName = z.enum(['minimal', 'python', 'node', 'browser']);
export const Template = z.object({
  name: TemplateName,
  image: z.string(),
  description: z.string(),
  memoryMiB: z.number().int(),
  pids: z.number().int(),
  env: z.record(z.string(), z.string()),
});
export type Template = z.infer<typeof Template>;
export const TemplateList = z.object({ templates: z.array(Template) });

export const RuntimeName = z.enum(['crun', 'gvisor']);
export type RuntimeName = z.infer<typeof RuntimeName>;
export const CreateSandboxRequest = z.strictObject({
  name: Name.optional(),
  image: ImageRef.optional(),
  pull: PullPolicy.optional(),
  /** A named template (minimal, python, node, browser): its image and defaults, under this request's own values. */
  template: TemplateName.optional(),
  ttlMs: z.number().int().positive().max(LIMITS.maxTtlMs).optional(),
  persistent: z.boolean().optional(),
  memoryMiB: Limits.shape.memoryMiB.optional(),
  cpus: Limits.shape.cpus.optional(),
  pids: Limits.shape.pids.optional(),
  diskMiB: Limits.shape.diskMiB.unwrap().unwrap().optional(),
  labels: Labels.optional(),
  env: Env.optional(),
  cwd: AbsolutePath.optional(),
  /** crun (default; NOOK_DEFAULT_RUNTIME changes it) or gvisor: a user-space kernel between the sandbox and the host. */
  runtime: RuntimeName.optional(),
  /** Restore: `SANDBOX@SNAPSHOT` or a snapshot id. The image and persisted paths come from the snapshot. */
  snapshot: z.string().min(1).max(200).optional(),
  /** Defaults and policy from a published profile (the newest version). */
  profile: Name.optional(),
  /** none (default: loopback only), allowlist (egress proxy to allowHosts), learn (allow and record all). */
  network: z.enum(['none', 'allowlist', 'learn']).optional(),
  /** Egress allow-list: host, *.suffix, IP or CIDR, optional :port (else 80 and 443). */
  allowHosts: z.array(z.string().min(1).max(260)).max(256).optional(),
  /** Managed volumes mounted each time compute starts (they must be unlocked). */
  volumes: z
    .array(z.strictObject({ volume: Name, guest: z.string().startsWith('/').max(4096), rw: z.boolean().optional() }))
    .max(16)
    .optional(),
  /**
   * Other things to mount at every start: a raw ext4 disk you own (.ext4/.img), a tar
   * bundle built into a one-shot read-only disk (.tar/.tar.gz/.tgz), or a host directory
   * (read-only unless rw, which needs a profile with allowRwDirs and the host's consent).
   */
  attach: z
    .array(z.strictObject({ kind: z.enum(['disk', 'bundle', 'dir']), source: z.string().startsWith('/').max(4096), guest: z.string().startsWith('/').max(4096), rw: z.boolean().optional() }))
    .max(16)
    .optional(),
  /** Only these directories survive stop, recycle and compute replacement (Mistle's selected paths). */
  persist: z
    .array(AbsolutePath.refine((p) => p !== '/' && !p.split('/').includes('..'), 'must be a directory below / without ..'))
    .max(16)
    .refine((l) => new Set(l).size === l.length, 'persisted paths must be distinct')
    .optional(),
});
export type CreateSandboxRequest = z.infer<typeof CreateSandboxRequest>;

const execFields = {
  argv: z.array(z.string().max(131_072)).min(1, 'give the command to run').max(4096),
  timeoutMs: z.number().int().positive().max(LIMITS.maxExecTimeoutMs).optional(),
  maxOutputBytes: z.number().int().min(0).max(LIMITS.maxOutputBytes).optional(),
  env: Env.optional(),
  cwd: AbsolutePath.optional(),
  user: z.string().regex(/^[A-Za-z0-9._-]{1,64}(:[A-Za-z0-9._-]{1,64})?$/, 'user is NAME, UID, NAME:GROUP or UID:GID').optional(),
  /** base64; bounded so a request can never make the daemon buffer unbounded input. */
  stdin: z.string().max(Math.ceil((LIMITS.maxStdinBytes * 4) / 3) + 4).optional(),
  stream: z.boolean().optional(),
  /** Replace env values and credential patterns in the output (see redactions in the result). */
  redact: z.boolean().optional(),
  /** Files to collect when the command ends (declared outputs; each bounded to 16 MiB). */
  outputs: z.array(z.string().startsWith('/').max(4096)).max(32).optional(),
};

export const ExecRequest = z.strictObject(execFields);
export type ExecRequest = z.infer<typeof ExecRequest>;

export const ExecResult = z.object({
  /** The audit receipt of the call that returned this (mutating calls only). */
  receipt: z.string().optional(),
  exitCode: z.number().int(),
  signal: z.string().nullable(),
  stdout: z.string(),
  stderr: z.string(),
  truncated: z.boolean(),
  timedOut: z.boolean(),
  durationMs: z.number(),
  /** With redact: how many values were replaced. */
  redactions: z.number().int().optional(),
  /** Declared outputs: base64 data, or why it could not be collected. */
  outputs: z.array(z.object({ path: z.string(), bytes: z.number().int(), data: z.string().optional(), error: z.string().optional() })).optional(),
});
export type ExecResult = z.infer<typeof ExecResult>;

/** GET /v1/openapi.json: an OpenAPI 3.1 document (its shape is OpenAPI's, not ours). */
export const OpenApiDocument = z.record(z.string(), z.unknown());

export const ApiError = z.object({
  code: z.string(),
  message: z.string(),
  hint: z.string().optional(),
  context: z.record(z.string(), z.unknown()).optional(),
});

/** One line of an `application/x-ndjson` exec or run stream. `data` is base64. */
export const ExecEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('stdout'), data: z.string() }),
  z.object({ type: z.literal('stderr'), data: z.string() }),
  z.object({ type: z.literal('sandbox'), sandbox: Sandbox }),
  z.object({ type: z.literal('result'), result: ExecResult }),
  z.object({ type: z.literal('error'), error: ApiError }),
]);
export type ExecEvent = z.infer<typeof ExecEvent>;

export const RunRequest = z.strictObject({
  ...execFields,
  image: ImageRef.optional(),
  pull: PullPolicy.optional(),
  memoryMiB: Limits.shape.memoryMiB.optional(),
  cpus: Limits.shape.cpus.optional(),
  pids: Limits.shape.pids.optional(),
  labels: Labels.optional(),
});
export type RunRequest = z.infer<typeof RunRequest>;

export const Preset = z.enum(['minimal', 'python', 'node', 'browser']);
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

export const DestroyResult = z.object({
  receipt: z.string().optional(),
  id: z.string(),
  name: z.string(),
  destroyed: z.literal(true),
  /** Snapshots outlive their sandbox until deleted (or destroy with withSnapshots). */
  snapshotsKept: z.array(z.string()),
  snapshotsDeleted: z.array(z.string()),
});
export type DestroyResult = z.infer<typeof DestroyResult>;

export const Health = z.object({
  ok: z.boolean(),
  version: z.string(),
  pid: z.number().int(),
  stateDir: z.string(),
  runtime: z.object({ name: z.string(), version: z.string() }),
  storage: z.object({ driver: z.string(), constantTimeSnapshots: z.boolean() }),
  sandboxes: z.number().int(),
});
export type Health = z.infer<typeof Health>;

export const StopRequest = z.strictObject({
  /** Cold stop: keep process memory too (gVisor); resume continues the processes. */
  memory: z.boolean().optional(),
});
export type StopRequest = z.infer<typeof StopRequest>;

export const ShutdownRequest = z.strictObject({
  /** Stop every sandbox's compute and unmount the pool before exiting (files are kept). */
  release: z.boolean().optional(),
});
export type ShutdownRequest = z.infer<typeof ShutdownRequest>;

export const SandboxList = z.object({ sandboxes: z.array(Sandbox) });
export const ImageList = z.object({ images: z.array(Image) });

export const SNAPSHOT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,127}$/;
export const SnapshotName = z
  .string()
  .regex(SNAPSHOT_NAME_PATTERN, 'snapshot names are 1-128 letters, digits, spaces and . _ : -, starting with a letter or digit')
  .refine((n) => !n.endsWith(' '), 'snapshot names must not end with a space');

export const Snapshot = z.object({
  /** The audit receipt of the call that returned this (mutating calls only). */
  receipt: z.string().optional(),
  id: z.string(),
  name: z.string(),
  sandbox: z.string(),
  sandboxId: z.string(),
  /** False once the sandbox was destroyed: the snapshot still restores. */
  sandboxExists: z.boolean(),
  image: z.string(),
  persist: z.array(z.string()),
  createdAt: z.string(),
  /** Filled in shortly after the snapshot is taken (measuring walks the files). */
  sizeBytes: z.number().int().nullable(),
  durationMs: z.number(),
  /** Process memory saved with the files (snapshot --memory): a restore continues its processes. */
  memoryBytes: z.number().int().nullable().optional(),
});
export type Snapshot = z.infer<typeof Snapshot>;

export const CreateSnapshotRequest = z.strictObject({
  name: SnapshotName,
  /** Also save process memory ("cold mode"); NOT_SUPPORTED by the crun driver. */
  memory: z.boolean().optional(),
});
export type CreateSnapshotRequest = z.infer<typeof CreateSnapshotRequest>;

export const SnapshotList = z.object({ snapshots: z.array(Snapshot) });

export const ForkRequest = z.strictObject({
  name: Name.optional(),
  count: z.number().int().min(1).max(64).optional(),
  /** Copy process memory too (default on gVisor when the source runs): every fork continues from the same instant. */
  memory: z.boolean().optional(),
});
export type ForkRequest = z.infer<typeof ForkRequest>;

export const CommitRequest = z.strictObject({ image: ImageName });
export type CommitRequest = z.infer<typeof CommitRequest>;

export const NetworkMode = z.enum(['none', 'allowlist', 'learn']);
export const NetworkPolicy = z.object({ mode: NetworkMode, allow: z.array(z.string()) });
export type NetworkPolicy = z.infer<typeof NetworkPolicy>;

export const NetworkDecision = z.object({
  at: z.string(),
  host: z.string(),
  port: z.number().int(),
  method: z.string(),
  allowed: z.boolean(),
  reason: z.string(),
  bytesUp: z.number().int(),
  bytesDown: z.number().int(),
  durationMs: z.number(),
});
export type NetworkDecision = z.infer<typeof NetworkDecision>;

export const NetworkShow = z.object({ receipt: z.string().optional(), policy: NetworkPolicy, decisions: z.array(NetworkDecision) });
export type NetworkShow = z.infer<typeof NetworkShow>;

export const NetworkHosts = z.strictObject({ hosts: z.array(z.string().min(1).max(260)).min(1).max(256) });
export const NetworkSet = z.strictObject({ mode: NetworkMode.optional(), allow: z.array(z.string().min(1).max(260)).max(256).optional() });
export const NetworkSuggestion = z.object({ allow: z.array(z.string()) });

export const Exposure = z.object({
  /** The audit receipt of the call that returned this (mutating calls only). */
  receipt: z.string().optional(),
  port: z.number().int(),
  hostPort: z.number().int(),
  url: z.string(),
  token: z.string(),
  createdAt: z.string(),
  /** False while the sandbox is paused: the exposure comes back on resume. */
  active: z.boolean(),
});
export type Exposure = z.infer<typeof Exposure>;
export const ExposeRequest = z.strictObject({
  port: z.number().int().min(1).max(65535),
  /** Host loopback port to listen on; default: any free one. */
  hostPort: z.number().int().min(1024).max(65535).optional(),
});
export const ExposureList = z.object({ exposures: z.array(Exposure) });

export const ProcessState = z.enum(['running', 'exited', 'killed', 'lost']);
export const Process = z.object({
  /** The audit receipt of the call that returned this (mutating calls only). */
  receipt: z.string().optional(),
  id: z.string(),
  name: z.string().nullable(),
  sandbox: z.string(),
  argv: z.array(z.string()),
  state: ProcessState,
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  restart: z.enum(['never', 'on-resume']),
  /** How many times it was started (restarts on resume count). */
  runs: z.number().int(),
});
export type Process = z.infer<typeof Process>;

export const StartProcessRequest = z.strictObject({
  argv: execFields.argv,
  name: Name.optional(),
  env: Env.optional(),
  cwd: z.string().startsWith('/').max(4096).optional(),
  user: execFields.user,
  restart: z.enum(['never', 'on-resume']).optional(),
});
export type StartProcessRequest = z.infer<typeof StartProcessRequest>;

export const ProcessList = z.object({ processes: z.array(Process) });
export const KillRequest = z.strictObject({ signal: z.string().regex(/^(SIG)?[A-Z0-9]+$/).optional() });

/** One line of a logs stream (data is base64; `at` when it was written). */
export const LogEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('stdout'), data: z.string(), at: z.string() }),
  z.object({ type: z.literal('stderr'), data: z.string(), at: z.string() }),
  z.object({ type: z.literal('exit'), process: Process }),
  z.object({ type: z.literal('error'), error: ApiError }),
]);
export type LogEvent = z.infer<typeof LogEvent>;

export const NookEvent = z.object({
  at: z.string(),
  type: z.string(),
  sandbox: z.string().optional(),
  sandboxId: z.string().optional(),
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type NookEvent = z.infer<typeof NookEvent>;

/** Text messages of a PTY WebSocket (binary messages carry terminal bytes both ways). */
export const PtyClientMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('start'),
    cols: z.number().int().min(1).max(1000),
    rows: z.number().int().min(1).max(1000),
    argv: z.array(z.string()).min(1).optional(),
    env: Env.optional(),
    cwd: z.string().startsWith('/').optional(),
    user: execFields.user,
  }),
  z.object({ type: z.literal('resize'), cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }),
  z.object({ type: z.literal('kill') }),
]);
export type PtyClientMessage = z.infer<typeof PtyClientMessage>;
export const PtyServerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('exit'), exitCode: z.number().int(), signal: z.string().nullable() }),
  z.object({ type: z.literal('error'), error: ApiError }),
]);
export type PtyServerMessage = z.infer<typeof PtyServerMessage>;

export const AuditRecord = z.object({
  seq: z.number().int(),
  id: z.string(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  sandboxId: z.string().nullable(),
  sandbox: z.string().nullable(),
  inputs: z.record(z.string(), z.unknown()),
  /** started: the operation began and no outcome was written (the daemon died meanwhile). */
  outcome: z.enum(['started', 'ok', 'error']),
  result: z.record(z.string(), z.unknown()),
  errorCode: z.string().nullable(),
  prevHash: z.string(),
  hash: z.string(),
});
export type AuditRecord = z.infer<typeof AuditRecord>;
export const AuditList = z.object({ records: z.array(AuditRecord) });
export const AuditVerify = z.object({
  ok: z.boolean(),
  records: z.number().int(),
  firstBad: z.object({ seq: z.number().int(), id: z.string(), reason: z.string() }).optional(),
});
export type AuditVerify = z.infer<typeof AuditVerify>;

export const Usage = z.object({
  sandbox: z.string(),
  computeSeconds: z.number(),
  storedBytes: z.object({ files: z.number().int(), snapshots: z.number().int(), logs: z.number().int() }),
  /** Bytes counted against the disk limit and the limit (null where limits are not enforced). */
  disk: z.object({ usedBytes: z.number().int().nullable(), limitMiB: z.number().int().nullable() }),
});
export type Usage = z.infer<typeof Usage>;

/**
 * Kinds of retained state; `blobs` is the registry blob cache (it only speeds up later pulls).
 * Volumes and the audit log are listed too, but gc never takes them: a volume is user data
 * (nook volume rm) and the audit log is the evidence chain.
 */
export const RetainedKind = z.enum(['sandbox', 'snapshot', 'image', 'logs', 'blobs', 'volume', 'audit', 'memory']);
/** Memory images go with their sandbox or snapshot (destroy, snapshot rm), never by age alone. */
export const GcKind = RetainedKind.exclude(['volume', 'audit', 'memory']);
export const RetainedItem = z.object({
  kind: RetainedKind,
  name: z.string(),
  id: z.string(),
  sizeBytes: z.number().int().nullable(),
  ageSeconds: z.number(),
  detail: z.string(),
});
export type RetainedItem = z.infer<typeof RetainedItem>;
export const RetainedList = z.object({ items: z.array(RetainedItem) });

export const GcRequest = z.strictObject({
  olderThanMs: z.number().int().min(0),
  kinds: z.array(GcKind).min(1).optional(),
  dryRun: z.boolean().optional(),
});
export const GcResult = z.object({ receipt: z.string().optional(), dryRun: z.boolean(), deleted: z.array(RetainedItem) });

export const DoneReport = z.object({
  receipt: z.string().optional(),
  sandbox: z.string(),
  stopped: z.boolean(),
  unexposed: z.array(z.number().int()),
  volumesLocked: z.array(z.string()),
  unlockedVolumes: z.array(z.string()),
  snapshots: z.array(z.object({ name: z.string(), id: z.string(), createdAt: z.string() })),
  receipts: z.array(z.string()),
  remaining: z.array(RetainedItem),
  clean: z.boolean(),
});
export type DoneReport = z.infer<typeof DoneReport>;

export const ProfileSpec = z.strictObject({
  persistent: z.boolean().optional(),
  network: z.enum(['none', 'allowlist', 'learn']).optional(),
  allowHosts: z.array(z.string().min(1).max(260)).max(256).optional(),
  memoryMiB: Limits.shape.memoryMiB.optional(),
  cpus: Limits.shape.cpus.optional(),
  pids: Limits.shape.pids.optional(),
  diskMiB: Limits.shape.diskMiB.unwrap().unwrap().optional(),
  ttlMs: z.number().int().positive().max(LIMITS.maxTtlMs).optional(),
  image: ImageName.optional(),
  /** The isolation its sandboxes get unless the request says (crun or gvisor). */
  runtime: RuntimeName.optional(),
  allowRwDirs: z.boolean().optional(),
});
export type ProfileSpec = z.infer<typeof ProfileSpec>;
export const Profile = z.object({
  receipt: z.string().optional(),
  name: z.string(),
  draft: ProfileSpec.nullable(),
  published: z.array(z.object({ version: z.number().int(), spec: ProfileSpec, publishedAt: z.string() })),
});
export type Profile = z.infer<typeof Profile>;
export const ProfileList = z.object({ profiles: z.array(Profile) });

export const HOST_SETTINGS = ['persistence.allowed', 'network.allowed', 'hostDirs.allowed', 'rwHostDirs.allowed'] as const;
export const HostSetting = z.enum(HOST_SETTINGS);
export const HostConfig = z.object({ receipt: z.string().optional(), settings: z.record(z.string(), z.boolean()) });
export type HostConfig = z.infer<typeof HostConfig>;
export const SetConfigRequest = z.strictObject({ key: HostSetting, value: z.boolean() });

export const FileInfo = z.object({
  name: z.string(),
  path: z.string().optional(),
  type: z.enum(['file', 'dir', 'symlink', 'other']),
  mode: z.number().int(),
  uid: z.number().int(),
  gid: z.number().int(),
  size: z.number().int(),
  mtimeMs: z.number(),
  target: z.string().optional(),
});
export type FileInfo = z.infer<typeof FileInfo>;
export const FileList = z.object({ files: z.array(FileInfo) });
export const PathRequest = z.strictObject({ path: z.string().min(1).max(4096), parents: z.boolean().optional() });
export const TarResult = z.object({
  receipt: z.string().optional(),
  path: z.string(),
  bytes: z.number().int(),
  sha256: z.string(),
});
export type TarResult = z.infer<typeof TarResult>;

export const Volume = z.object({
  receipt: z.string().optional(),
  name: z.string(),
  id: z.string(),
  sizeMiB: z.number().int(),
  /** locked: only ciphertext exists; unlocked: the key is in the kernel. */
  state: z.enum(['locked', 'unlocked']),
  mountedIn: z.object({ sandbox: z.string(), path: z.string(), rw: z.boolean() }).nullable(),
  createdAt: z.string(),
});
export type Volume = z.infer<typeof Volume>;
export const VolumeList = z.object({ volumes: z.array(Volume) });
export const CreateVolumeRequest = z.strictObject({ name: Name, sizeMiB: z.number().int().min(16).max(16 * 1024 * 1024) });
export const LockVolumeRequest = z.strictObject({ force: z.boolean().optional() });
export const MountVolumeRequest = z.strictObject({
  volume: Name,
  guest: z.string().startsWith('/').max(4096),
  rw: z.boolean().optional(),
  /** Host-backed: bind this host directory instead, only if it is verifiably encrypted (fscrypt). */
  host: z.string().startsWith('/').max(4096).optional(),
});
