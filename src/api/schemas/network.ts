/** Egress policy, decisions and exposed ports. */
import { z } from 'zod';

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
