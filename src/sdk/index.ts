export { NookClient, Sandbox, type ExecOptions, type RunOptions, type CreateOptions, type Command, type PtyOptions, type PtySession } from './client.js';
export { Transport, type TransportOptions } from './transport.js';
export { NookError, ERROR_CODES, type ErrorCode, type ApiErrorBody } from '../api/errors.js';
export type {
  Sandbox as SandboxInfo,
  SandboxState,
  ExecResult,
  Image,
  Health,
  ProgressEvent,
  CreateSandboxRequest,
  Limits,
  Snapshot,
  DestroyResult,
  Exposure,
  NetworkShow,
  NetworkDecision,
  NetworkPolicy,
  Process,
  LogEvent,
  NookEvent,
  AuditRecord,
  FileInfo,
  Volume,
  AuditVerify,
} from '../api/schemas.js';
