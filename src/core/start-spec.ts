/** What the runtime needs to start a sandbox's compute: shared by a normal create and the warm pool. */
import { NookError } from '../api/errors.js';
import type { Limits } from '../api/schemas.js';
import type { RuntimeDriver, RuntimeKind, StartSpec } from '../runtime/driver.js';
import type { StorageDriver } from '../storage/driver.js';
import type { ImageManager } from './images.js';

/**
 * Activates the rootfs and builds the start spec. PID 1 gets the image's environment only:
 * every command is given the sandbox's own env explicitly (SandboxManager.commandEnv), so
 * nothing a caller set sits in PID 1's environ, and a sandbox started ahead of its caller
 * (the warm pool) looks the same from inside as one started for it.
 */
export async function startSpecFor(
  storage: StorageDriver,
  images: ImageManager,
  sb: { id: string; hostname: string; imageId: string; limits: Limits; persist: string[]; runtime?: RuntimeKind | undefined },
): Promise<StartSpec> {
  const rootfs = await storage.activateRootfs(sb.id);
  const dirs = await storage.persistDirs(sb.id);
  const mounts = sb.persist.map((destination, i) => ({ destination, source: dirs[i] ?? '' })).filter((m) => m.source !== '');
  if (mounts.length !== sb.persist.length) throw new NookError('STORAGE_ERROR', `persisted directories of ${sb.hostname} are missing`);
  return { sandboxId: sb.id, hostname: sb.hostname, rootfs, env: { ...images.config(sb.imageId).env }, limits: sb.limits, mounts, ...(sb.runtime ? { runtime: sb.runtime } : {}) };
}

/** The backend a new sandbox runs on: the one asked for (or its source's), else the host default. */
export function runtimeKind(runtime: RuntimeDriver, asked: RuntimeKind | undefined): RuntimeKind {
  const host = runtime.info();
  const kind = asked ?? host.kind;
  if (!host.available.includes(kind)) {
    throw new NookError('NOT_SUPPORTED', `this host has no ${kind} runtime`, {
      hint: kind === 'gvisor' ? 'install gVisor (apt-get install runsc) and restart nookd, or leave out --runtime gvisor' : 'apt-get install crun',
    });
  }
  return kind;
}
