import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import { log } from '../util/log.js';
import { run } from '../util/proc.js';
import type { DiskUsage } from './driver.js';

/**
 * Per-sandbox disk limits on the btrfs pool with simple quotas (squota, kernel 6.7+).
 *
 * Why simple quotas: full qgroups make every snapshot commit a transaction and account
 * shared extents (measured here: a snapshot took 25 ms with them, 3-4 ms without or with
 * squota). Squota charges an extent to the subvolume that wrote it, for as long as it
 * exists: a fresh snapshot of an image costs its sandbox nothing, and what the sandbox
 * writes (including copies-on-write of image files) counts. So exclusive = referenced,
 * and the limit is set on the exclusive figure.
 *
 * One level-1 qgroup per sandbox (1/GROUP, GROUP derived from the sandbox id) holds all of
 * its units (rootfs and persisted dirs), so `diskMiB` bounds the sandbox as a whole.
 * Usage is read from sysfs (/sys/fs/btrfs/FSID/qgroups), never from `btrfs qgroup show`,
 * whose text includes subvolume paths a sandbox could have named.
 */
export class BtrfsQuota {
  private sysfs: string | null = null;

  constructor(
    private readonly mountPoint: string,
    private readonly poolFile: string,
    private readonly helper: string | undefined,
  ) {}

  /** True once quotas are on and readable; false leaves the pool without disk limits. */
  get enabled(): boolean {
    return this.sysfs !== null;
  }

  /** Turns simple quotas on (idempotent). Without the helper or kernel support: no limits, logged. */
  async enable(): Promise<void> {
    if (!this.helper) return;
    const r = await run([this.helper, 'subvol', 'quota', this.mountPoint], { allowFail: true });
    const dir = join('/sys/fs/btrfs', await poolFsid(this.poolFile), 'qgroups');
    const mode = (await fsp.readFile(join(dir, 'mode'), 'utf8').catch(() => '')).trim();
    if (r.code !== 0 || (mode !== 'squota' && mode !== 'qgroup')) {
      log('btrfs quotas unavailable: sandboxes get no disk limit', { error: r.stderr.trim(), mode });
      return;
    }
    this.sysfs = dir;
  }

  /** The level-1 qgroup number of a sandbox: stable across recycle, 40 bits of its id's hash. */
  static group(sandboxId: string): number {
    return parseInt(createHash('sha256').update(sandboxId).digest('hex').slice(0, 10), 16);
  }

  private groupDir(sandboxId: string): string | null {
    return this.sysfs ? join(this.sysfs, `1_${BtrfsQuota.group(sandboxId)}`) : null;
  }

  async hasGroup(sandboxId: string): Promise<boolean> {
    const dir = this.groupDir(sandboxId);
    return dir !== null && (await fsp.access(dir).then(() => true, () => false));
  }

  /** Puts units into the sandbox's group; with `bytes`, (re)sets the group's exclusive limit. */
  async assign(sandboxId: string, units: string[], bytes: number | null): Promise<void> {
    if (!this.helper || !this.enabled) throw new NookError('NOT_SUPPORTED', 'disk limits need btrfs quotas, which this pool does not have');
    const group = String(BtrfsQuota.group(sandboxId));
    await run([this.helper, 'subvol', 'qgroup-assign', this.mountPoint, group, bytes === null ? '-' : String(bytes), ...units]);
  }

  /** Takes units out of the group (before they are deleted); `destroy` also removes the group. */
  async release(sandboxId: string, units: string[], destroy: boolean): Promise<void> {
    if (!this.helper || !(await this.hasGroup(sandboxId))) return;
    const group = String(BtrfsQuota.group(sandboxId));
    await run([this.helper, 'subvol', 'qgroup-release', this.mountPoint, group, destroy ? 'destroy' : 'keep', ...units]);
  }

  async usage(sandboxId: string): Promise<DiskUsage | null> {
    const dir = this.groupDir(sandboxId);
    if (!dir) return null;
    const read = async (f: string): Promise<number | null> => {
      const n = Number((await fsp.readFile(join(dir, f), 'utf8').catch(() => '')).trim());
      return Number.isFinite(n) && n >= 0 ? n : null;
    };
    const [usedBytes, limitBytes] = await Promise.all([read('exclusive'), read('max_exclusive')]);
    if (usedBytes === null) return null;
    return { usedBytes, limitBytes: limitBytes && limitBytes > 0 ? limitBytes : null };
  }
}

/** The filesystem id of the pool, from its superblock (64 KiB in, fsid at byte 32). */
async function poolFsid(poolFile: string): Promise<string> {
  const fh = await fsp.open(poolFile, 'r');
  try {
    const buf = Buffer.alloc(16);
    await fh.read(buf, 0, 16, 0x10000 + 0x20);
    const h = buf.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  } finally {
    await fh.close();
  }
}
