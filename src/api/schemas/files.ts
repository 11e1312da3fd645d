/** Files and tar transfers. */
import { z } from 'zod';

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
export const FileList = z.object({ files: z.array(FileInfo), total: z.number().int().optional() });
export const PathRequest = z.strictObject({ path: z.string().min(1).max(4096), parents: z.boolean().optional() });
export const TarResult = z.object({
  receipt: z.string().optional(),
  path: z.string(),
  bytes: z.number().int(),
  sha256: z.string(),
});
export type TarResult = z.infer<typeof TarResult>;
/** A fast copy: one regular file past the daemon (the CLI hands its open file to a native relay). */
export const FastCopyRequest = z.strictObject({
  path: z.string().min(1).max(4096),
  direction: z.enum(['in', 'out']),
  mode: z.number().int().min(0).max(0o7777).optional(),
  maxBytes: z.number().int().min(0).optional(),
  /** tar: a directory copy's tar stream (path: the directory to unpack into, or the path to archive). */
  kind: z.enum(['file', 'tar']).optional(),
});
export type FastCopyRequest = z.infer<typeof FastCopyRequest>;
export const FastCopyResult = z.object({
  receipt: z.string().optional(),
  path: z.string(),
  bytes: z.number().int(),
  sha256: z.string(),
  file: FileInfo.optional(),
});
export type FastCopyResult = z.infer<typeof FastCopyResult>;
/** The events of a fast copy: where to hand the file, then the outcome. */
export const FastCopyEvent = z.union([
  z.object({ type: z.literal('ready'), socket: z.string() }),
  z.object({ type: z.literal('result'), result: FastCopyResult, receipt: z.string().optional() }),
  z.object({ type: z.literal('error'), error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }) }),
]);
export type FastCopyEvent = z.infer<typeof FastCopyEvent>;
