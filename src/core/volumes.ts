import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { NookError } from '../api/errors.js';
import { NAME_PATTERN, NAME_RULE, type Volume } from '../api/schemas.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { Db } from '../store/db.js';
import { mountsUnder } from '../util/fs.js';
import { newId } from '../util/ids.js';
import { log } from '../util/log.js';
import { UndoStack } from '../util/undo.js';
import { run } from '../util/proc.js';
import type { SandboxManager } from './sandboxes.js';
import { allPids, findHolders, holderLines, mountsOf, type Holder } from '../util/holders.js';

interface VolumeRow {
  name: string;
  id: string;
  size_mib: number;
  state: 'creating' | 'locked' | 'unlocked';
  key_wrapped: string;
  key_id: string;
  holder_id: string | null;
  guest_path: string | null;
  rw: number;
  created_at: number;
}

export const DEFAULT_MASTER_KEY_FILE = '/etc/nook/master.key';
const MiB = 1024 * 1024;

/** A sandbox whose compute exists (its processes can reach what is mounted in it). */
function hasCompute(sb: { state: string } | undefined): boolean {
  return !!sb && sb.state !== 'paused';
}

/**
 * Managed volumes: sparse ext4 images with the kernel's fscrypt, locked by default. A
 * per-volume key is wrapped (AES-256-GCM) by a host master key kept outside the state
 * dir; unlock adds the key to the kernel, lock removes it and unmounts, after which the
 * image holds only ciphertext. At most one running sandbox holds a volume; it is mounted
 * into it while running, idmapped so the volume's root is the sandbox's root.
 */
export class VolumeManager {
  constructor(
    private readonly db: Db,
    private readonly runtime: RuntimeDriver,
    private readonly sandboxes: SandboxManager,
    private readonly stateDir: string,
    private readonly helper: string,
    private readonly masterKeyFile = process.env.NOOK_MASTER_KEY_FILE || DEFAULT_MASTER_KEY_FILE,
  ) {}

  /** Compute up: declared volumes (-v at create) are mounted each time. */
  async mountDeclared(sandboxId: string): Promise<void> {
    for (const v of this.sandboxes.record(sandboxId).spec.volumes ?? []) await this.mountUp(sandboxId, v.volume, v.guest, v.rw ?? false);
  }

  /**
   * Compute is about to go: end every access to its volumes (holders killed, mounts gone)
   * before they are free again. If that fails they stay marked until compute is gone (a
   * paused holder no longer counts), so no second sandbox shares them meanwhile.
   */
  async releaseHeld(sandboxId: string): Promise<void> {
    for (const r of this.db.prepare('SELECT * FROM volumes WHERE holder_id = ?').all(sandboxId) as VolumeRow[]) {
      try {
        await this.detach(sandboxId, r, true);
        this.db.prepare('UPDATE volumes SET holder_id = NULL, guest_path = NULL WHERE id = ?').run(r.id);
      } catch (e) {
        log('volume: unmount at compute down failed; released once compute is gone', { volume: r.name, error: (e as Error).message });
      }
    }
  }

  /** A destroyed sandbox holds nothing. */
  forget(sandboxId: string): void {
    this.db.prepare('UPDATE volumes SET holder_id = NULL, guest_path = NULL WHERE holder_id = ?').run(sandboxId);
  }

  private get dir(): string {
    return join(this.stateDir, 'volumes');
  }

  private image(id: string): string {
    return join(this.dir, `${id}.ext4`);
  }

  private mnt(id: string): string {
    return join(this.dir, `${id}.mnt`);
  }

  private async masterKey(): Promise<Buffer> {
    if (this.masterKeyFile.startsWith(`${this.stateDir}/`)) {
      throw new NookError('INVALID_ARGUMENT', 'the master key must not live in the state dir', { hint: 'set NOOK_MASTER_KEY_FILE to a path outside it' });
    }
    try {
      const key = await fsp.readFile(this.masterKeyFile);
      if (key.length !== 32) throw new NookError('INVALID_ARGUMENT', `${this.masterKeyFile} is not a 32-byte key`);
      return key;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await fsp.mkdir(dirname(this.masterKeyFile), { recursive: true, mode: 0o700 });
      const key = randomBytes(32);
      await fsp.writeFile(this.masterKeyFile, key, { mode: 0o600, flag: 'wx' });
      log('created the volume master key', { file: this.masterKeyFile });
      return key;
    }
  }

  private async wrap(key: Buffer): Promise<string> {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', await this.masterKey(), iv);
    const body = Buffer.concat([c.update(key), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
  }

  private async unwrap(wrapped: string): Promise<Buffer> {
    const raw = Buffer.from(wrapped, 'base64');
    try {
      const d = createDecipheriv('aes-256-gcm', await this.masterKey(), raw.subarray(0, 12));
      d.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
    } catch {
      throw new NookError('INVALID_ARGUMENT', 'the volume key does not unwrap with this host\'s master key', { hint: `is ${this.masterKeyFile} the key the volume was created with?` });
    }
  }

  private row(name: string): VolumeRow {
    const r = this.db.prepare('SELECT * FROM volumes WHERE name = ? OR id = ?').get(name, name) as VolumeRow | undefined;
    if (!r || r.state === 'creating') throw new NookError('VOLUME_NOT_FOUND', `no volume named ${name}`, { hint: 'list them: nook volume ls', context: { name } });
    return r;
  }

  private toVolume(r: VolumeRow): Volume {
    const found = r.holder_id ? this.sandboxes.find(r.holder_id) : undefined;
    const holder = hasCompute(found) ? found : undefined;
    return {
      name: r.name,
      id: r.id,
      sizeMiB: r.size_mib,
      state: r.state === 'unlocked' ? 'unlocked' : 'locked',
      mountedIn: holder ? { sandbox: holder.name, path: r.guest_path ?? '', rw: r.rw === 1 } : null,
      createdAt: new Date(r.created_at).toISOString(),
    };
  }

  private async isMounted(id: string): Promise<boolean> {
    return (await mountsUnder(this.mnt(id))).includes(this.mnt(id));
  }

  private async mountHost(id: string): Promise<void> {
    await fsp.mkdir(this.mnt(id), { recursive: true, mode: 0o700 });
    if (!(await this.isMounted(id))) await run(['mount', '-o', 'loop,nosuid,nodev', this.image(id), this.mnt(id)]);
  }

  private async addKey(r: VolumeRow): Promise<void> {
    const key = await this.unwrap(r.key_wrapped);
    const added = await run([this.helper, 'fscrypt', 'add-key', this.mnt(r.id)], { input: key });
    key.fill(0);
    if (added.stdout.trim() !== r.key_id) throw new NookError('INVALID_ARGUMENT', `volume ${r.name}: the key does not match the one it was encrypted with`);
  }

  async create(name: string, sizeMiB: number): Promise<Volume> {
    if (!NAME_PATTERN.test(name)) throw new NookError('INVALID_NAME', `invalid volume name ${JSON.stringify(name)}: use ${NAME_RULE}`);
    if (this.db.prepare('SELECT 1 FROM volumes WHERE name = ?').get(name)) throw new NookError('NAME_TAKEN', `a volume named ${name} already exists`);
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const st = await fsp.statfs(this.dir);
    const free = st.bavail * st.bsize;
    if (sizeMiB * MiB > free) {
      throw new NookError('NO_SPACE', `${sizeMiB} MiB is more than the ${Math.floor(free / MiB)} MiB free where volumes live`, { hint: 'choose a smaller --size-mib' });
    }
    const id = newId('vol');
    const key = randomBytes(64);
    const wrapped = await this.wrap(key);
    const undo = new UndoStack();
    try {
      this.db
        .prepare("INSERT INTO volumes (name, id, size_mib, state, key_wrapped, key_id, created_at) VALUES (?, ?, ?, 'creating', ?, '', ?)")
        .run(name, id, sizeMiB, wrapped, Date.now());
      undo.push('the volume record', () => void this.db.prepare('DELETE FROM volumes WHERE id = ?').run(id));
      const fh = await fsp.open(this.image(id), 'wx', 0o600);
      undo.push('the volume image', () => fsp.rm(this.image(id), { force: true }));
      await fh.truncate(sizeMiB * MiB);
      await fh.close();
      await run(['mkfs.ext4', '-q', '-O', 'encrypt', '-E', 'root_owner=0:0', this.image(id)]);
      await this.mountHost(id);
      undo.push('the host mount', async () => {
        if (await this.isMounted(id)) await run(['umount', '-l', this.mnt(id)], { allowFail: true });
        await fsp.rm(this.mnt(id), { recursive: true, force: true });
      });
      const keyId = (await run([this.helper, 'fscrypt', 'add-key', this.mnt(id)], { input: key })).stdout.trim();
      undo.push('the key in the kernel', () => run([this.helper, 'fscrypt', 'remove-key', this.mnt(id), keyId], { allowFail: true }).then(() => undefined));
      await fsp.mkdir(join(this.mnt(id), 'data'), { mode: 0o755 });
      await run([this.helper, 'fscrypt', 'set-policy', join(this.mnt(id), 'data'), keyId]);
      await run([this.helper, 'fscrypt', 'remove-key', this.mnt(id), keyId]);
      await run(['umount', this.mnt(id)]);
      this.db.prepare("UPDATE volumes SET state = 'locked', key_id = ? WHERE id = ?").run(keyId, id);
    } catch (e) {
      await undo.rollback((msg) => log('volume create', { name, msg }));
      throw e instanceof NookError ? e : new NookError('STORAGE_ERROR', `cannot create volume ${name}: ${(e as Error).message}`);
    } finally {
      key.fill(0);
    }
    log('volume created', { name, id, sizeMiB });
    return this.toVolume(this.row(id));
  }

  list(sandbox?: string): Volume[] {
    const rows = this.db.prepare("SELECT * FROM volumes WHERE state != 'creating' ORDER BY name").all() as VolumeRow[];
    const sb = sandbox ? this.sandboxes.record(sandbox) : undefined;
    return rows.filter((r) => !sb || r.holder_id === sb.id).map((r) => this.toVolume(r));
  }

  get(name: string): Volume {
    return this.toVolume(this.row(name));
  }

  /** Plaintext becomes reachable: the volume's key goes into the kernel. */
  async unlock(name: string): Promise<Volume> {
    const r = this.row(name);
    await this.mountHost(r.id);
    await this.addKey(r);
    this.db.prepare("UPDATE volumes SET state = 'unlocked' WHERE id = ?").run(r.id);
    log('volume unlocked', { name: r.name });
    return this.get(r.id);
  }

  /**
   * Removes the key and unmounts: the image holds only ciphertext. Refused while mounted
   * (naming the sandbox) unless force, which unmounts it first, killing what holds it.
   */
  async lock(name: string, force = false): Promise<Volume> {
    const r = this.row(name);
    const holder = r.holder_id ? this.sandboxes.find(r.holder_id) : undefined;
    if (holder && hasCompute(holder)) {
      if (!force) {
        throw new NookError('VOLUME_IN_USE', `volume ${r.name} is mounted in sandbox ${holder.name} at ${r.guest_path}`, {
          hint: `unmount it first (nook volume unmount ${holder.name} ${r.guest_path}) or lock --force`,
          context: { sandbox: holder.name, sandboxId: holder.id, path: r.guest_path },
        });
      }
      await this.unmount(holder.id, r.guest_path ?? '', true);
    }
    if (await this.isMounted(r.id)) {
      const removed = await run([this.helper, 'fscrypt', 'remove-key', this.mnt(r.id), r.key_id], { allowFail: true });
      if (removed.code === 16) {
        // Not a sandbox of ours: a host process has files open on it. Name it.
        const dev = await this.hostDev(r.id);
        const holders = dev ? await findHolders(await allPids(), dev, null) : [];
        throw new NookError('VOLUME_BUSY', `files on volume ${r.name} are still open${holders.length ? `: ${holderLines(holders)}` : ''}`, {
          hint: 'close them (stop the processes named) and lock again',
          context: { holders },
        });
      }
      await run(['umount', this.mnt(r.id)]);
    }
    this.db.prepare("UPDATE volumes SET state = 'locked', holder_id = NULL, guest_path = NULL WHERE id = ?").run(r.id);
    log('volume locked', { name: r.name });
    return this.get(r.id);
  }

  /** The device of a volume's host mount (what every file on it reports as st_dev). */
  private async hostDev(id: string): Promise<string | null> {
    return (await mountsOf('self')).find((m) => m.point === this.mnt(id))?.dev ?? null;
  }

  async mount(ref: string, name: string, guest: string, rw: boolean): Promise<Volume> {
    if (this.sandboxes.record(ref).state !== 'running') {
      const sb = this.sandboxes.record(ref);
      throw new NookError('INVALID_STATE', `sandbox ${sb.name} is ${sb.state}`, { hint: `resume it first: nook resume ${sb.name}` });
    }
    return this.mountUp(this.sandboxes.record(ref).id, name, guest, rw);
  }

  /**
   * A host-backed volume: an existing host directory, bound only when it verifiably sits
   * under an fscrypt policy; anything that cannot be verified is refused (fail closed).
   */
  async mountHostDir(ref: string, label: string, hostDir: string, guest: string, rw: boolean, rwAllowed: boolean): Promise<{ volume: string; host: string; guest: string; rw: boolean }> {
    const sb = this.sandboxes.record(ref);
    if (sb.state !== 'running') throw new NookError('INVALID_STATE', `sandbox ${sb.name} is ${sb.state}`, { hint: `resume it first: nook resume ${sb.name}` });
    if (rw && !rwAllowed) throw new NookError('POLICY_DENIED', 'writable host directories are not allowed on this host', { hint: 'mount it read-only, or use a managed volume' });
    const policy = await run([this.helper, 'fscrypt', 'policy', hostDir], { allowFail: true });
    if (policy.code !== 0 || !/^[0-9a-f]{32}$/.test(policy.stdout.trim())) {
      throw new NookError('NOT_ENCRYPTED', `${hostDir} is not on encrypted storage (no fscrypt policy${policy.code === 0 ? '' : `: ${policy.stderr.trim()}`})`, {
        hint: 'use a managed volume (nook volume create), or encrypt the directory with fscrypt first',
      });
    }
    await this.mountInto(sb.id, hostDir, hostDir, guest, rw);
    this.sandboxes.events.publish('volume.mounted', { sandbox: sb.name, sandboxId: sb.id, detail: { volume: label, host: hostDir, path: guest, rw } });
    return { volume: label, host: hostDir, guest, rw };
  }

  /** Mounts into a sandbox whose compute is up (also while it is still being created). */
  private async mountUp(sandboxId: string, name: string, guest: string, rw: boolean): Promise<Volume> {
    const sb = this.sandboxes.record(sandboxId);
    const r = this.row(name);
    if (r.state !== 'unlocked') throw new NookError('VOLUME_LOCKED', `volume ${r.name} is locked`, { hint: `unlock it first: nook volume unlock ${r.name}` });
    if (!guest.startsWith('/') || guest.split('/').includes('..') || guest === '/') throw new NookError('INVALID_ARGUMENT', `guest path ${guest} must be an absolute directory below / without ..`);
    if (r.holder_id && r.holder_id !== sb.id) {
      const holder = this.sandboxes.find(r.holder_id);
      if (holder && hasCompute(holder)) throw new NookError('VOLUME_IN_USE', `volume ${r.name} is mounted in ${holder.name}`, { hint: `single-attach: unmount it there first (nook volume unmount ${holder.name} ${r.guest_path})`, context: { sandbox: holder.name, sandboxId: holder.id, path: r.guest_path } });
    }
    await this.mountInto(sb.id, r.name, join(this.mnt(r.id), 'data'), guest, rw);
    this.db.prepare('UPDATE volumes SET holder_id = ?, guest_path = ?, rw = ? WHERE id = ?').run(sb.id, guest, rw ? 1 : 0, r.id);
    this.sandboxes.events.publish('volume.mounted', { sandbox: sb.name, sandboxId: sb.id, detail: { volume: r.name, path: guest, rw } });
    return this.get(r.id);
  }

  /**
   * Unmounts for real (never lazily): while any process in the sandbox still reaches the
   * volume it is refused with VOLUME_BUSY naming them, or with force they are killed first.
   * Only once the mount is gone is the volume free for another sandbox.
   */
  async unmount(ref: string, guest: string, force = false): Promise<Volume> {
    const sb = this.sandboxes.record(ref);
    const r = this.db.prepare('SELECT * FROM volumes WHERE holder_id = ? AND guest_path = ?').get(sb.id, guest) as VolumeRow | undefined;
    if (!r) throw new NookError('VOLUME_NOT_FOUND', `no volume is mounted at ${guest} in ${sb.name}`, { hint: `list them: nook volume ls ${sb.name}`, context: { sandbox: sb.name, guest } });
    const rt = this.runtime.info(sb.id);
    if (force && !rt.holders) throw new NookError('NOT_SUPPORTED', `the ${rt.name} runtime cannot find the processes holding a mount, so it cannot force an unmount`, { hint: `stop what uses ${guest} (nook ps ${sb.name}) and unmount without --force` });
    await this.detach(sb.id, r, force);
    this.db.prepare('UPDATE volumes SET holder_id = NULL, guest_path = NULL WHERE id = ?').run(r.id);
    this.sandboxes.events.publish('volume.unmounted', { sandbox: sb.name, sandboxId: sb.id, detail: { volume: r.name, path: guest } });
    return this.get(r.id);
  }

  /** Through the runtime, which alone reaches inside; `label` names the source in errors (never a host path of ours). */
  private async mountInto(sandboxId: string, label: string, source: string, guest: string, rw: boolean): Promise<void> {
    const rt = this.runtime.info(sandboxId);
    if (!rt.hotMounts) throw new NookError('NOT_SUPPORTED', `the ${rt.name} runtime cannot mount into a running sandbox`, { hint: 'copy files in with nook cp, or use a runtime with hot mounts (crun)' });
    await this.runtime.mountInto(sandboxId, source, guest, { rw }).catch((e: unknown) => {
      throw mountError(e, label, guest);
    });
  }

  /**
   * Ends a sandbox's access to a volume: the runtime freezes it, finds what still reaches
   * the mount, kills that when forced, and unmounts every copy of it for real.
   */
  private async detach(sandboxId: string, r: VolumeRow, force: boolean): Promise<void> {
    const sb = this.sandboxes.record(sandboxId);
    const outcome = await this.runtime.unmountFrom(sandboxId, r.guest_path ?? '', { force });
    if (outcome.status === 'busy') throw this.busy(r, sb.name, outcome.holders, outcome.why);
    if (outcome.status === 'unmounted' && outcome.killed.length > 0) {
      log('volume: killed processes holding it', { volume: r.name, sandbox: sb.name, holders: holderLines(outcome.killed) });
    }
  }

  private busy(r: VolumeRow, sandbox: string, holders: Holder[], why = 'is in use'): NookError {
    const who = holders.length ? `: ${holderLines(holders)}` : ' (by something nook cannot see)';
    return new NookError('VOLUME_BUSY', `volume ${r.name} at ${sandbox}:${r.guest_path} ${why}${who}`, {
      hint: `stop these processes or use nook volume unmount --force ${sandbox} ${r.guest_path} (kills them)`,
      context: { sandbox, path: r.guest_path, holders },
    });
  }

  async remove(name: string): Promise<Volume> {
    const r = this.row(name);
    const v = await this.lock(r.id);
    await fsp.rm(this.image(r.id), { force: true });
    await fsp.rm(this.mnt(r.id), { recursive: true, force: true });
    this.db.prepare('DELETE FROM volumes WHERE id = ?').run(r.id);
    return v;
  }

  /** Names of volumes that are unlocked right now. */
  unlockedNames(): string[] {
    return (this.db.prepare("SELECT name FROM volumes WHERE state = 'unlocked' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
  }

  /** Startup: every volume ends up as the database says (locked: no plaintext; unlocked: key in). */
  async reconcile(): Promise<void> {
    for (const r of this.db.prepare('SELECT * FROM volumes').all() as VolumeRow[]) {
      try {
        if (r.state === 'creating') {
          if (await this.isMounted(r.id)) await run(['umount', '-l', this.mnt(r.id)], { allowFail: true });
          await fsp.rm(this.image(r.id), { force: true });
          this.db.prepare('DELETE FROM volumes WHERE id = ?').run(r.id);
          continue;
        }
        const holder = r.holder_id ? this.sandboxes.find(r.holder_id) : undefined;
        if (!hasCompute(holder)) this.db.prepare('UPDATE volumes SET holder_id = NULL, guest_path = NULL WHERE id = ?').run(r.id);
        if (r.state === 'unlocked') {
          await this.mountHost(r.id);
          await this.addKey(r);
        } else if (await this.isMounted(r.id)) {
          await run([this.helper, 'fscrypt', 'remove-key', this.mnt(r.id), r.key_id], { allowFail: true });
          await run(['umount', this.mnt(r.id)], { allowFail: true });
        }
      } catch (e) {
        log('reconcile: volume', { name: r.name, error: (e as Error).message });
      }
    }
  }

  /** Disk the volume's image takes on the host (it is sparse: less than its size until filled). */
  async diskBytes(id: string): Promise<number> {
    const st = await fsp.stat(this.image(id)).catch(() => null);
    return st ? st.blocks * 512 : 0;
  }

  /** Host release: lock (and unmount) every volume, so nothing stays mounted on the host. */
  async release(): Promise<void> {
    for (const r of this.db.prepare("SELECT id FROM volumes WHERE state = 'unlocked'").all() as { id: string }[]) {
      if (await this.isMounted(r.id)) {
        await run([this.helper, 'fscrypt', 'remove-key', this.mnt(r.id), (this.row(r.id)).key_id], { allowFail: true });
        await run(['umount', '-l', this.mnt(r.id)], { allowFail: true });
      }
    }
  }
}

/**
 * A failed hot mount, named by what the user gave (`label`), never by a host path of ours:
 * the runtime's code is kept, its message is replaced by the detail it reported.
 */
export function mountError(e: unknown, label: string, guest: string): NookError {
  if (!(e instanceof NookError)) return new NookError('RUNTIME_ERROR', `cannot mount ${label} at ${guest}: ${(e as Error).message}`);
  const detail = (e.context as { detail?: unknown } | undefined)?.detail;
  e.message = `cannot mount ${label} at ${guest}: ${typeof detail === 'string' ? detail : e.message}`;
  return e;
}
