/**
 * The nook SDK: `new NookClient()`, its collections (sandboxes, images, volumes...), one
 * class per resource of a sandbox, and the typed error tree (`e instanceof SandboxNotFoundError`).
 */
export { NookClient, type HostSettingName } from './client.js';
export { Sandbox } from './sandbox/sandbox.js';
export { Files } from './sandbox/files.js';
export { Processes, ProcessHandle, type LogOptions } from './sandbox/processes.js';
export { Network, Exposures } from './sandbox/network.js';
export { SandboxSnapshots } from './sandbox/snapshots.js';
export { SandboxVolumes } from './sandbox/volumes.js';
export { Terminals, type PtyOptions, type PtySession } from './sandbox/terminal.js';
export { Desktop, type MouseButton, type DesktopActionResult } from './sandbox/desktop.js';
export { Sandboxes, type CreateOptions } from './sandboxes.js';
export { Images, Templates } from './images.js';
export { Builds } from './builds.js';
export { Volumes } from './volumes.js';
export { Profiles } from './profiles.js';
export { Audit } from './audit.js';
export { Snapshots } from './snapshots.js';
export type { Command, ExecOptions, RunOptions } from './exec.js';
export type { Unpacked } from './dir-transfer.js';
export { Transport, type TransportOptions, type CallOptions } from './transport.js';
export { pathOf, type PathParams } from './routes.js';
export { routes, type RouteName, type RouteDef } from '../api/routes.js';
export { NookError, ERROR_CODES, type ErrorCode, type ErrorContexts, type ApiErrorBody, type NookErrorOptions, type VolumeHolder, type Issue } from '../api/errors.js';
export * from '../api/error-classes.js';
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
  TarResult,
  Template,
  Profile,
  ProfileSpec,
  HostConfig,
  PoolInfo,
  RetainedItem,
  Usage,
  DoneReport,
  BuildEvent,
  BuildResult,
} from '../api/schemas.js';
