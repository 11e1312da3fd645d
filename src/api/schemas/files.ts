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
