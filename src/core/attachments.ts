import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import { mountsUnder } from '../util/fs.js';
import { run } from '../util/proc.js';
import type { PolicyManager } from './policy.js';
import type { SandboxManager } from './sandboxes.js';
import { mountError } from './volumes.js';

type Attachment = { kind: 'disk' | 'bundle' | 'dir'; source: string; guest: string; rw?: boolean };

/**
 * What `-v` and `--add-dir` bring into a sandbox besides managed volumes, mounted at every
 * start through the same idmapped hot-mount path: a raw ext4 disk the user owns, a tar
 * bundle turned into a fresh read-only ext4 disk at each start, or a host directory
 * (read-only unless a profile allows rw and the host does too).
 */
export class AttachmentManager {
  constructor(
    private readonly runtime: RuntimeDriver,
    private readonly sandboxes: SandboxManager,
    private readonly policy: PolicyManager,
    /** Core's per-sandbox dirs (host-side disk mounts, bundle disks); one per sandbox under it. */
    private readonly runRoot: string,
  ) {}

  /** Checked at create, before anything exists. */
  check(list: Attachment[], profileAllowsRw: boolean): void {
    for (const a of list) {
      if (a.kind === 'dir') {
        if (!this.policy.setting('hostDirs.allowed')) {
          throw new NookError('POLICY_DENIED', 'host directories are not allowed on this host', { hint: 'package the directory as a tar bundle (-v ./dir.tar:/path) or copy files in with nook cp' });
        }
        if (a.rw && !(profileAllowsRw && this.policy.setting('rwHostDirs.allowed'))) {
          throw new NookError('POLICY_DENIED', `--add-dir ${a.source}:${a.guest}:rw needs a profile that allows rw dirs and rwHostDirs.allowed on this host`, { hint: 'mount it read-only, or use a managed volume' });
        }
      }
      if (a.kind !== 'dir' && a.rw && a.kind === 'bundle') throw new NookError('INVALID_ARGUMENT', 'a tar bundle is always read-only');
    }
  }

  private dir(sandboxId: string): string {
    return join(this.runRoot, sandboxId, 'attach');
  }

  /** Compute up: every attachment the sandbox declared. */
  async attachAll(sandboxId: string): Promise<void> {
    const list = this.sandboxes.record(sandboxId).spec.attach ?? [];
    if (list.length === 0) return;
    const rt = this.runtime.info(sandboxId);
    if (!rt.hotMounts) throw new NookError('NOT_SUPPORTED', `the ${rt.name} runtime cannot mount into a running sandbox, so -v disks, bundles and --add-dir cannot be attached`, { hint: 'copy the files in with nook cp, or use a runtime with hot mounts (crun)' });
    for (const [i, a] of list.entries()) {
      let source = a.source;
      const st = await fsp.stat(a.source).catch(() => null);
      if (!st) throw new NookError('NOT_FOUND', `${a.source} does not exist on the host`);
      if (a.kind === 'dir' && !st.isDirectory()) throw new NookError('INVALID_ARGUMENT', `${a.source} is not a directory`);
      if (a.kind !== 'dir') {
        const mnt = join(this.dir(sandboxId), String(i));
        await fsp.mkdir(mnt, { recursive: true, mode: 0o700 });
        const disk = a.kind === 'bundle' ? await this.buildBundle(a.source, join(this.dir(sandboxId), `bundle-${i}.ext4`)) : a.source;
        const ro = a.kind === 'bundle' || !a.rw;
        const m = await run(['mount', '-t', 'ext4', '-o', `loop,nosuid,nodev${ro ? ',ro' : ''}`, disk, mnt], { allowFail: true });
        if (m.code !== 0) throw new NookError('INVALID_ARGUMENT', `${a.source} is not an ext4 disk image: ${m.stderr.trim()}`);
        source = mnt;
      }
      await this.runtime.mountInto(sandboxId, source, a.guest, { rw: !!a.rw && a.kind !== 'bundle' }).catch((e: unknown) => {
        throw mountError(e, a.source, a.guest);
      });
    }
  }

  /** A tar bundle becomes a one-shot ext4 disk: extracted (no devices, nothing escaping), then mkfs -d. */
  private async buildBundle(tarFile: string, disk: string): Promise<string> {
    const listed = await run(['tar', '-tvf', tarFile], { allowFail: true });
    if (listed.code !== 0) throw new NookError('INVALID_ARGUMENT', `${tarFile} is not a tar archive`);
    for (const line of listed.stdout.split('\n').filter(Boolean)) {
      const name = line.split(/\s+/).slice(5).join(' ').replace(/ -> .*| link to .*/, '');
      if (/^[cb]/.test(line)) throw new NookError('INVALID_ARGUMENT', `bundle ${tarFile} holds a device node (${name}): refused`);
      if (name.startsWith('/') || name.split('/').includes('..')) throw new NookError('INVALID_ARGUMENT', `bundle ${tarFile} holds a path that escapes (${name}): refused`);
    }
    const tree = `${disk}.d`;
    await fsp.rm(tree, { recursive: true, force: true });
    await fsp.mkdir(tree, { recursive: true, mode: 0o755 });
    await run(['tar', '-xf', tarFile, '-C', tree, '--no-same-owner', '--no-same-permissions']);
    const du = await run(['du', '-sk', tree]);
    const kib = Number(du.stdout.split(/\s/)[0]) || 0;
    const sizeKiB = Math.max(8 * 1024, Math.ceil(kib * 1.3) + 4096);
    await fsp.rm(disk, { force: true });
    await run(['mkfs.ext4', '-q', '-d', tree, '-E', 'root_owner=0:0', disk, `${sizeKiB}k`]);
    await fsp.rm(tree, { recursive: true, force: true });
    return disk;
  }

  /** Compute down. */
  async detachAll(sandboxId: string): Promise<void> {
    // Mounts inside the sandbox go with its mount namespace; the host-side disk mounts stay: undo them.
    for (const m of await mountsUnder(this.dir(sandboxId))) await run(['umount', '-l', m], { allowFail: true });
    await fsp.rm(join(this.runRoot, sandboxId), { recursive: true, force: true });
  }
}
