/**
 * The one error-code table. Every error that crosses the API carries one of these codes;
 * the daemon maps it to an HTTP status here and the SDK maps it back to a typed error.
 */
export const ERROR_CODES = {
  INVALID_ARGUMENT: 400,
  INVALID_NAME: 400,
  UNAUTHORIZED: 401,
  POLICY_DENIED: 403,
  NOT_FOUND: 404,
  SANDBOX_NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  NAME_TAKEN: 409,
  INVALID_STATE: 409,
  IMAGE_IN_USE: 409,
  VOLUME_LOCKED: 409,
  VOLUME_IN_USE: 409,
  /** Processes in the sandbox still reach the volume (cwd, open files): unmount refused, or --force. */
  VOLUME_BUSY: 409,
  NOT_ENCRYPTED: 412,
  BUSY: 409,
  PAYLOAD_TOO_LARGE: 413,
  NO_SPACE: 507,
  SNAPSHOT_NOT_FOUND: 404,
  NOT_SUPPORTED: 501,
  RUNTIME_ERROR: 500,
  STORAGE_ERROR: 500,
  IMAGE_BUILD_FAILED: 500,
  INTERNAL: 500,
  DAEMON_UNAVAILABLE: 503,
  /** The registry could not be reached or answered with an error. */
  REGISTRY_ERROR: 502,
  /** The registry refused our credentials (or asked for some we did not have). */
  REGISTRY_AUTH_FAILED: 502,
  /** A blob or manifest did not match its digest: corrupt or tampered with. */
  DIGEST_MISMATCH: 502,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const httpStatusFor: Record<ErrorCode, number> = ERROR_CODES;

/** The wire shape of every error: `{ code, message, hint?, context? }`. */
export interface ApiErrorBody {
  code: ErrorCode;
  message: string;
  hint?: string;
  context?: Record<string, unknown>;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}

/** Thrown anywhere below the HTTP layer; the daemon turns it into an ApiErrorBody. */
export class NookError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly context: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; context?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NookError';
    this.code = code;
    this.hint = options.hint;
    this.context = options.context;
  }

  get status(): number {
    return httpStatusFor[this.code];
  }

  toJSON(): ApiErrorBody {
    const body: ApiErrorBody = { code: this.code, message: this.message };
    if (this.hint !== undefined) body.hint = this.hint;
    if (this.context !== undefined) body.context = this.context;
    return body;
  }
}
