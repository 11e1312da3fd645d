import { NookError } from '../../api/errors.js';
import { log } from '../../util/log.js';

/** Any thrown value as the API's error: NookErrors as they are, a full state dir as NO_SPACE, the rest INTERNAL (logged). */
export function errorBody(e: unknown): NookError {
  if (e instanceof NookError) return e;
  const code = (e as { code?: unknown }).code;
  // The state dir (SQLite, logs, scratch) filled up: the operation failed before it counted.
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') {
    log('state dir full', { error: (e as Error).message });
    return new NookError('NO_SPACE', `the daemon's state dir is full (${(e as Error).message}); the operation was not done`, {
      hint: 'free space on the file system that holds NOOK_STATE_DIR, then retry',
    });
  }
  log('internal error', { error: (e as Error).stack ?? String(e) });
  return new NookError('INTERNAL', (e as Error).message || 'internal error', { hint: 'see the daemon log' });
}
