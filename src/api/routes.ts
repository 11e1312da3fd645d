/**
 * The route table: method, path, body and response schema of every endpoint. The daemon
 * validates against it and the OpenAPI document is generated from it, so they cannot drift.
 */
import { z } from 'zod';
import * as s from './schemas.js';

/** A query flag: "true" or "false", absent is false (z.coerce.boolean would read "false" as true). */
const flag = (description: string) =>
  z
    .enum(['true', 'false'])
    .optional()
    .transform((v) => v === 'true')
    .describe(description);
/** A count or byte size: a non-negative integer (Number() syntax, as the daemon always read it). */
const count = () => z.coerce.number().int().min(0);
const sandboxPath = (description: string) => z.string().default('').describe(description);

/** Logs since: an ISO time or ms since the epoch. */
const sinceTime = z
  .string()
  .transform((v, ctx) => {
    const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
    if (Number.isNaN(ms)) {
      ctx.issues.push({ code: 'custom', input: v, message: `${v} is not a time: give an ISO time or ms since epoch` });
      return z.NEVER;
    }
    return ms;
  })
  .optional()
  .describe('only output since this ISO time or ms epoch');

/** Label filters, k=v, repeatable: every one must match. */
const labelFilter = z
  .array(z.string().regex(/^[^=]+=/, 'a label filter must be key=value'))
  .optional()
  .transform((values) => Object.fromEntries((values ?? []).map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)])))
  .describe('k=v, repeatable: only sandboxes carrying every given label');

const fileMode = z
  .string()
  .regex(/^0*[0-7]{1,3}$/, 'is not octal permission bits (e.g. 644 or 755)')
  .optional()
  .transform((v) => Number.parseInt(v ?? '644', 8))
  .describe('octal permission bits, default 644');

export interface RouteDef {
  method: 'get' | 'post' | 'delete';
  path: string;
  summary: string;
  body?: z.ZodType;
  response: z.ZodType;
  /** When set, `stream: true` in the body switches the answer to application/x-ndjson of this. */
  streamEvent?: z.ZodType;
  /** The request body or the answer is a tar archive (application/x-tar), not JSON. */
  tar?: 'body' | 'response';
  /** The answer is raw bytes of this media type (a screenshot), not JSON. */
  binaryResponse?: string;
  /** Query parameters: validated by the daemon (400 naming the parameter) and listed in the OpenAPI document. */
  query?: z.ZodObject;
  /** Path parameters that need more than a string (others are plain strings). */
  params?: z.ZodObject;
}

export const routes = {
  health: { method: 'get', path: '/v1/health', summary: 'Daemon status, runtime and storage drivers', response: s.Health },
  openapi: { method: 'get', path: '/v1/openapi.json', summary: 'This document: the API as OpenAPI 3.1, generated from the route table', response: s.OpenApiDocument },
  listSandboxes: {
    method: 'get',
    path: '/v1/sandboxes',
    summary: 'List sandboxes',
    response: s.SandboxList,
    query: z.object({ label: labelFilter, state: s.SandboxState.optional().describe('only sandboxes in this state') }),
  },
  createSandbox: { method: 'post', path: '/v1/sandboxes', summary: 'Create and start a sandbox', body: s.CreateSandboxRequest, response: s.Sandbox },
  getSandbox: { method: 'get', path: '/v1/sandboxes/{ref}', summary: 'One sandbox, by name or id', response: s.Sandbox },
  destroySandbox: {
    method: 'delete',
    path: '/v1/sandboxes/{ref}',
    summary: 'Destroy a sandbox and its files (its snapshots are kept unless withSnapshots)',
    response: s.DestroyResult,
    query: z.object({ withSnapshots: flag('true: delete its snapshots too') }),
  },
  recycleSandbox: {
    method: 'post',
    path: '/v1/sandboxes/{ref}/recycle',
    summary: 'New compute from the image plus the persisted paths (a sandbox created with persist)',
    response: s.Sandbox,
  },
  createSnapshot: { method: 'post', path: '/v1/sandboxes/{ref}/snapshots', summary: 'Take a named read-only snapshot', body: s.CreateSnapshotRequest, response: s.Snapshot },
  listSandboxSnapshots: { method: 'get', path: '/v1/sandboxes/{ref}/snapshots', summary: "A sandbox's snapshots (also of a destroyed sandbox, by name)", response: s.SnapshotList },
  deleteSnapshot: { method: 'delete', path: '/v1/sandboxes/{ref}/snapshots/{name}', summary: 'Delete a snapshot', response: s.Snapshot },
  listSnapshots: { method: 'get', path: '/v1/snapshots', summary: 'Every snapshot on this host', response: s.SnapshotList },
  fork: { method: 'post', path: '/v1/sandboxes/{ref}/fork', summary: "New running sandboxes from this one's current files", body: s.ForkRequest, response: s.SandboxList },
  commit: { method: 'post', path: '/v1/sandboxes/{ref}/commit', summary: "A new image from the sandbox's files", body: s.CommitRequest, response: s.Image },
  stopSandbox: { method: 'post', path: '/v1/sandboxes/{ref}/stop', summary: 'Stop compute; files are kept (non-persistent: destroyed); memory: keep process memory too (gVisor)', body: s.StopRequest, response: s.Sandbox },
  resumeSandbox: { method: 'post', path: '/v1/sandboxes/{ref}/resume', summary: 'Start compute again on the kept files', response: s.Sandbox },
  exec: {
    method: 'post',
    path: '/v1/sandboxes/{ref}/exec',
    summary: 'Run a command; resumes a paused sandbox first',
    body: s.ExecRequest,
    response: s.ExecResult,
    streamEvent: s.ExecEvent,
  },
  run: {
    method: 'post',
    path: '/v1/run',
    summary: 'One-shot: create a non-persistent sandbox, run one command, destroy it',
    body: s.RunRequest,
    response: s.ExecResult,
    streamEvent: s.ExecEvent,
  },
  showNetwork: { method: 'get', path: '/v1/sandboxes/{ref}/network', summary: 'Egress policy and recent decisions', response: s.NetworkShow, query: z.object({ limit: count().optional().transform((n) => n || 50).describe('how many decisions (default 50)') }),
  },
  setNetwork: { method: 'post', path: '/v1/sandboxes/{ref}/network', summary: 'Replace the mode and/or allow-list (applies at once)', body: s.NetworkSet, response: s.NetworkShow },
  allowHosts: { method: 'post', path: '/v1/sandboxes/{ref}/network/allow', summary: 'Add hosts to the allow-list (applies at once)', body: s.NetworkHosts, response: s.NetworkShow },
  denyHosts: { method: 'post', path: '/v1/sandboxes/{ref}/network/deny', summary: 'Remove hosts from the allow-list (applies at once)', body: s.NetworkHosts, response: s.NetworkShow },
  suggestNetwork: { method: 'get', path: '/v1/sandboxes/{ref}/network/suggest', summary: 'The allow-list that learn-mode runs needed', response: s.NetworkSuggestion },
  expose: { method: 'post', path: '/v1/sandboxes/{ref}/expose', summary: 'Expose a sandbox port on the host loopback, behind a token', body: s.ExposeRequest, response: s.Exposure },
  listExposures: { method: 'get', path: '/v1/sandboxes/{ref}/expose', summary: "A sandbox's exposed ports", response: s.ExposureList },
  unexpose: {
    method: 'delete',
    path: '/v1/sandboxes/{ref}/expose/{port}',
    summary: 'Stop exposing a port',
    response: s.Exposure,
    params: z.object({ port: z.coerce.number().int().min(1).max(65535).describe('the sandbox port') }),
  },
  startProcess: { method: 'post', path: '/v1/sandboxes/{ref}/processes', summary: 'Start a background process (outlives the request; logs kept by the daemon)', body: s.StartProcessRequest, response: s.Process },
  listProcesses: { method: 'get', path: '/v1/sandboxes/{ref}/processes', summary: 'Processes started through nook', response: s.ProcessList },
  getProcess: { method: 'get', path: '/v1/sandboxes/{ref}/processes/{proc}', summary: 'One process, by id or name', response: s.Process },
  killProcess: { method: 'post', path: '/v1/sandboxes/{ref}/processes/{proc}/kill', summary: 'Signal a process; default SIGKILL ends its whole tree', body: s.KillRequest, response: s.Process },
  processLogs: {
    method: 'get',
    path: '/v1/sandboxes/{ref}/processes/{proc}/logs',
    summary: "A process's output as NDJSON; with follow, until it exits",
    response: s.LogEvent,
    query: z.object({
      follow: flag('true: keep streaming until the process exits'),
      tail: z.string().regex(/^\d+$/, 'is not a number of lines').transform(Number).optional().describe('only the last N lines'),
      since: sinceTime,
    }),
  },
  desktopInfo: { method: 'get', path: '/v1/sandboxes/{ref}/desktop', summary: 'A desktop sandbox: screen size, display, whether its X server runs', response: s.DesktopInfo },
  desktopScreenshot: { method: 'get', path: '/v1/sandboxes/{ref}/desktop/screenshot', summary: 'The whole screen as image/png (bounded: 32 MiB)', response: s.DesktopInfo, binaryResponse: 'image/png' },
  desktopCursor: { method: 'get', path: '/v1/sandboxes/{ref}/desktop/cursor', summary: 'Where the pointer is', response: s.DesktopCursor },
  desktopWindows: { method: 'get', path: '/v1/sandboxes/{ref}/desktop/windows', summary: 'Top-level windows with titles and geometry', response: s.DesktopWindowList },
  desktopClick: { method: 'post', path: '/v1/sandboxes/{ref}/desktop/click', summary: 'Move the pointer to x,y and click (button, double)', body: s.DesktopClickRequest, response: s.DesktopAction },
  desktopMove: { method: 'post', path: '/v1/sandboxes/{ref}/desktop/move', summary: 'Move the pointer to x,y', body: s.DesktopMoveRequest, response: s.DesktopAction },
  desktopDrag: { method: 'post', path: '/v1/sandboxes/{ref}/desktop/drag', summary: 'Press at fromX,fromY, move to toX,toY, release', body: s.DesktopDragRequest, response: s.DesktopAction },
  desktopScroll: { method: 'post', path: '/v1/sandboxes/{ref}/desktop/scroll', summary: 'Turn the wheel (up, down, left, right), at x,y or where the pointer is', body: s.DesktopScrollRequest, response: s.DesktopAction },
  desktopType: { method: 'post', path: '/v1/sandboxes/{ref}/desktop/type', summary: 'Type text (no control characters but tab and newline; audited as a digest)', body: s.DesktopTypeRequest, response: s.DesktopAction },
  desktopKey: { method: 'post', path: '/v1/sandboxes/{ref}/desktop/key', summary: 'Press a key combination: ctrl+l, Return, alt+F4', body: s.DesktopKeyRequest, response: s.DesktopAction },
  desktopLaunch: { method: 'post', path: '/v1/sandboxes/{ref}/desktop/launch', summary: 'Start a GUI program on the display as a background process', body: s.DesktopLaunchRequest, response: s.Process },
  desktopWaitIdle: { method: 'post', path: '/v1/sandboxes/{ref}/desktop/wait-idle', summary: 'Wait until the screen stops changing (TIMEOUT otherwise)', body: s.DesktopWaitIdleRequest, response: s.DesktopIdle },
  desktopRestart: { method: 'post', path: '/v1/sandboxes/{ref}/desktop/restart', summary: 'End and start again the X server and its services', response: s.DesktopInfo },
  desktopUrl: { method: 'post', path: '/v1/sandboxes/{ref}/desktop/url', summary: 'A token-guarded noVNC link on the host loopback: view-only unless control; it dies when compute stops', body: s.DesktopUrlRequest, response: s.DesktopUrl },
  events: { method: 'get', path: '/v1/events', summary: 'Lifecycle events as NDJSON, as they happen (the stream stays open)', response: s.NookEvent },
  pty: {
    method: 'get',
    path: '/v1/sandboxes/{ref}/pty',
    summary: 'WebSocket: an interactive terminal. First text message {type:start, cols, rows, argv?}; binary messages are terminal bytes; {type:resize}; the server ends with {type:exit}',
    response: s.PtyServerMessage,
  },
  listAudit: { method: 'get', path: '/v1/audit', summary: 'Audit records, newest last', response: s.AuditList, query: z.object({
      sandbox: z.string().optional().describe('only this sandbox'),
      action: z.string().optional().describe('only this action'),
      limit: count().optional().transform((n) => n || 100).describe('at most this many (default 100)'),
    }),
  },
  getAudit: { method: 'get', path: '/v1/audit/{receipt}', summary: 'One audit record', response: s.AuditRecord },
  verifyAudit: { method: 'get', path: '/v1/audit/verify', summary: 'Check the hash chain end to end; names the first bad record', response: s.AuditVerify },
  exportAudit: { method: 'get', path: '/v1/audit/export', summary: 'Every record as JSON lines', response: s.AuditRecord },
  usage: { method: 'get', path: '/v1/sandboxes/{ref}/usage', summary: 'Compute seconds and stored bytes (files, snapshots, logs)', response: s.Usage },
  done: { method: 'post', path: '/v1/sandboxes/{ref}/done', summary: 'The end-of-job checklist: stop compute, remove exposures, list what remains and the receipts', response: s.DoneReport },
  retained: { method: 'get', path: '/v1/retained', summary: 'All state that still exists, with size and age', response: s.RetainedList, query: z.object({ sandbox: z.string().optional().describe('only this sandbox') }),
  },
  gc: { method: 'post', path: '/v1/gc', summary: 'Delete state older than a given age, by kind (dryRun lists it)', body: s.GcRequest, response: s.GcResult },
  listProfiles: { method: 'get', path: '/v1/profiles', summary: 'Profiles with their draft and published versions', response: s.ProfileList },
  getProfile: { method: 'get', path: '/v1/profiles/{name}', summary: 'One profile', response: s.Profile },
  saveProfile: {
    method: 'post',
    path: '/v1/profiles/{name}',
    summary: 'Create or replace the draft of a profile',
    body: s.ProfileSpec,
    response: s.Profile,
    params: z.object({ name: z.string().regex(s.NAME_PATTERN, `invalid profile name: use ${s.NAME_RULE}`) }),
  },
  publishProfile: { method: 'post', path: '/v1/profiles/{name}/publish', summary: 'Publish the draft as the next version', response: s.Profile },
  getConfig: { method: 'get', path: '/v1/config', summary: 'Host settings no profile can loosen', response: s.HostConfig },
  setConfig: { method: 'post', path: '/v1/config', summary: 'Change a host setting', body: s.SetConfigRequest, response: s.HostConfig },
  statFile: { method: 'get', path: '/v1/sandboxes/{ref}/files/stat', summary: 'lstat of a path inside the sandbox', response: s.FileInfo, query: z.object({ path: sandboxPath('absolute path in the sandbox') }) },
  listFiles: {
    method: 'get',
    path: '/v1/sandboxes/{ref}/files/list',
    summary: 'A directory inside the sandbox (by name; offset and limit give one page and the total)',
    response: s.FileList,
    query: z.object({
      path: sandboxPath('absolute path in the sandbox'),
      offset: count().optional().describe('skip this many entries'),
      limit: count().max(10_000).optional().describe('at most this many entries'),
    }),
  },
  readFile: {
    method: 'get',
    path: '/v1/sandboxes/{ref}/files/content',
    summary: 'A regular file\'s bytes (application/octet-stream); refused with PAYLOAD_TOO_LARGE past maxBytes (default 16 MiB)',
    response: s.FileInfo,
    query: z.object({ path: sandboxPath('absolute path in the sandbox'), maxBytes: count().default(16 * 1024 * 1024).describe('upper bound, default 16777216') }),
  },
  writeFile: {
    method: 'post',
    path: '/v1/sandboxes/{ref}/files/content',
    summary: 'Write a file from the raw request body (replaced atomically; a symlink there is replaced, not followed)',
    response: s.FileInfo,
    query: z.object({ path: sandboxPath('absolute path in the sandbox'), mode: fileMode }),
  },
  fastCopy: {
    method: 'post',
    path: '/v1/sandboxes/{ref}/files/fast-copy',
    summary:
      'Unix socket only: copies one regular file (or, with kind: tar, a directory\'s tar stream) past the daemon. Answers application/x-ndjson: {type: ready, socket}, where the caller hands its open host file (the source, or an empty temp file to copy out into; for tar, one end of a pipe or socket pair carrying the archive) with SCM_RIGHTS (native/build/nook-copy send), then {type: result} or {type: error}',
    body: s.FastCopyRequest,
    response: s.FastCopyResult,
    streamEvent: s.FastCopyEvent,
  },
  putTar: {
    method: 'post',
    path: '/v1/sandboxes/{ref}/files/tar',
    summary: 'Unpack a tar stream (the body) into a directory inside the sandbox, made with its parents; tar runs inside the sandbox',
    response: s.TarResult,
    tar: 'body',
    query: z.object({ path: sandboxPath('absolute directory in the sandbox') }),
  },
  getTar: {
    method: 'get',
    path: '/v1/sandboxes/{ref}/files/tar',
    summary: 'A file or directory inside the sandbox as a tar stream (one top entry: its last path part); past maxBytes (+1 MiB) it ends early without the tar end blocks',
    response: s.TarResult,
    tar: 'response',
    query: z.object({ path: sandboxPath('absolute path in the sandbox'), maxBytes: count().default(1024 ** 3).describe('upper bound of the archive, default 1 GiB') }),
  },
  makeDir: { method: 'post', path: '/v1/sandboxes/{ref}/files/mkdir', summary: 'Make a directory (parents: with missing parents)', body: s.PathRequest, response: s.FileInfo },
  removeFile: { method: 'delete', path: '/v1/sandboxes/{ref}/files', summary: 'Remove a file or (recursive) a directory', response: s.PathRequest, query: z.object({ path: sandboxPath('absolute path'), recursive: flag('true to remove a directory tree') }),
  },
  createVolume: { method: 'post', path: '/v1/volumes', summary: 'A managed volume: sparse ext4, encrypted with fscrypt, created locked', body: s.CreateVolumeRequest, response: s.Volume },
  listVolumes: { method: 'get', path: '/v1/volumes', summary: 'Managed volumes', response: s.VolumeList },
  getVolume: { method: 'get', path: '/v1/volumes/{name}', summary: 'One volume', response: s.Volume },
  removeVolume: { method: 'delete', path: '/v1/volumes/{name}', summary: 'Lock and delete a volume (refused while mounted)', response: s.Volume },
  unlockVolume: { method: 'post', path: '/v1/volumes/{name}/unlock', summary: 'Put the key into the kernel: plaintext becomes reachable', response: s.Volume },
  lockVolume: { method: 'post', path: '/v1/volumes/{name}/lock', summary: 'Remove the key and unmount: only ciphertext remains (force unmounts first)', body: s.LockVolumeRequest, response: s.Volume },
  mountVolume: { method: 'post', path: '/v1/sandboxes/{ref}/volumes', summary: 'Mount an unlocked volume into a running sandbox (single-attach)', body: s.MountVolumeRequest, response: s.Volume },
  sandboxVolumes: { method: 'get', path: '/v1/sandboxes/{ref}/volumes', summary: "A sandbox's mounted volumes", response: s.VolumeList },
  unmountVolume: { method: 'delete', path: '/v1/sandboxes/{ref}/volumes', summary: 'Unmount the volume at a guest path (refused with VOLUME_BUSY while processes reach it)', response: s.Volume, query: z.object({ guest: z.string().default('').describe('the guest path'), force: flag('true: kill the processes that still reach it, then unmount') }),
  },
  listTemplates: { method: 'get', path: '/v1/templates', summary: 'Named templates: an image preset plus create defaults', response: s.TemplateList },
  listImages: { method: 'get', path: '/v1/images', summary: 'List images', response: s.ImageList, query: z.object({ all: flag('true to include the build step cache') }) },
  buildSpec: {
    method: 'post',
    path: '/v1/builds',
    summary: 'Build an image from a build context (tar body holding nook.json): steps run in an isolated builder sandbox, cached by content',
    response: s.BuildResult,
    tar: 'body',
    streamEvent: s.BuildEvent,
    query: z.object({ spec: z.string().optional().describe('the spec file in the context (default nook.json)'), stream: flag('true for application/x-ndjson BuildEvents') }),
  },
  buildImage: {
    method: 'post',
    path: '/v1/images',
    summary: 'Build an image from a preset',
    body: s.BuildImageRequest,
    response: s.Image,
    streamEvent: s.ProgressEvent,
  },
  pullImage: {
    method: 'post',
    path: '/v1/images/pull',
    summary: 'Pull an image from an OCI registry (token or basic auth, linux/amd64 from an index, every blob verified, shared blob cache)',
    body: s.PullImageRequest,
    response: s.Image,
    streamEvent: s.ProgressEvent,
  },
  getImage: { method: 'get', path: '/v1/images/{name}', summary: 'One image', response: s.Image },
  exportImage: {
    method: 'get',
    path: '/v1/images/{name}/export',
    summary: 'The image as an OCI image layout tar (sha256 digests, one gzip layer, ids mapped back to 0..65535)',
    response: s.Image,
    tar: 'response',
  },
  importImage: {
    method: 'post',
    path: '/v1/images/import',
    summary: 'A new image from an OCI image layout tar (digests verified, whiteouts honoured, device nodes refused)',
    response: s.Image,
    tar: 'body',
    query: z.object({
      name: z
        .string({ error: `give the new image a valid name (?name=): ${s.IMAGE_NAME_RULE}` })
        .regex(s.IMAGE_NAME_PATTERN, `give the new image a valid name (?name=): ${s.IMAGE_NAME_RULE}`)
        .describe('name of the new image (required)'),
    }),
  },
  removeImage: { method: 'delete', path: '/v1/images/{name}', summary: 'Remove an image no sandbox uses', response: s.Image },
  consoleLogin: {
    method: 'post',
    path: '/v1/console/login',
    summary: 'A one-time link that opens the web console logged in (short-lived, single use; needs the TCP listener)',
    response: s.ConsoleLogin,
  },
  shutdown: { method: 'post', path: '/v1/system/shutdown', summary: 'Stop the daemon (release: stop compute and unmount storage first)', body: s.ShutdownRequest, response: s.Health },
} as const satisfies Record<string, RouteDef>;

export type RouteName = keyof typeof routes;
