/** Every resource's routes; buildApp registers them in this order. */
import type { Hono } from 'hono';
import type { RouteDeps } from './deps.js';
import * as audit from './audit.js';
import * as desktop from './desktop.js';
import * as exec from './exec.js';
import * as files from './files.js';
import * as images from './images.js';
import * as network from './network.js';
import * as policy from './policy.js';
import * as processes from './processes.js';
import * as retention from './retention.js';
import * as sandboxes from './sandboxes.js';
import * as snapshots from './snapshots.js';
import * as system from './system.js';
import * as volumes from './volumes.js';

export const resources: { register: (app: Hono, deps: RouteDeps) => void }[] = [system, audit, sandboxes, snapshots, exec, network, processes, retention, policy, files, volumes, images, desktop];
export type { AppOptions, RouteDeps } from './deps.js';
