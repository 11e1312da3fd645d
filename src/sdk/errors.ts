/** Error answers back into typed errors: shared by the Node transport and the browser's (no Node modules here). */
import { createNookError } from '../api/error-classes.js';
import { isErrorCode, type ApiErrorBody, type NookError, type NookErrorOptions } from '../api/errors.js';

/**
 * Turns an error body back into the error the daemon threw, as the class of its code
 * (SandboxNotFoundError, VolumeBusyError...; all NookErrors). An unknown code is INTERNAL.
 */
export function toError(body: unknown, status: number): NookError {
  const b = (body ?? {}) as Partial<ApiErrorBody>;
  const code = isErrorCode(b.code) ? b.code : 'INTERNAL';
  const options: NookErrorOptions = {
    ...(typeof b.hint === 'string' ? { hint: b.hint } : {}),
    // The daemon builds the context from the table's shape for this code; taken as sent.
    ...(b.context && typeof b.context === 'object' ? { context: b.context as NookErrorOptions['context'] } : {}),
  };
  return createNookError(code, typeof b.message === 'string' ? b.message : `HTTP ${status}`, options);
}
