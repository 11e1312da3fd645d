import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { z } from 'zod';
import type { DoneReport, GcKind as GcKindSchema, RetainedItem, Usage } from '../api/schemas.js';
import { duBytes } from '../storage/common.js';
import type { StorageDriver } from '../storage/driver.js';
import type { Db } from '../store/db.js';
import type { AuditLog } from './audit.js';
import { BUILD_STEP_SOURCE, type ImageManager } from './images.js';
import { blobCacheFiles, blobInFlight } from '../oci/pull.js';
import type { NetworkManager } from './network.js';
import type { SandboxManager } from './sandboxes.js';
import type { SnapshotManager } from './snapshots.js';

type GcKind = z.infer<typeof GcKindSchema>;

interface Volumes {
  list(sandbox?: string): { name: string; id: string; state: string; sizeMiB: number; createdAt: string; mountedIn: { sandbox: string; path: string } | null }[];
  diskBytes(id: string): Promise<number>;
  unmount(ref: string, guest: string): Promise<unknown>;
  lock(name: string, force?: boolean): Promise<unknown>;
  unlockedNames(): string[];
}

/**
 * What stays after compute stops, and the end-of-job checklist. Stopping compute is not
 * erasing state: files, snapshots, images and logs remain until deleted.
 */
export class RetentionManager {
  constructor(
    private readonly db: Db,
    private readonly storage: StorageDriver,
    private readonly sandboxes: SandboxManager,
    private readonly snapshots: SnapshotManager,
    private readonly images: ImageManager,
    private readonly network: NetworkManager,
    private readonly audit: AuditLog,
    private readonly logsDir: string,
    /** done unmounts and locks them; retained lists them. */
    private readonly volumes: Volumes,
  ) {}

  private age(ms: number): number {
    return Math.round((Date.now() - ms) / 1000);
  }

  /** Every kind of state that exists, with size and age (sizes walk files: this is a report). */
  async retained(sandbox?: string): Promise<RetainedItem[]> {
    const items: RetainedItem[] = [];
    const sandboxes = this.sandboxes.list().filter((s) => !sandbox || s.name === sandbox || s.id === sandbox);
    for (const s of sandboxes) {
      items.push({ kind: 'sandbox', name: s.name, id: s.id, sizeBytes: await this.storage.sandboxSizeBytes(s.id), ageSeconds: this.age(Date.parse(s.createdAt)), detail: `${s.state}, files kept until destroyed` });
      const logs = await duBytes(join(this.logsDir, s.id));
      if (logs > 0) items.push({ kind: 'logs', name: s.name, id: s.id, sizeBytes: logs, ageSeconds: this.age(Date.parse(s.createdAt)), detail: 'background process output' });
      if (s.memory) items.push({ kind: 'memory', name: s.name, id: s.id, sizeBytes: s.memory.sizeBytes, ageSeconds: this.age(Date.parse(s.updatedAt)), detail: 'process memory of a cold-stopped sandbox; resume continues it, destroy removes it' });
    }
    for (const snap of this.snapshots.list(sandbox)) {
      items.push({ kind: 'snapshot', name: `${snap.sandbox}@${snap.name}`, id: snap.id, sizeBytes: snap.sizeBytes, ageSeconds: this.age(Date.parse(snap.createdAt)), detail: snap.sandboxExists ? 'sandbox exists' : 'its sandbox was destroyed' });
      if (snap.memoryBytes) items.push({ kind: 'memory', name: `${snap.sandbox}@${snap.name}`, id: snap.id, sizeBytes: snap.memoryBytes, ageSeconds: this.age(Date.parse(snap.createdAt)), detail: 'process memory of a snapshot; snapshot rm removes it' });
    }
    if (!sandbox) {
      // The build step cache too: it is state, and gc may drop it (a build then reruns steps).
      for (const img of this.images.list(true)) {
        const cache = img.source.startsWith(BUILD_STEP_SOURCE) ? ' (build step cache)' : '';
        items.push({ kind: 'image', name: img.name, id: img.id, sizeBytes: img.sizeBytes, ageSeconds: this.age(Date.parse(img.createdAt)), detail: img.usedBy.length ? `used by ${img.usedBy.join(', ')}${cache}` : `unused${cache}` });
      }
      await this.pushVolumesAndAudit(items);
      const blobs = await blobCacheFiles(this.images.blobDir);
      if (blobs.length > 0) {
        const oldest = Math.min(...blobs.map((b) => b.mtimeMs));
        const bytes = blobs.reduce((n, b) => n + b.bytes, 0);
        items.push({ kind: 'blobs', name: 'registry blob cache', id: this.images.blobDir, sizeBytes: bytes, ageSeconds: this.age(oldest), detail: `${blobs.length} blob(s); only speeds up later pulls (shared by every state dir on this host)` });
      }
    }
    return items;
  }

  private async pushVolumesAndAudit(items: RetainedItem[]): Promise<void> {
    for (const v of this.volumes.list()) {
      const where = v.mountedIn ? `mounted in ${v.mountedIn.sandbox} at ${v.mountedIn.path}` : 'not mounted';
      items.push({ kind: 'volume', name: v.name, id: v.id, sizeBytes: await this.volumes.diskBytes(v.id), ageSeconds: this.age(Date.parse(v.createdAt)), detail: `${v.state}, ${v.sizeMiB} MiB, ${where}; kept until nook volume rm` });
    }
    const audit = this.db.prepare('SELECT COUNT(*) AS n, MIN(at) AS oldest, SUM(LENGTH(inputs_json) + LENGTH(result_json) + LENGTH(actor) + 200) AS bytes FROM audit').get() as { n: number; oldest: number | null; bytes: number | null };
    if (audit.n > 0) {
      items.push({ kind: 'audit', name: 'audit log', id: 'audit', sizeBytes: audit.bytes ?? 0, ageSeconds: this.age(audit.oldest ?? Date.now()), detail: `${audit.n} record(s), hash-chained; kept with the state dir (gc never trims it)` });
    }
  }

  /** Deletes state older than `olderThanMs` of the given kinds (running sandboxes and images in use are kept). */
  async gc(olderThanMs: number, kinds: GcKind[], dryRun: boolean): Promise<RetainedItem[]> {
    const old = (await this.retained()).filter((i) => i.kind !== 'blobs' && i.ageSeconds * 1000 >= olderThanMs && (kinds as string[]).includes(i.kind));
    const deleted: RetainedItem[] = [];
    if (kinds.includes('blobs')) {
      // Blob by blob: each is old or not on its own; a download in flight is left alone.
      const now = Date.now();
      const gone = (await blobCacheFiles(this.images.blobDir)).filter((b) => now - b.mtimeMs >= olderThanMs && !blobInFlight(b.hex));
      if (!dryRun) for (const b of gone) await fsp.rm(b.path, { force: true });
      if (gone.length > 0) {
        const oldest = Math.min(...gone.map((b) => b.mtimeMs));
        deleted.push({ kind: 'blobs', name: 'registry blob cache', id: this.images.blobDir, sizeBytes: gone.reduce((n, b) => n + b.bytes, 0), ageSeconds: this.age(oldest), detail: `${gone.length} blob(s)` });
      }
    }
    for (const item of old) {
      if (item.kind === 'sandbox') {
        const s = this.sandboxes.find(item.id);
        if (!s || s.state !== 'paused') continue;
        if (!dryRun) await this.sandboxes.destroy(item.id);
      } else if (item.kind === 'snapshot') {
        const [sb, ...rest] = item.name.split('@');
        if (!dryRun) await this.snapshots.remove(sb ?? '', rest.join('@'));
      } else if (item.kind === 'image') {
        if (!item.detail.startsWith('unused')) continue;
        if (this.db.prepare('SELECT 1 FROM snapshots WHERE image_id = ?').get(item.id)) continue;
        if (!dryRun) await this.images.remove(item.id);
      } else {
        continue; // logs go with their sandbox
      }
      deleted.push(item);
    }
    return deleted;
  }

  /** The checklist before a stateful sandbox is called done (mvm's list). */
  async done(ref: string): Promise<DoneReport> {
    const sb = this.sandboxes.record(ref);
    // Volumes first: stopping compute would drop their mounts and forget who held them.
    const volumesLocked: string[] = [];
    for (const v of this.volumes.list(sb.id)) {
      if (v.mountedIn) await this.volumes.unmount(sb.id, v.mountedIn.path);
      await this.volumes.lock(v.name);
      volumesLocked.push(v.name);
    }
    let stopped = false;
    if (sb.state === 'running') {
      await this.sandboxes.stop(sb.id);
      stopped = true;
    }
    const unexposed: number[] = [];
    if (this.sandboxes.find(sb.id)) {
      for (const e of this.network.exposures(sb.id)) {
        await this.network.unexpose(sb.id, e.port);
        unexposed.push(e.port);
      }
    }
    const unlockedVolumes = this.volumes.unlockedNames();
    const snapshots = this.snapshots.list(sb.id).map((s) => ({ name: s.name, id: s.id, createdAt: s.createdAt }));
    const receipts = this.audit.list({ sandbox: sb.id, limit: 100_000 }).map((r) => r.id);
    const remaining = this.sandboxes.find(sb.id) ? await this.retained(sb.id) : [];
    return { sandbox: sb.name, stopped, unexposed, volumesLocked, unlockedVolumes, snapshots, receipts, remaining, clean: unlockedVolumes.length === 0 };
  }

  async usage(ref: string): Promise<Usage> {
    const sb = this.sandboxes.record(ref);
    let snapshotBytes = 0;
    for (const s of this.snapshots.list(sb.id)) snapshotBytes += s.sizeBytes ?? 0;
    return {
      sandbox: sb.name,
      computeSeconds: Math.round(this.sandboxes.computeMs(sb.id) / 100) / 10,
      storedBytes: { files: await this.storage.sandboxSizeBytes(sb.id), snapshots: snapshotBytes, logs: await duBytes(join(this.logsDir, sb.id)) },
      disk: { usedBytes: (await this.storage.diskUsage(sb.id))?.usedBytes ?? null, limitMiB: sb.spec.limits.diskMiB ?? null },
      live: sb.state === 'running' ? await this.sandboxes.liveStats(sb.id) : null,
    };
  }
}
