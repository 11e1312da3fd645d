/**
 * Module hooks (node --import module-log-register.js): every module the process resolves is
 * appended to the file NOOK_MODULE_LOG names, so a test sees what a command loaded.
 * appendFileSync: the line is written before the module loads, even if the process exits early.
 */
import { appendFileSync } from 'node:fs';

type Next = (specifier: string, context: unknown) => Promise<{ url: string }>;

export async function resolve(specifier: string, context: unknown, next: Next): Promise<{ url: string }> {
  const result = await next(specifier, context);
  const log = process.env.NOOK_MODULE_LOG;
  if (log) appendFileSync(log, result.url + '\n');
  return result;
}
