/**
 * Wire schemas: the single source for request validation in the daemon, the SDK's types
 * and the OpenAPI document (see openapi.ts). Units are in the names (timeoutMs, memoryMiB).
 */
export * from './schemas/common.js';
export * from './schemas/sandboxes.js';
export * from './schemas/exec.js';
export * from './schemas/images.js';
export * from './schemas/system.js';
export * from './schemas/snapshots.js';
export * from './schemas/network.js';
export * from './schemas/processes.js';
export * from './schemas/records.js';
export * from './schemas/files.js';
export * from './schemas/volumes.js';
export * from './schemas/pool.js';
export * from './schemas/desktop.js';
