/**
 * The warm pool: sandboxes started ahead of demand, per image, so that a create or a run
 * that fits skips the rootfs snapshot and `crun run` (the slow part) and only gets its
 * name, labels, env, TTL and network policy (core/sandboxes.ts, at take time).
 *
 * What fits (poolImageFor): a crun sandbox from a local image name with the host default
 * limits and disk, no restore, no persisted paths, no volumes or attachments, no pull
 * `always`. Those need a different start (bind mounts made by crun, a snapshot source, other
 * cgroup limits); everything else is a database row or is applied after start anyway
 * (egress proxy, exposures: ComputeLifecycle.up), exactly as for a fresh sandbox.
 *
 * Members live only in this process: they are never in the sandboxes table, so nothing lists
 * or addresses them, and a member is removed from the pool before anyone gets it (taken once,
 * destroyed with its sandbox, never put back). After a crash the startup reconcile removes
 * them as orphans (container, files, cgroups nobody lists); the pool then refills.
 */
import { PRESETS, oneOf } from '../api/constants.js';
import { NookError } from '../api/errors.js';
import { DEFAULTS, IMAGE_NAME_PATTERN, POOL_MAX_SIZE, POOL_MAX_TOTAL, type CreateSandboxRequest, type Limits, type PoolInfo } from '../api/schemas.js';
import type { RuntimeDriver, RuntimeKind } from '../runtime/driver.js';
import type { StorageDriver } from '../storage/driver.js';
import type { Db } from '../store/db.js';
import { newId } from '../util/ids.js';
import { log } from '../util/log.js';
import type { ImageManager } from './images.js';
import { diskLimit } from './sandbox-reconcile.js';
import { startSpecFor } from './start-spec.js';

export interface PoolMember {
  id: string;
  image: string;
  imageId: string;
  /** The name it was started under: a generated sandbox name nobody had. */
  hostname: string;
  limits: Limits;
}

interface PoolState {
  ready: PoolMember[];
  takes: number;
  misses: number;
  fills: number;
  failures: number;
  lastError: string | null;
  retryAt: number;
}

/** A fill waits until no create or run has asked for this long: background work never competes with a caller. */
const QUIET_MS = 150;
const BACKOFF_MAX_MS = 60_000;
const KEY_PREFIX = 'pool.';

/** The limits every pool member has: the host defaults (a request asking for others goes the normal way). */
function poolLimits(diskMiB: number | null): Limits {
  return { memoryMiB: DEFAULTS.memoryMiB, cpus: DEFAULTS.cpus, pids: DEFAULTS.pids, diskMiB };
}

/** The image a request (after templates and admission) could take a pooled sandbox of, or null when it needs its own start. */
export function poolImageFor(req: CreateSandboxRequest, runtime: RuntimeKind): string | null {
  if (runtime !== 'crun' || req.snapshot !== undefined || req.diskMiB !== undefined || req.pull === 'always') return null;
  if ((req.persist?.length ?? 0) > 0 || (req.volumes?.length ?? 0) > 0 || (req.attach?.length ?? 0) > 0) return null;
  if ((req.memoryMiB ?? DEFAULTS.memoryMiB) !== DEFAULTS.memoryMiB || (req.cpus ?? DEFAULTS.cpus) !== DEFAULTS.cpus || (req.pids ?? DEFAULTS.pids) !== DEFAULTS.pids) return null;
  const image = req.image ?? (process.env.NOOK_DEFAULT_IMAGE || DEFAULTS.image);
  return IMAGE_NAME_PATTERN.test(image) ? image : null;
}

/** The configured pool size of one image (0 without one): an image with a pool is in use. */
export function poolSizeOf(db: Db, image: string): number {
  const row = db.prepare('SELECT value_json FROM host_config WHERE key = ?').get(`${KEY_PREFIX}${image}`) as { value_json: string } | undefined;
  return row ? Number(JSON.parse(row.value_json)) : 0;
}

/** `pool.IMAGE` → IMAGE, or null for another key. */
export function poolKeyImage(key: string): string | null {
  return key.startsWith(KEY_PREFIX) ? key.slice(KEY_PREFIX.length) : null;
}

export class WarmPool {
  private readonly pools = new Map<string, PoolState>();
  private lastDemandAt = 0;
  private loop: Promise<void> | null = null;
  /** The member being started now, if any: a shrink waits for it (it goes at once when surplus). */
  private starting: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly db: Db,
    private readonly storage: StorageDriver,
    private readonly runtime: RuntimeDriver,
    private readonly images: ImageManager,
  ) {}

  // ---- configuration (host_config rows `pool.IMAGE`) ----------------------------------

  /** Configured sizes by image (0-sized pools are not kept). */
  sizes(): Record<string, number> {
    const rows = this.db.prepare("SELECT key, value_json FROM host_config WHERE key LIKE 'pool.%' ORDER BY key").all() as { key: string; value_json: string }[];
    return Object.fromEntries(rows.map((r) => [r.key.slice(KEY_PREFIX.length), Number(JSON.parse(r.value_json))]));
  }

  /** Sets a pool's size; shrinking (0: drain) destroys the surplus before answering. */
  async setSize(image: string, value: unknown): Promise<void> {
    if (!IMAGE_NAME_PATTERN.test(image)) {
      throw new NookError('INVALID_ARGUMENT', `pool.${image}: ${JSON.stringify(image)} is not a local image name`, { hint: 'name a local image or preset, e.g. nook config set pool.python 4' });
    }
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > POOL_MAX_SIZE) {
      throw new NookError('INVALID_ARGUMENT', `pool.${image} takes a whole number from 0 to ${POOL_MAX_SIZE}, not ${JSON.stringify(value)}`, {
        hint: `e.g. nook config set pool.${image} 4 (0 empties the pool)`,
      });
    }
    const others = Object.entries(this.sizes()).filter(([k]) => k !== image).reduce((sum, [, n]) => sum + n, 0);
    if (others + value > POOL_MAX_TOTAL) {
      throw new NookError('INVALID_ARGUMENT', `pools may hold at most ${POOL_MAX_TOTAL} sandboxes together; the others already hold ${others}`, {
        hint: `ask for at most ${POOL_MAX_TOTAL - others}, or shrink another pool (nook config ls)`,
      });
    }
    if (value > 0 && !this.images.find(image) && !oneOf(PRESETS, image)) {
      throw new NookError('IMAGE_NOT_FOUND', `no image named ${image} to keep a pool of`, { hint: 'build or pull it first (nook image ls), or name a preset', context: { ref: image } });
    }
    if (value === 0) this.db.prepare('DELETE FROM host_config WHERE key = ?').run(`${KEY_PREFIX}${image}`);
    else this.db.prepare('INSERT INTO host_config (key, value_json) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json').run(`${KEY_PREFIX}${image}`, JSON.stringify(value));
    const st = this.state(image);
    st.failures = 0;
    st.lastError = null;
    st.retryAt = 0;
    await this.destroyAll(st.ready.splice(value));
    // A member starting right now would outlive the answer: wait, it sees the new size and goes.
    if (this.starting) await this.starting.catch(() => undefined);
    await this.destroyAll(st.ready.splice(value));
    log('pool size set', { image, size: value });
    this.kick();
  }

  private state(image: string): PoolState {
    let st = this.pools.get(image);
    if (!st) {
      st = { ready: [], takes: 0, misses: 0, fills: 0, failures: 0, lastError: null, retryAt: 0 };
      this.pools.set(image, st);
    }
    return st;
  }

  // ---- taking -------------------------------------------------------------------------

  /**
   * A ready member for this request, removed from the pool (it is never put back), or
   * undefined: no pool for the image, the pool is empty, or the request needs its own start.
   */
  take(req: CreateSandboxRequest, runtime: RuntimeKind): PoolMember | undefined {
    this.lastDemandAt = Date.now();
    const image = poolImageFor(req, runtime);
    if (image === null || !this.sizes()[image]) return undefined;
    const st = this.state(image);
    // An image rebuilt since the member started is not what the caller asked for.
    const current = this.images.find(image)?.id;
    const i = st.ready.findIndex((m) => m.imageId === current);
    const member = i >= 0 ? st.ready.splice(i, 1)[0] : undefined;
    if (member) st.takes++;
    else st.misses++;
    this.kick();
    return member;
  }

  // ---- filling ------------------------------------------------------------------------

  /** Starts the background filler unless it runs; one member at a time, after callers go quiet. */
  kick(): void {
    if (this.closed || this.loop) return;
    this.loop = this.fillLoop()
      .catch((e: Error) => log('pool: filler failed', { error: e.message }))
      .finally(() => {
        this.loop = null;
      });
  }

  private async fillLoop(): Promise<void> {
    for (;;) {
      const wait = this.lastDemandAt + QUIET_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (this.closed) return;
      if (!(await this.fillStep())) break;
    }
    this.armRetry();
  }

  /** One unit of work (drop a stale or surplus member, or start one); false when every pool is as configured. */
  private async fillStep(): Promise<boolean> {
    const sizes = this.sizes();
    for (const [image, st] of this.pools) {
      const want = sizes[image] ?? 0;
      const current = this.images.find(image)?.id;
      const drop = [...st.ready.filter((m) => m.imageId !== current), ...st.ready.filter((m) => m.imageId === current).slice(want)];
      if (drop.length > 0) {
        st.ready = st.ready.filter((m) => !drop.includes(m));
        await this.destroyAll(drop);
        return true;
      }
    }
    for (const [image, want] of Object.entries(sizes)) {
      const st = this.state(image);
      if (st.ready.length >= want || Date.now() < st.retryAt) continue;
      this.starting = this.fillOne(image, st);
      await this.starting.finally(() => { this.starting = null; });
      return true;
    }
    return false;
  }

  private async fillOne(image: string, st: PoolState): Promise<void> {
    const id = newId('sb');
    const started = Date.now();
    try {
      const img = await this.images.ensure(image);
      const limits = poolLimits(await diskLimit(this.storage, undefined));
      const member: PoolMember = { id, image, imageId: img.id, hostname: this.freshName(), limits };
      await this.storage.createSandbox(id, { imageId: img.id }, [], limits.diskMiB);
      await this.runtime.start(await startSpecFor(this.storage, this.images, { id, hostname: member.hostname, imageId: img.id, limits, persist: [], runtime: 'crun' }));
      st.fills++;
      st.failures = 0;
      st.lastError = null;
      // Closed or shrunk while it started: it goes at once, never left running unlisted.
      if (this.closed || st.ready.length >= (this.sizes()[image] ?? 0)) await this.destroy(id);
      else st.ready.push(member);
      log('pool: member ready', { image, id, ms: Date.now() - started });
    } catch (e) {
      await this.destroy(id);
      st.failures++;
      st.lastError = (e as Error).message;
      st.retryAt = Date.now() + Math.min(BACKOFF_MAX_MS, 1000 * 2 ** (st.failures - 1));
      log('pool: start failed', { image, error: st.lastError, retryInMs: st.retryAt - Date.now() });
    }
  }

  /** A name no sandbox has (the member's hostname, and its name when the caller gives none). */
  private freshName(): string {
    for (;;) {
      const name = newId('sb', 8).replace('_', '-');
      if (!this.db.prepare('SELECT 1 FROM sandboxes WHERE name = ?').get(name)) return name;
    }
  }

  /** A pool in back-off tries again when its time comes. */
  private armRetry(): void {
    clearTimeout(this.retryTimer);
    const sizes = this.sizes();
    const due = [...this.pools].filter(([image, st]) => st.ready.length < (sizes[image] ?? 0) && st.retryAt > Date.now()).map(([, st]) => st.retryAt);
    if (due.length === 0 || this.closed) return;
    this.retryTimer = setTimeout(() => this.kick(), Math.min(...due) - Date.now() + 10);
    this.retryTimer.unref();
  }

  // ---- destroying ---------------------------------------------------------------------

  /** Destroys a member that was never handed out (or one whose take failed). */
  async destroy(id: string): Promise<void> {
    await this.runtime.stop(id, 0).catch((e: Error) => log('pool: stop failed', { id, error: e.message }));
    await this.storage.deleteSandbox(id).catch((e: Error) => log('pool: delete failed', { id, error: e.message }));
    await this.runtime.forget(id).catch(() => undefined);
  }

  private async destroyAll(members: PoolMember[]): Promise<void> {
    for (const m of members) await this.destroy(m.id);
  }

  /** Stops filling and destroys every ready member (daemon stop, release). */
  async drain(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.loop;
    for (const st of this.pools.values()) await this.destroyAll(st.ready.splice(0));
  }

  // ---- reporting ----------------------------------------------------------------------

  async status(): Promise<PoolInfo[]> {
    const sizes = this.sizes();
    const images = [...new Set([...Object.keys(sizes), ...this.pools.keys()])].sort();
    const out: PoolInfo[] = [];
    for (const image of images) {
      const st = this.state(image);
      let idleMemoryBytes = 0;
      let idleDiskBytes = 0;
      for (const m of st.ready) {
        idleMemoryBytes += (await this.runtime.stats(m.id).catch(() => null))?.memoryBytes ?? 0;
        idleDiskBytes += (await this.storage.diskUsage(m.id).catch(() => null))?.usedBytes ?? 0;
      }
      out.push({
        image, size: sizes[image] ?? 0, ready: st.ready.length, takes: st.takes, misses: st.misses, fills: st.fills, failures: st.failures,
        lastError: st.lastError, retryAt: st.retryAt > Date.now() ? new Date(st.retryAt).toISOString() : null, idleMemoryBytes, idleDiskBytes,
      });
    }
    return out;
  }
}
