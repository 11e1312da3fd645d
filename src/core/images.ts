import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { DEFAULTS, IMAGE_NAME_PATTERN, IMAGE_NAME_RULE, Preset, type Image, type PullPolicy } from '../api/schemas.js';
import { ID_MAP } from '../util/id-map.js';
import { duBytes, insideWithoutSymlinks } from '../storage/common.js';
import type { StorageDriver } from '../storage/driver.js';
import type { Db } from '../store/db.js';
import { newId } from '../util/ids.js';
import { log } from '../util/log.js';
import { run } from '../util/proc.js';
import { UndoStack } from '../util/undo.js';
import type { AuditLog } from './audit.js';
import { poolSizeOf } from './pool.js';
import type { RegistryCredentials } from '../oci/registry-client.js';
import { defaultLocalName, formatReference, isRegistryReference, parseReference, type ImageReference } from '../oci/reference.js';
import { applyListed } from '../oci/layers.js';
import { applyDockerArchive, applyLayout, unpackImageArchive, type UnpackedImage } from '../oci/layout.js';
import { writeOciArchive } from '../oci/export.js';
import { planPull } from '../oci/pull.js';
import { PRESETS, PRESET_ENV, type ProgressFn } from '../oci/presets.js';

/** Image jobs report progress through this (re-exported so the daemon needs nothing from oci/). */
export type { ProgressFn };

interface ImageRow {
  id: string;
  name: string;
  preset: string | null;
  state: 'building' | 'ready';
  size_bytes: number;
  created_at: number;
  config_json: string;
}

/** The source of the build step cache's images (hidden from image ls unless --all). */
export const BUILD_STEP_SOURCE = 'build-step:';

export interface ImageConfig {
  env: Record<string, string>;
  /** Default working directory for sandboxes of this image (else /work). */
  cwd?: string;
  /** Default user for commands (the image config's User). */
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
  /** Where the image came from (see Image.source). */
  source?: string;
  digest?: string;
  layers?: { digest: string; sizeBytes: number }[];
  /** For images built from a spec: the spec's digest, so `up` knows when to rebuild. */
  specDigest?: string;
}

export class ImageManager {
  /** Builds in flight by image name: a second request for the same name waits for the first. */
  private readonly building = new Map<string, Promise<Image>>();

  constructor(
    private readonly db: Db,
    private readonly storage: StorageDriver,
    private readonly cacheDir: string,
    /** Builds and imports note what they made on their audit record. */
    private readonly audit: AuditLog,
  ) {}

  /** After an image is removed or made: the warm pool drops members of what is gone now, not at the next create. */
  onChange: () => void = () => undefined;

  /** The shared registry blob cache. */
  get blobDir(): string {
    return join(this.cacheDir, 'blobs', 'sha256');
  }

  private usedBy(imageId: string): string[] {
    return (this.db.prepare('SELECT name FROM sandboxes WHERE image_id = ? ORDER BY name').all(imageId) as { name: string }[]).map((r) => r.name);
  }

  private toImage(row: ImageRow): Image {
    const c = parseConfig(row.config_json);
    return {
      id: row.id,
      name: row.name,
      preset: row.preset,
      state: row.state,
      sizeBytes: row.size_bytes,
      createdAt: new Date(row.created_at).toISOString(),
      usedBy: this.usedBy(row.id),
      source: c.source ?? (row.preset ? `preset:${row.preset}` : 'local'),
      digest: c.digest ?? null,
      layers: c.layers ?? [],
      config: { env: { ...PRESET_ENV, ...c.env }, cwd: c.cwd ?? null, user: c.user ?? null, entrypoint: c.entrypoint ?? [], cmd: c.cmd ?? [] },
    };
  }

  private row(ref: string): ImageRow | undefined {
    return this.db.prepare('SELECT * FROM images WHERE name = ? OR id = ?').get(ref, ref) as ImageRow | undefined;
  }

  /** Ready images; the build step cache's only with `all`. */
  list(all = false): Image[] {
    const images = (this.db.prepare("SELECT * FROM images WHERE state = 'ready' ORDER BY name").all() as ImageRow[]).map((r) => this.toImage(r));
    return all ? images : images.filter((i) => !i.source.startsWith(BUILD_STEP_SOURCE));
  }

  /** Gives an image another name (a rebuild keeps the old one under a new name while in use). */
  rename(ref: string, name: string): Image {
    const row = this.row(ref);
    if (!row || row.state !== 'ready') throw notFound(ref);
    if (this.row(name)) throw new NookError('NAME_TAKEN', `an image named ${name} already exists`);
    this.db.prepare('UPDATE images SET name = ? WHERE id = ?').run(name, row.id);
    return this.get(row.id);
  }

  find(ref: string): Image | undefined {
    const row = this.row(ref);
    return row?.state === 'ready' ? this.toImage(row) : undefined;
  }

  get(ref: string): Image {
    const row = this.row(ref);
    if (!row || row.state !== 'ready') throw notFound(ref);
    return this.toImage(row);
  }

  config(imageId: string): ImageConfig {
    const row = this.db.prepare('SELECT config_json FROM images WHERE id = ?').get(imageId) as { config_json: string } | undefined;
    const parsed = parseConfig(row?.config_json ?? '{}');
    return { ...parsed, env: { ...PRESET_ENV, ...parsed.env } };
  }

  /** The image named `ref`, built first when it is a preset name that was never built. */
  async ensure(ref: string, progress: ProgressFn = () => undefined, policy: PullPolicy = 'missing'): Promise<Image> {
    if (isRegistryReference(ref)) return this.pull({ reference: ref, policy }, progress);
    const row = this.row(ref);
    if (row?.state === 'ready') return this.toImage(row);
    const preset = Preset.safeParse(ref);
    if (!preset.success || policy === 'never') throw notFound(ref);
    return this.build({ preset: preset.data, name: ref }, progress);
  }

  /** The newest ready image pulled from `source` (a formatted reference). */
  private bySource(source: string): Image | undefined {
    return this.list(true)
      .filter((i) => i.source === source)
      .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0];
  }

  /** The default local name for a pull, or a variant of it when that name holds another image. */
  private freeName(ref: ImageReference, source: string): string {
    const name = defaultLocalName(ref);
    const taken = this.row(name);
    if (!taken || this.toImage(taken).source === source) return name;
    const [base = name, tag] = name.split(':');
    const hash = createHash('sha256').update(source).digest('hex').slice(0, 8);
    return `${base.slice(0, 54)}-${hash}${tag ? `:${tag}` : ''}`;
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
      await this.removeUnused(name);
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
      this.onChange();
      progress('done', 100, `image ${name} ready`);
      log('image built', { name, id, preset, sizeBytes, ms: Date.now() - now });
      this.audit.note({ image: { id, name, preset, sizeBytes } });
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
    const undo = new UndoStack();
    this.db
      .prepare("INSERT INTO images (id, name, preset, state, size_bytes, created_at, config_json) VALUES (?, ?, ?, 'building', 0, ?, ?)")
      .run(id, name, preset, now, JSON.stringify(config));
    undo.push('the image record', () => void this.db.prepare('DELETE FROM images WHERE id = ?').run(id));
    // fill may have staged files, or committed them: both go.
    undo.push('the committed image', () => this.storage.deleteImage(id));
    undo.push('the image staging', () => this.storage.discardImageStaging(id));
    try {
      const filled = await fill(id);
      if (filled) this.db.prepare('UPDATE images SET config_json = ? WHERE id = ?').run(JSON.stringify(filled), id);
    } catch (e) {
      await undo.rollback((msg) => log('image create', { name, msg }));
      throw e;
    }
    this.db.prepare("UPDATE images SET state = 'ready', size_bytes = ? WHERE id = ?").run(await duBytes(this.storage.imagePath(id)), id);
    this.onChange();
    log('image created', { name, id, ms: Date.now() - now });
    return this.get(id);
  }

  /** The image as an OCI layout tar in a fresh dir under tmpDir; below `floorBytes` free there: NO_SPACE, nothing left. */
  async exportLayout(ref: string, tmpDir: string, floorBytes: number): Promise<{ file: string; cleanup: () => Promise<void> }> {
    const image = this.get(ref);
    const config = this.config(image.id);
    await fsp.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const dir = await fsp.mkdtemp(join(tmpDir, 'export-'));
    const cleanup = (): Promise<void> => fsp.rm(dir, { recursive: true, force: true });
    try {
      const file = join(dir, `${image.name}.oci.tar`);
      await writeOciArchive(this.storage.imagePath(image.id), file, { name: image.name, env: config.env, cwd: config.cwd ?? DEFAULTS.cwd, user: config.user ?? null, entrypoint: config.entrypoint ?? [], cmd: config.cmd ?? [] }, floorBytes);
      return { file, cleanup };
    } catch (e) {
      await cleanup();
      throw e;
    }
  }

  /** A new image from an OCI image layout tar or a `docker save` archive. */
  async importLayout(name: string, tarFile: string, tmpDir: string): Promise<Image> {
    await fsp.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const dir = await fsp.mkdtemp(join(tmpDir, 'import-'));
    try {
      const layout = join(dir, 'layout');
      await fsp.mkdir(layout);
      const kind = await unpackImageArchive(tarFile, layout);
      return await this.createUnpacked(name, async (staging) => {
        const u = kind === 'oci-layout' ? await applyLayout(layout, staging) : await applyDockerArchive(layout, staging);
        return configOf(u, `import:${kind}`);
      });
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  /** A new image from an uploaded archive: `receive` writes it to a private file in tmpDir, removed afterwards. */
  async importUpload(name: string, tmpDir: string, receive: (file: string) => Promise<void>): Promise<Image> {
    await fsp.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const file = join(tmpDir, `upload-${newId('u')}.tar`);
    try {
      await receive(file);
      return await this.importLayout(name, file, tmpDir);
    } finally {
      await fsp.rm(file, { force: true });
    }
  }

  /**
   * Pulls `reference` from its registry. A pull of a name that already holds the same
   * digest answers with that image; a different digest needs `replace`.
   */
  async pull(req: { reference: string; name?: string; auth?: RegistryCredentials; replace?: boolean; policy?: PullPolicy }, progress: ProgressFn = () => undefined): Promise<Image> {
    const ref = parseReference(req.reference);
    const here = req.policy ? this.bySource(formatReference(ref)) : undefined;
    if (here && req.policy !== 'always' && (!req.name || req.name === here.name)) {
      progress('done', 100, `${here.name} (pulled from ${req.reference} before)`);
      return here;
    }
    if (req.policy === 'never') {
      throw new NookError('IMAGE_NOT_FOUND', `${req.reference} was never pulled here, and the pull policy is never`, { hint: `pull it first (nook image pull ${req.reference}), or use --pull missing` });
    }
    if (req.policy === 'always') req = { ...req, replace: true };
    const name = req.name ?? here?.name ?? (req.policy ? this.freeName(ref, formatReference(ref)) : defaultLocalName(ref));
    if (!IMAGE_NAME_PATTERN.test(name)) {
      throw new NookError('INVALID_NAME', `the local name ${name} is not valid: ${IMAGE_NAME_RULE}`, { hint: 'give one with --name' });
    }
    const source = formatReference(ref);
    const plan = await planPull(ref, req.auth, this.blobDir, progress);
    const existing = this.row(name);
    if (existing?.state === 'ready') {
      if (parseConfig(existing.config_json).digest === plan.digest) {
        progress('done', 100, `${name} is up to date (${plan.digest.slice(0, 19)})`);
        return this.toImage(existing);
      }
      if (!req.replace) {
        throw new NookError('NAME_TAKEN', `an image named ${name} already exists with other contents`, { hint: `pull with --replace, or choose another --name` });
      }
    }
    const layers = plan.start();
    try {
      if (existing?.state === 'ready') {
        // The older image goes aside only once every byte of the new one is here and verified.
        await layers.all();
        await this.replaceAside(name, parseConfig(existing.config_json).digest);
      }
      const image = await this.createUnpacked(name, async (staging) => {
        // Layer i is applied once verified, while the layers above it still download.
        await applyListed(staging, plan.layers.length, (i) => layers.layer(i), (i) => layers.unpacking(i));
        return configOf({ digest: plan.digest, defaults: plan.defaults, layers: plan.layers }, source);
      });
      progress('done', 100, `${name} ${plan.digest.slice(0, 19)}`);
      return image;
    } catch (e) {
      await layers.cancel();
      throw e;
    }
  }

  /** Frees `name` for a newer pull: removed, or renamed NAME-DIGEST while sandboxes or snapshots still use it. */
  private async replaceAside(name: string, digest: string | null | undefined): Promise<void> {
    const row = this.row(name);
    if (!row) return;
    if (this.usedBy(row.id).length === 0 && !this.db.prepare('SELECT 1 FROM snapshots WHERE image_id = ?').get(row.id)) {
      await this.removeUnused(name);
      return;
    }
    const [base = name, tag] = name.split(':');
    this.rename(row.id, `${base.slice(0, 50)}-${(digest ?? row.id).replace(/^sha256:/, '').slice(0, 12)}${tag ? `:${tag}` : ''}`);
  }

  /** A new image whose files `unpack` writes into a staging dir; it returns the config. */
  private createUnpacked(name: string, unpack: (staging: string) => Promise<ImageConfig>): Promise<Image> {
    return this.createFrom(name, { env: PRESET_ENV }, async (imageId) => {
      const staging = await this.storage.createImageStaging(imageId);
      const config = await unpack(staging);
      this.audit.note({ image: { id: imageId, name, source: config.source, digest: config.digest } });
      await addInitMountPoint(staging);
      if (config.cwd) {
        // Like container builders, make the declared working directory if the layers lack it.
        const found = await insideWithoutSymlinks(staging, config.cwd, 'working directory');
        if (!found.exists) {
          await fsp.mkdir(found.dir, { recursive: true, mode: 0o755 });
          await fsp.chown(found.dir, ID_MAP.hostId, ID_MAP.hostId);
        }
      }
      await this.storage.commitImage(imageId);
      return config;
    });
  }

  /** `image rm`: also refused while a warm pool keeps the image (the pool would start it again at once). */
  async remove(ref: string): Promise<Image> {
    const name = this.row(ref)?.name ?? ref, pooled = poolSizeOf(this.db, name);
    if (pooled > 0) throw new NookError('IMAGE_IN_USE', `image ${name} has a warm pool of ${pooled}`, { hint: `drain the pool first (nook config set pool.${name} 0)`, context: { pool: pooled } });
    return this.removeUnused(ref);
  }

  /** Removes an image no sandbox or snapshot uses (a rebuild or a newer pull replaces a pooled one: the pool restarts on it). */
  private async removeUnused(ref: string): Promise<Image> {
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
    this.onChange();
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

function parseConfig(json: string): ImageConfig {
  const parsed = JSON.parse(json) as Partial<ImageConfig>;
  return { ...parsed, env: parsed.env ?? {} };
}

/** The stored config for an unpacked image: its defaults on top of the presets' env. */
function configOf(u: UnpackedImage, source: string): ImageConfig {
  const d = u.defaults;
  return {
    env: { ...PRESET_ENV, ...d.env },
    ...(d.cwd ? { cwd: d.cwd } : {}),
    ...(d.user ? { user: d.user } : {}),
    ...(d.entrypoint.length ? { entrypoint: d.entrypoint } : {}),
    ...(d.cmd.length ? { cmd: d.cmd } : {}),
    source,
    digest: u.digest,
    layers: u.layers,
  };
}

function notFound(ref: string): NookError {
  return new NookError('IMAGE_NOT_FOUND', `no image named ${ref}`, { hint: `build one: nook image build --preset ${Preset.options.join('|')}`, context: { ref } });
}
