/** Commands: exec and run requests, results and their stream events; the API error shape. */
import { z } from 'zod';
import { AbsolutePath, ApiError, Env, ImageRef, LIMITS, Labels, PullPolicy } from './common.js';
import { Limits, Sandbox } from './sandboxes.js';

export const execFields = {
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
