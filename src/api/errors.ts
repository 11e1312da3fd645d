/**
 * The one error-code table. Every error that crosses the API carries one of these codes;
 * the daemon maps it to an HTTP status here and the SDK maps it back to a typed error
 * (a class per code, grouped by status: see error-classes.ts).
 */
export const ERROR_CODES = {
  INVALID_ARGUMENT: 400,
  INVALID_NAME: 400,
  UNAUTHORIZED: 401,
  POLICY_DENIED: 403,
  /** A console call that changes state came from another origin than the console's own (CSRF). */
  CROSS_ORIGIN: 403,
  /** Something without a more specific code (an unknown endpoint, profile, audit record, exposure). */
  NOT_FOUND: 404,
  SANDBOX_NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  SNAPSHOT_NOT_FOUND: 404,
  /** No volume by that name, or none mounted at that guest path. */
  VOLUME_NOT_FOUND: 404,
  /** No process by that id or name in the sandbox. */
  PROCESS_NOT_FOUND: 404,
  /** No such path inside the sandbox. */
  FILE_NOT_FOUND: 404,
  NAME_TAKEN: 409,
  INVALID_STATE: 409,
  IMAGE_IN_USE: 409,
  VOLUME_LOCKED: 409,
  VOLUME_IN_USE: 409,
  /** Processes in the sandbox still reach the volume (cwd, open files): unmount refused, or --force. */
  VOLUME_BUSY: 409,
  BUSY: 409,
  /** The desktop sandbox's X server (or its supervisor) is not running: `nook desktop restart`. */
  DESKTOP_NOT_RUNNING: 409,
  NOT_ENCRYPTED: 412,
  PAYLOAD_TOO_LARGE: 413,
  NO_SPACE: 507,
  NOT_SUPPORTED: 501,
  /** An operation inside the sandbox made no progress in time. */
  TIMEOUT: 504,
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

/** The codes answered with HTTP status S: the families of the class tree come from this. */
export type CodeWithStatus<S extends number> = { [C in ErrorCode]: (typeof ERROR_CODES)[C] extends S ? C : never }[ErrorCode];

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

// Context shapes are type aliases, not interfaces: they must be assignable to Record<string, unknown>.

/** A schema violation in a request body. */
export type Issue = { path: string; message: string };
/** A process that still reaches a volume (host pid, pid inside the sandbox, and how it reaches it). */
export type VolumeHolder = { pid: number; nsPid: number; command: string; uses: string[] };
/** A code with no structured context (yet): whatever the daemon attached, unchecked. */
export type UntypedContext = Record<string, unknown>;

/**
 * What `context` holds, per code. The daemon's throw sites are checked against it, and the
 * SDK's error classes expose it typed (`e instanceof VolumeBusyError` → `e.context.holders`).
 */
export type ErrorContexts = {
  INVALID_ARGUMENT: { issues: Issue[] };
  INVALID_NAME: { name?: string; issues?: Issue[] };
  UNAUTHORIZED: UntypedContext;
  POLICY_DENIED: UntypedContext;
  CROSS_ORIGIN: UntypedContext;
  NOT_FOUND: UntypedContext;
  SANDBOX_NOT_FOUND: { ref: string };
  IMAGE_NOT_FOUND: { ref: string };
  SNAPSHOT_NOT_FOUND: { ref: string };
  /** `name` for a volume asked for by name; `sandbox` and `guest` for a mount point. */
  VOLUME_NOT_FOUND: { name: string } | { sandbox: string; guest: string };
  PROCESS_NOT_FOUND: { sandboxId: string; process: string };
  FILE_NOT_FOUND: { sandbox: string; path: string };
  NAME_TAKEN: UntypedContext;
  INVALID_STATE: UntypedContext;
  IMAGE_IN_USE: { sandboxes: string[] } | { snapshots: string[] } | { pool: number };
  VOLUME_LOCKED: UntypedContext;
  VOLUME_IN_USE: { sandbox: string; sandboxId: string; path: string | null };
  VOLUME_BUSY: { holders: VolumeHolder[]; sandbox?: string; path?: string | null };
  BUSY: UntypedContext;
  DESKTOP_NOT_RUNNING: { sandbox: string };
  NOT_ENCRYPTED: UntypedContext;
  PAYLOAD_TOO_LARGE: { maxBytes: number };
  /** The state dir's file system (minFreeBytes) or the storage pool (sizeBytes). */
  NO_SPACE: { freeBytes: number; minFreeBytes: number } | { freeBytes: number; sizeBytes: number };
  NOT_SUPPORTED: UntypedContext;
  TIMEOUT: { timeoutMs: number };
  RUNTIME_ERROR: UntypedContext;
  STORAGE_ERROR: UntypedContext;
  IMAGE_BUILD_FAILED: UntypedContext;
  INTERNAL: UntypedContext;
  DAEMON_UNAVAILABLE: UntypedContext;
  REGISTRY_ERROR: UntypedContext;
  REGISTRY_AUTH_FAILED: UntypedContext;
  DIGEST_MISMATCH: UntypedContext;
};

// Every code has a context entry, and nothing else does.
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const contextsCoverCodes: Exact<keyof ErrorContexts, ErrorCode> = true;
void contextsCoverCodes;

export interface NookErrorOptions<C extends ErrorCode = ErrorCode> {
  hint?: string;
  context?: ErrorContexts[C];
  cause?: unknown;
}

/** `(code, message, options)` with the context checked against that code's shape. */
export type NookErrorArgs<K extends ErrorCode = ErrorCode> = { [C in K]: [code: C, message: string, options?: NookErrorOptions<C>] }[K];

/**
 * The root of every nook error; thrown anywhere below the HTTP layer, which turns it into an
 * ApiErrorBody. The SDK answers with the subclass for the code (error-classes.ts).
 */
export class NookError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly context: Record<string, unknown> | undefined;

  constructor(...[code, message, options = {}]: NookErrorArgs) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
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
