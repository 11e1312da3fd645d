import { NookError } from '../api/errors.js';
import type { RuntimeDriver, StartSpec } from '../runtime/driver.js';
import type { StorageDriver } from '../storage/driver.js';
import { log } from '../util/log.js';
import type { ComputeLifecycle } from './lifecycle.js';
import type { MemoryImages } from './memory.js';
import type { SandboxRecord } from './sandbox-model.js';
import type { SandboxStore } from './sandbox-store.js';

/** What cold mode needs of the sandbox manager (which holds the sandbox's lock around each call). */
export interface ColdDeps {
  runtime: RuntimeDriver;
  storage: StorageDriver;
  memory: MemoryImages;
  lifecycle: ComputeLifecycle;
  store: SandboxStore;
  startSpec(sb: SandboxRecord): Promise<StartSpec>;
  stopCompute(id: string): Promise<void>;
}

/**
 * Cold mode: a sandbox's processes, with their memory, saved to disk (gVisor checkpoints)
 * and brought back later or elsewhere. Cold stop keeps them across stop and resume; a
 * memory snapshot or fork checkpoints, copies the files while nothing runs, and restores
 * the original in place, so it goes on from the same instant as every copy.
 */
export class ColdCompute {
  constructor(private readonly d: ColdDeps) {}

  /** NOT_SUPPORTED (naming --runtime gvisor) unless the sandbox's backend saves memory. */
  need(id: string, name: string, persistent: boolean): void {
    const info = this.d.runtime.info(id);
    if (!info.memorySnapshots) {
      throw new NookError('NOT_SUPPORTED', `the ${info.name} runtime of ${name} cannot save process memory`, {
        hint: 'leave out --memory (files are kept and processes restart), or create the sandbox with --runtime gvisor',
      });
    }
    if (!persistent) {
      throw new NookError('INVALID_ARGUMENT', `${name} is not persistent: stopping destroys it, so there is nothing to keep its memory for`, {
        hint: 'create it with persistent: true (the default) to use stop --memory',
      });
    }
  }

  /**
   * Compute down with its memory kept (state `stopping`, under the lock). Commands still
   * attached refuse it before anything changed; any other failure leaves the sandbox
   * stopped with its files, without memory.
   */
  async stop(id: string): Promise<void> {
    await this.d.lifecycle.down(id);
    const tmp = await this.d.memory.scratch();
    try {
      await this.d.runtime.checkpoint(id, tmp);
      await this.d.memory.commit(tmp, id);
    } catch (e) {
      await this.d.memory.remove(tmp);
      if (e instanceof NookError && e.code === 'INVALID_STATE') {
        // Nothing was saved nor stopped: the sandbox runs on as before.
        await this.d.lifecycle.up(id);
        this.d.store.setState(id, 'running');
        throw e;
      }
      await this.d.stopCompute(id);
      this.d.store.setState(id, 'paused', { expiresAt: null });
      throw new NookError('RUNTIME_ERROR', `the process memory could not be saved (${(e as Error).message}); the sandbox is stopped with its files`, { hint: 'resume it to start its processes afresh' });
    }
    await this.d.stopCompute(id);
  }

  /**
   * Checkpoints the running sandbox, runs `fn` while nothing runs (its files are quiet),
   * then restores it in place from the image `fn` says it kept: its processes go on.
   * State is `snapshotting` meanwhile. The image is the caller's to keep or remove.
   */
  async around<T>(sb: SandboxRecord, fn: (image: string) => Promise<{ value: T; image: string }>): Promise<T> {
    if (sb.state !== 'running') {
      throw new NookError('INVALID_STATE', `${sb.name} is ${sb.state}: only a running sandbox has process memory to save`, { hint: `resume it first: nook resume ${sb.name}` });
    }
    this.need(sb.id, sb.name, true);
    const tmp = await this.d.memory.scratch();
    this.d.store.setState(sb.id, 'snapshotting');
    try {
      await this.d.runtime.checkpoint(sb.id, tmp);
    } catch (e) {
      await this.d.memory.remove(tmp);
      if (e instanceof NookError && e.code === 'INVALID_STATE') {
        this.d.store.setState(sb.id, 'running');
        throw e;
      }
      await this.d.stopCompute(sb.id).catch(() => undefined);
      this.d.store.setState(sb.id, 'paused', { expiresAt: null });
      throw new NookError('RUNTIME_ERROR', `the process memory of ${sb.name} could not be saved (${(e as Error).message}); it is stopped with its files`, { hint: `nook resume ${sb.name}` });
    }
    let image = tmp;
    try {
      const r = await fn(tmp);
      image = r.image;
      return r.value;
    } catch (e) {
      await this.d.memory.remove(tmp);
      throw e;
    } finally {
      await this.restoreInPlace(sb, image);
    }
  }

  private async restoreInPlace(sb: SandboxRecord, image: string): Promise<void> {
    try {
      await this.d.runtime.start({ ...(await this.d.startSpec(sb)), memoryImage: image });
      this.d.store.setState(sb.id, 'running');
    } catch (e) {
      log('cold: restore in place failed', { id: sb.id, error: (e as Error).message });
      await this.d.stopCompute(sb.id).catch(() => undefined);
      this.d.store.setState(sb.id, 'paused', { expiresAt: null });
      throw new NookError('RUNTIME_ERROR', `${sb.name} could not continue after its checkpoint (${(e as Error).message}); it is paused with its files`, { hint: `nook resume ${sb.name}` });
    }
  }
}
