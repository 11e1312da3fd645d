/**
 * The typed error tree: a class per code of the error table, under a class per HTTP status
 * family (400 InvalidArgumentError, 404 NotFoundError, 409 ConflictError, 500 InternalError,
 * 502 RegistryError), all under NookError. `createNookError` builds the right one from a code
 * (the SDK does so for every error answer), so users can write `e instanceof
 * SandboxNotFoundError` or `e instanceof NotFoundError`, and `e.context` is typed per code.
 *
 * Family classes take an optional third constructor argument, the code, for their subclasses.
 */
import { NookError, type CodeWithStatus, type ErrorCode, type ErrorContexts, type NookErrorArgs, type NookErrorOptions } from './errors.js';

export type InvalidArgumentCode = CodeWithStatus<400>;
export type NotFoundCode = CodeWithStatus<404>;
export type ConflictCode = CodeWithStatus<409>;
export type InternalCode = CodeWithStatus<500>;
export type RegistryCode = CodeWithStatus<502>;

/** The family constructors' call to NookError: the code is a union there, the subclass checked the context. */
function args(code: ErrorCode, message: string, options: NookErrorOptions<ErrorCode>): NookErrorArgs {
  return [code, message, options] as NookErrorArgs;
}

// ---- 400 ----

export class InvalidArgumentError extends NookError {
  declare readonly code: InvalidArgumentCode;
  declare readonly context: ErrorContexts[InvalidArgumentCode] | undefined;
  constructor(message: string, options: NookErrorOptions<InvalidArgumentCode> = {}, code: InvalidArgumentCode = 'INVALID_ARGUMENT') {
    super(...args(code, message, options));
  }
}
export class InvalidNameError extends InvalidArgumentError {
  declare readonly code: 'INVALID_NAME';
  declare readonly context: ErrorContexts['INVALID_NAME'] | undefined;
  constructor(message: string, options: NookErrorOptions<'INVALID_NAME'> = {}) {
    super(message, options, 'INVALID_NAME');
  }
}

// ---- 401, 403 ----

export class UnauthorizedError extends NookError {
  declare readonly code: 'UNAUTHORIZED';
  constructor(message: string, options: NookErrorOptions<'UNAUTHORIZED'> = {}) {
    super('UNAUTHORIZED', message, options);
  }
}
export class PolicyDeniedError extends NookError {
  declare readonly code: 'POLICY_DENIED';
  constructor(message: string, options: NookErrorOptions<'POLICY_DENIED'> = {}) {
    super('POLICY_DENIED', message, options);
  }
}

export class CrossOriginError extends NookError {
  declare readonly code: 'CROSS_ORIGIN';
  constructor(message: string, options: NookErrorOptions<'CROSS_ORIGIN'> = {}) {
    super('CROSS_ORIGIN', message, options);
  }
}

// ---- 404 ----

export class NotFoundError extends NookError {
  declare readonly code: NotFoundCode;
  declare readonly context: ErrorContexts[NotFoundCode] | undefined;
  constructor(message: string, options: NookErrorOptions<NotFoundCode> = {}, code: NotFoundCode = 'NOT_FOUND') {
    super(...args(code, message, options));
  }
}
export class SandboxNotFoundError extends NotFoundError {
  declare readonly code: 'SANDBOX_NOT_FOUND';
  declare readonly context: ErrorContexts['SANDBOX_NOT_FOUND'] | undefined;
  constructor(message: string, options: NookErrorOptions<'SANDBOX_NOT_FOUND'> = {}) {
    super(message, options, 'SANDBOX_NOT_FOUND');
  }
}
export class ImageNotFoundError extends NotFoundError {
  declare readonly code: 'IMAGE_NOT_FOUND';
  declare readonly context: ErrorContexts['IMAGE_NOT_FOUND'] | undefined;
  constructor(message: string, options: NookErrorOptions<'IMAGE_NOT_FOUND'> = {}) {
    super(message, options, 'IMAGE_NOT_FOUND');
  }
}
export class SnapshotNotFoundError extends NotFoundError {
  declare readonly code: 'SNAPSHOT_NOT_FOUND';
  declare readonly context: ErrorContexts['SNAPSHOT_NOT_FOUND'] | undefined;
  constructor(message: string, options: NookErrorOptions<'SNAPSHOT_NOT_FOUND'> = {}) {
    super(message, options, 'SNAPSHOT_NOT_FOUND');
  }
}
export class VolumeNotFoundError extends NotFoundError {
  declare readonly code: 'VOLUME_NOT_FOUND';
  declare readonly context: ErrorContexts['VOLUME_NOT_FOUND'] | undefined;
  constructor(message: string, options: NookErrorOptions<'VOLUME_NOT_FOUND'> = {}) {
    super(message, options, 'VOLUME_NOT_FOUND');
  }
}
export class ProcessNotFoundError extends NotFoundError {
  declare readonly code: 'PROCESS_NOT_FOUND';
  declare readonly context: ErrorContexts['PROCESS_NOT_FOUND'] | undefined;
  constructor(message: string, options: NookErrorOptions<'PROCESS_NOT_FOUND'> = {}) {
    super(message, options, 'PROCESS_NOT_FOUND');
  }
}
export class FileNotFoundError extends NotFoundError {
  declare readonly code: 'FILE_NOT_FOUND';
  declare readonly context: ErrorContexts['FILE_NOT_FOUND'] | undefined;
  constructor(message: string, options: NookErrorOptions<'FILE_NOT_FOUND'> = {}) {
    super(message, options, 'FILE_NOT_FOUND');
  }
}

// ---- 409 (and 412): the request conflicts with the current state ----

/** No code of its own: every 409 has a subclass. */
export abstract class ConflictError extends NookError {
  declare readonly code: ConflictCode;
  declare readonly context: ErrorContexts[ConflictCode] | undefined;
  constructor(message: string, options: NookErrorOptions<ConflictCode>, code: ConflictCode) {
    super(...args(code, message, options));
  }
}
export class NameTakenError extends ConflictError {
  declare readonly code: 'NAME_TAKEN';
  constructor(message: string, options: NookErrorOptions<'NAME_TAKEN'> = {}) {
    super(message, options, 'NAME_TAKEN');
  }
}
export class InvalidStateError extends ConflictError {
  declare readonly code: 'INVALID_STATE';
  constructor(message: string, options: NookErrorOptions<'INVALID_STATE'> = {}) {
    super(message, options, 'INVALID_STATE');
  }
}
export class BusyError extends ConflictError {
  declare readonly code: 'BUSY';
  constructor(message: string, options: NookErrorOptions<'BUSY'> = {}) {
    super(message, options, 'BUSY');
  }
}
export class DesktopNotRunningError extends ConflictError {
  declare readonly code: 'DESKTOP_NOT_RUNNING';
  declare readonly context: ErrorContexts['DESKTOP_NOT_RUNNING'] | undefined;
  constructor(message: string, options: NookErrorOptions<'DESKTOP_NOT_RUNNING'> = {}) {
    super(message, options, 'DESKTOP_NOT_RUNNING');
  }
}
export class ImageInUseError extends ConflictError {
  declare readonly code: 'IMAGE_IN_USE';
  declare readonly context: ErrorContexts['IMAGE_IN_USE'] | undefined;
  constructor(message: string, options: NookErrorOptions<'IMAGE_IN_USE'> = {}) {
    super(message, options, 'IMAGE_IN_USE');
  }
}
export class VolumeLockedError extends ConflictError {
  declare readonly code: 'VOLUME_LOCKED';
  constructor(message: string, options: NookErrorOptions<'VOLUME_LOCKED'> = {}) {
    super(message, options, 'VOLUME_LOCKED');
  }
}
export class VolumeInUseError extends ConflictError {
  declare readonly code: 'VOLUME_IN_USE';
  declare readonly context: ErrorContexts['VOLUME_IN_USE'] | undefined;
  constructor(message: string, options: NookErrorOptions<'VOLUME_IN_USE'> = {}) {
    super(message, options, 'VOLUME_IN_USE');
  }
}
export class VolumeBusyError extends ConflictError {
  declare readonly code: 'VOLUME_BUSY';
  declare readonly context: ErrorContexts['VOLUME_BUSY'] | undefined;
  constructor(message: string, options: NookErrorOptions<'VOLUME_BUSY'> = {}) {
    super(message, options, 'VOLUME_BUSY');
  }
}
export class NotEncryptedError extends NookError {
  declare readonly code: 'NOT_ENCRYPTED';
  constructor(message: string, options: NookErrorOptions<'NOT_ENCRYPTED'> = {}) {
    super('NOT_ENCRYPTED', message, options);
  }
}

// ---- limits ----

export class PayloadTooLargeError extends NookError {
  declare readonly code: 'PAYLOAD_TOO_LARGE';
  declare readonly context: ErrorContexts['PAYLOAD_TOO_LARGE'] | undefined;
  constructor(message: string, options: NookErrorOptions<'PAYLOAD_TOO_LARGE'> = {}) {
    super('PAYLOAD_TOO_LARGE', message, options);
  }
}
export class NoSpaceError extends NookError {
  declare readonly code: 'NO_SPACE';
  declare readonly context: ErrorContexts['NO_SPACE'] | undefined;
  constructor(message: string, options: NookErrorOptions<'NO_SPACE'> = {}) {
    super('NO_SPACE', message, options);
  }
}
export class NotSupportedError extends NookError {
  declare readonly code: 'NOT_SUPPORTED';
  constructor(message: string, options: NookErrorOptions<'NOT_SUPPORTED'> = {}) {
    super('NOT_SUPPORTED', message, options);
  }
}
export class TimeoutError extends NookError {
  declare readonly code: 'TIMEOUT';
  declare readonly context: ErrorContexts['TIMEOUT'] | undefined;
  constructor(message: string, options: NookErrorOptions<'TIMEOUT'> = {}) {
    super('TIMEOUT', message, options);
  }
}
export class DaemonUnavailableError extends NookError {
  declare readonly code: 'DAEMON_UNAVAILABLE';
  constructor(message: string, options: NookErrorOptions<'DAEMON_UNAVAILABLE'> = {}) {
    super('DAEMON_UNAVAILABLE', message, options);
  }
}

// ---- 500 ----

export class InternalError extends NookError {
  declare readonly code: InternalCode;
  constructor(message: string, options: NookErrorOptions<InternalCode> = {}, code: InternalCode = 'INTERNAL') {
    super(...args(code, message, options));
  }
}
export class RuntimeError extends InternalError {
  declare readonly code: 'RUNTIME_ERROR';
  constructor(message: string, options: NookErrorOptions<'RUNTIME_ERROR'> = {}) {
    super(message, options, 'RUNTIME_ERROR');
  }
}
export class StorageError extends InternalError {
  declare readonly code: 'STORAGE_ERROR';
  constructor(message: string, options: NookErrorOptions<'STORAGE_ERROR'> = {}) {
    super(message, options, 'STORAGE_ERROR');
  }
}
export class ImageBuildFailedError extends InternalError {
  declare readonly code: 'IMAGE_BUILD_FAILED';
  constructor(message: string, options: NookErrorOptions<'IMAGE_BUILD_FAILED'> = {}) {
    super(message, options, 'IMAGE_BUILD_FAILED');
  }
}

// ---- 502 ----

export class RegistryError extends NookError {
  declare readonly code: RegistryCode;
  constructor(message: string, options: NookErrorOptions<RegistryCode> = {}, code: RegistryCode = 'REGISTRY_ERROR') {
    super(...args(code, message, options));
  }
}
export class RegistryAuthError extends RegistryError {
  declare readonly code: 'REGISTRY_AUTH_FAILED';
  constructor(message: string, options: NookErrorOptions<'REGISTRY_AUTH_FAILED'> = {}) {
    super(message, options, 'REGISTRY_AUTH_FAILED');
  }
}
export class DigestMismatchError extends RegistryError {
  declare readonly code: 'DIGEST_MISMATCH';
  constructor(message: string, options: NookErrorOptions<'DIGEST_MISMATCH'> = {}) {
    super(message, options, 'DIGEST_MISMATCH');
  }
}

/** The class for each code: tsc refuses this table when a code of ERROR_CODES has none. */
export const ERROR_CLASSES: { [C in ErrorCode]: new (message: string, options?: NookErrorOptions<C>) => NookError } = {
  INVALID_ARGUMENT: InvalidArgumentError,
  INVALID_NAME: InvalidNameError,
  UNAUTHORIZED: UnauthorizedError,
  POLICY_DENIED: PolicyDeniedError,
  CROSS_ORIGIN: CrossOriginError,
  NOT_FOUND: NotFoundError,
  SANDBOX_NOT_FOUND: SandboxNotFoundError,
  IMAGE_NOT_FOUND: ImageNotFoundError,
  SNAPSHOT_NOT_FOUND: SnapshotNotFoundError,
  VOLUME_NOT_FOUND: VolumeNotFoundError,
  PROCESS_NOT_FOUND: ProcessNotFoundError,
  FILE_NOT_FOUND: FileNotFoundError,
  NAME_TAKEN: NameTakenError,
  INVALID_STATE: InvalidStateError,
  IMAGE_IN_USE: ImageInUseError,
  VOLUME_LOCKED: VolumeLockedError,
  VOLUME_IN_USE: VolumeInUseError,
  VOLUME_BUSY: VolumeBusyError,
  BUSY: BusyError,
  DESKTOP_NOT_RUNNING: DesktopNotRunningError,
  NOT_ENCRYPTED: NotEncryptedError,
  PAYLOAD_TOO_LARGE: PayloadTooLargeError,
  NO_SPACE: NoSpaceError,
  NOT_SUPPORTED: NotSupportedError,
  TIMEOUT: TimeoutError,
  RUNTIME_ERROR: RuntimeError,
  STORAGE_ERROR: StorageError,
  IMAGE_BUILD_FAILED: ImageBuildFailedError,
  INTERNAL: InternalError,
  DAEMON_UNAVAILABLE: DaemonUnavailableError,
  REGISTRY_ERROR: RegistryError,
  REGISTRY_AUTH_FAILED: RegistryAuthError,
  DIGEST_MISMATCH: DigestMismatchError,
};

/** The error of `code` as its own class (so `instanceof` works), e.g. for an error answer. */
export function createNookError<C extends ErrorCode>(code: C, message: string, options: NookErrorOptions<C> = {}): NookError {
  const Class = ERROR_CLASSES[code] as new (message: string, options?: NookErrorOptions<C>) => NookError;
  return new Class(message, options);
}
