/** Background processes, logs, events and terminals. */
import { z } from 'zod';
import { ApiError, Env, Name } from './common.js';
import { execFields } from './exec.js';

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
