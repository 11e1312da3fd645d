import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { DEFAULTS, Preset, type Image } from '../api/schemas.js';
import { ID_MAP } from '../runtime/oci-config.js';
import { duBytes, insideWithoutSymlinks } from '../storage/common.js';
import type { StorageDriver } from '../storage/driver.js';
import type { Db } from '../store/db.js';
import { newId } from '../util/ids.js';
import { log } from '../util/log.js';
import { run } from '../util/proc.js';
import type { AuditLog } from './audit.js';
import { applyLayout, buildLayout } from './oci-layout.js';
import { PRESETS, PRESET_ENV, type ProgressFn } from './presets.js';

interface ImageRow {
  id: string;
  name: string;
  preset: string | null;
  state: 'building' | 'ready';
  size_bytes: number;
  created_at: number;
  config_json: string;
}

export interface ImageConfig {
  env: Record<string, string>;
  /** Default working directory for sandboxes of this image (else /work). */
  cwd?: string;
}

export class ImageManager {
  /** The audit log: builds and imports note what they made on their record. */
  audit: AuditLog | undefined;
  /** Builds in flight by image name: a second request for the same name waits for the first. */
  private readonly building = new Map<string, Promise<Image>>();

  constructor(
    private readonly db: Db,
    private readonly storage: StorageDriver,
    private readonly cacheDir: string,
  ) {}

  private usedBy(imageId: string): string[] {
    return (this.db.prepare('SELECT name FROM sandboxes WHERE image_id = ? ORDER BY name').all(imageId) as { name: string }[]).map((r) => r.name);
  }

  private toImage(row: ImageRow): Image {
    return {
      id: row.id,
      name: row.name,
      preset: row.preset,
      state: row.state,
      sizeBytes: row.size_bytes,
      createdAt: new Date(row.created_at).toISOString(),
      usedBy: this.usedBy(row.id),
    };
  }

  private row(ref: string): ImageRow | undefined {
    return this.db.prepare('SELECT * FROM images WHERE name = ? OR id = ?').get(ref, ref) as ImageRow | undefined;
  }

  list(): Image[] {
    return (this.db.prepare("SELECT * FROM images WHERE state = 'ready' ORDER BY name").all() as ImageRow[]).map((r) => this.toImage(r));
  }

  get(ref: string): Image {
    const row = this.row(ref);
    if (!row || row.state !== 'ready') throw notFound(ref);
    return this.toImage(row);
  }

  config(imageId: string): ImageConfig {
    const row = this.db.prepare('SELECT config_json FROM images WHERE id = ?').get(imageId) as { config_json: string } | undefined;
    const parsed = row ? (JSON.parse(row.config_json) as Partial<ImageConfig>) : {};
    return { env: { ...PRESET_ENV, ...(parsed.env ?? {}) }, ...(parsed.cwd ? { cwd: parsed.cwd } : {}) };
  }

  /** The image named `ref`, built first when it is a preset name that was never built. */
  async ensure(ref: string, progress: ProgressFn = () => undefined): Promise<Image> {
    const row = this.row(ref);
    if (row?.state === 'ready') return this.toImage(row);
    const preset = Preset.safeParse(ref);
    if (!preset.success) throw notFound(ref);
    return this.build({ preset: preset.data, name: ref }, progress);
  }

  build(req: { preset: Preset; name?: string; rebuild?: boolean }, progress: ProgressFn = () => undefined): Promise<Image> {
    const name = req.name ?? req.preset;
    const inFlight = this.building.get(name);
    if (inFlight) return inFlight;
    const job = this.doBuild(req.preset, name, req.rebuild ?? false, progress).finally(() => this.building.delete(name));
    this.building.set(name, job);
    return job;
  }

  private async doBuild(preset: Preset, name: string, rebuild: boolean, progress: ProgressFn): Promise<Image> {
    const existing = this.row(name);
    if (existing?.state === 'ready') {
      if (!rebuild) {
        progress('done', 100, `image ${name} already exists`);
        return this.toImage(existing);
      }
      await this.remove(name);
    }
    const id = newId('img');
    const now = Date.now();
    this.db
      .prepare("INSERT INTO images (id, name, preset, state, size_bytes, created_at, config_json) VALUES (?, ?, ?, 'building', 0, ?, ?)")
      .run(id, name, preset, now, JSON.stringify({ env: PRESET_ENV }));
    try {
      const target = await this.storage.createImageStaging(id);
      await PRESETS[preset]({ target, cacheDir: this.cacheDir, progress });
      await addInitMountPoint(target);
      progress('seal', 96, 'sealing the image read-only');
      const sizeBytes = await duBytes(target);
      await this.storage.commitImage(id);
      this.db.prepare("UPDATE images SET state = 'ready', size_bytes = ? WHERE id = ?").run(sizeBytes, id);
      progress('done', 100, `image ${name} ready`);
      log('image built', { name, id, preset, sizeBytes, ms: Date.now() - now });
      this.audit?.note({ image: { id, name, preset, sizeBytes } });
      return this.get(id);
    } catch (e) {
      await this.storage.discardImageStaging(id).catch(() => undefined);
      this.db.prepare('DELETE FROM images WHERE id = ?').run(id);
      if (e instanceof NookError) throw e;
      throw new NookError('IMAGE_BUILD_FAILED', `building image ${name} from preset ${preset} failed: ${(e as Error).message}`);
    }
  }

  /**
   * A new image named `name` whose files `fill(imageId)` writes through the storage
   * driver (commit, import). Recorded as building first, so a crash leaves nothing half-made.
   */
  async createFrom(name: string, config: ImageConfig, fill: (imageId: string) => Promise<ImageConfig | void>, preset: string | null = null): Promise<Image> {
    if (this.row(name)) throw new NookError('NAME_TAKEN', `an image named ${name} already exists`, { hint: `choose another name, or remove it: nook image rm ${name}` });
    const id = newId('img');
    const now = Date.now();
    this.db
      .prepare("INSERT INTO images (id, name, preset, state, size_bytes, created_at, config_json) VALUES (?, ?, ?, 'building', 0, ?, ?)")
      .run(id, name, preset, now, JSON.stringify(config));
    try {
      const filled = await fill(id);
      if (filled) this.db.prepare('UPDATE images SET config_json = ? WHERE id = ?').run(JSON.stringify(filled), id);
    } catch (e) {
      this.db.prepare('DELETE FROM images WHERE id = ?').run(id);
      await this.storage.deleteImage(id).catch(() => undefined);
      await this.storage.discardImageStaging(id).catch(() => undefined);
      throw e;
    }
    this.db.prepare("UPDATE images SET state = 'ready', size_bytes = ? WHERE id = ?").run(await duBytes(this.storage.imagePath(id)), id);
    log('image created', { name, id, ms: Date.now() - now });
    return this.get(id);
  }

  /** Writes the image as an OCI image layout tar into a fresh directory under tmpDir. */
  async exportLayout(ref: string, tmpDir: string): Promise<{ file: string; cleanup: () => Promise<void> }> {
    const image = this.get(ref);
    const config = this.config(image.id);
    await fsp.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const dir = await fsp.mkdtemp(join(tmpDir, 'export-'));
    const cleanup = (): Promise<void> => fsp.rm(dir, { recursive: true, force: true });
    try {
      const layout = join(dir, 'layout');
      await buildLayout(this.storage.imagePath(image.id), layout, { name: image.name, env: config.env, cwd: config.cwd ?? DEFAULTS.cwd });
      const file = join(dir, `${image.name}.oci.tar`);
      await run(['tar', '--numeric-owner', '--owner=0', '--group=0', '-C', layout, '-cf', file, '.']);
      return { file, cleanup };
    } catch (e) {
      await cleanup();
      throw e;
    }
  }

  /** A new image from an OCI image layout tar (e.g. one `exportLayout` wrote). */
  async importLayout(name: string, tarFile: string, tmpDir: string): Promise<Image> {
    await fsp.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const dir = await fsp.mkdtemp(join(tmpDir, 'import-'));
    try {
      const layout = join(dir, 'layout');
      await fsp.mkdir(layout);
      // The outer archive holds only JSON and blobs: plain files, owned by root, no devices.
      const listed = await run(['tar', '-tvf', tarFile], { allowFail: true });
      if (listed.code !== 0) throw new NookError('INVALID_ARGUMENT', 'the file is not a tar archive', { hint: 'give an OCI image layout tar (nook image export writes one)' });
      if (listed.stdout.split('\n').some((l) => /^[cbl]/.test(l))) throw new NookError('INVALID_ARGUMENT', 'an OCI layout archive must hold only files and directories');
      await run(['tar', '-xf', tarFile, '-C', layout, '--no-same-owner', '--no-same-permissions']);
      return await this.createFrom(name, { env: PRESET_ENV }, async (imageId) => {
        const staging = await this.storage.createImageStaging(imageId);
        const declared = await applyLayout(layout, staging);
        this.audit?.note({ image: { id: imageId, name, manifestDigest: declared.manifestDigest } });
        await addInitMountPoint(staging);
        if (declared.cwd) {
          // Like container builders, make the declared working directory if the layers lack it.
          const found = await insideWithoutSymlinks(staging, declared.cwd, 'working directory');
          if (!found.exists) {
            await fsp.mkdir(found.dir, { recursive: true, mode: 0o755 });
            await fsp.chown(found.dir, ID_MAP.hostId, ID_MAP.hostId);
          }
        }
        await this.storage.commitImage(imageId);
        return { env: { ...PRESET_ENV, ...declared.env }, ...(declared.cwd ? { cwd: declared.cwd } : {}) };
      });
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  async remove(ref: string): Promise<Image> {
    const row = this.row(ref);
    if (!row || row.state !== 'ready') throw notFound(ref);
    const users = this.usedBy(row.id);
    if (users.length > 0) {
      throw new NookError('IMAGE_IN_USE', `image ${row.name} is used by ${users.length} sandbox(es): ${users.join(', ')}`, {
        hint: `destroy them first (nook destroy ${users[0]})`,
        context: { sandboxes: users },
      });
    }
    const snaps = (this.db.prepare("SELECT sandbox_name || '@' || name AS ref FROM snapshots WHERE image_id = ?").all(row.id) as { ref: string }[]).map((r) => r.ref);
    if (snaps.length > 0) {
      throw new NookError('IMAGE_IN_USE', `image ${row.name} is needed by ${snaps.length} snapshot(s): ${snaps.join(', ')}`, {
        hint: 'delete those snapshots first (nook snapshot rm SANDBOX NAME)',
        context: { snapshots: snaps },
      });
    }
    const image = this.toImage(row);
    await this.storage.deleteImage(row.id);
    this.db.prepare('DELETE FROM images WHERE id = ?').run(row.id);
    return image;
  }

  /** Startup: drop half-built images and pool images the database does not list. */
  async reconcile(): Promise<void> {
    const rows = this.db.prepare('SELECT id, state FROM images').all() as { id: string; state: string }[];
    for (const r of rows.filter((r) => r.state === 'building')) {
      this.db.prepare('DELETE FROM images WHERE id = ?').run(r.id);
      log('reconcile: dropped half-built image', { id: r.id });
    }
    for (const id of await this.storage.listStaging()) await this.storage.discardImageStaging(id);
    const known = new Set(rows.filter((r) => r.state === 'ready').map((r) => r.id));
    for (const id of await this.storage.listImages()) {
      if (!known.has(id)) {
        await this.storage.deleteImage(id);
        log('reconcile: removed unlisted image', { id });
      }
    }
    for (const id of known) {
      if (!(await this.storage.listImages()).includes(id)) {
        this.db.prepare('DELETE FROM images WHERE id = ?').run(id);
        log('reconcile: dropped image missing from storage', { id });
      }
    }
  }
}

/** The mount point for nook-init, made at build time so starting a sandbox never writes its rootfs. */
async function addInitMountPoint(root: string): Promise<void> {
  const dir = join(root, '.nook');
  const st = await fsp.lstat(dir).catch(() => null);
  if (st && !st.isDirectory()) await fsp.rm(dir, { force: true });
  await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
  await fsp.chown(dir, ID_MAP.hostId, ID_MAP.hostId);
}

function notFound(ref: string): NookError {
  return new NookError('IMAGE_NOT_FOUND', `no image named ${ref}`, { hint: `build one: nook image build --preset ${Preset.options.join('|')}` });
}
