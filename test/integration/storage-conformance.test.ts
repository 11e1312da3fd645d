/**
 * One suite, every StorageDriver (btrfs pool by ioctl, btrfs pool by CLI, dir/overlay), on
 * real filesystems.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, promises as fsp, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BtrfsPoolDriver } from '../../src/storage/btrfs.js';
import { DirDriver } from '../../src/storage/dir.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { mountsUnder } from '../../src/util/fs.js';
import { run } from '../../src/util/proc.js';

const HELPER = join(import.meta.dirname, '..', '..', '..', 'native', 'build', 'nook-init');

const drivers: { name: string; make: (root: string) => StorageDriver }[] = [
  { name: 'btrfs', make: (root) => new BtrfsPoolDriver({ root, sizeBytes: 2 * 1024 ** 3, helper: HELPER }) },
  { name: 'btrfs (CLI)', make: (root) => new BtrfsPoolDriver({ root, sizeBytes: 2 * 1024 ** 3 }) },
  { name: 'dir', make: (root) => new DirDriver(root) },
];

for (const { name, make } of drivers) {
  describe(`storage driver conformance: ${name}`, () => {
    let root: string;
    let driver: StorageDriver;
    /** Read-only images and nested subvolumes exist only where units are btrfs subvolumes: asked of info(), never of the suite's name. */
    let btrfs = false;

    before(async () => {
      root = mkdtempSync('/tmp/nook-storage-');
      driver = make(root);
      await driver.init();
      await driver.init(); // idempotent
      btrfs = driver.info().driver === 'btrfs';
    });
    after(async () => {
      await driver.release();
      assert.deepEqual(await mountsUnder(root), [], 'release leaves nothing mounted');
      rmSync(root, { recursive: true, force: true });
    });

    async function makeImage(id: string, content: string): Promise<void> {
      const staging = await driver.createImageStaging(id);
      writeFileSync(join(staging, 'hello'), content);
      await fsp.mkdir(join(staging, 'dir'));
      await fsp.mkdir(join(staging, 'home'));
      writeFileSync(join(staging, 'home', 'rc'), 'from image');
      await fsp.symlink('hello', join(staging, 'link'));
      await fsp.symlink('/etc', join(staging, 'evil'));
      await driver.commitImage(id);
    }

    it('builds, lists and seals images', async () => {
      await makeImage('img_a', 'from image');
      assert.deepEqual(await driver.listImages(), ['img_a']);
      assert.deepEqual(await driver.listStaging(), []);
      assert.equal(readFileSync(join(driver.imagePath('img_a'), 'hello'), 'utf8'), 'from image');
      if (btrfs) assert.throws(() => writeFileSync(join(driver.imagePath('img_a'), 'x'), 'y'), /EROFS|read-only/i);
    });

    it('gives each sandbox a private writable copy of its image', async () => {
      await driver.createSandbox('sb_one', { imageId: 'img_a' }, []);
      await driver.createSandbox('sb_two', { imageId: 'img_a' }, []);
      const one = await driver.activateRootfs('sb_one');
      const two = await driver.activateRootfs('sb_two');
      assert.equal(readFileSync(join(one, 'hello'), 'utf8'), 'from image');
      assert.equal(await fsp.readlink(join(one, 'link')), 'hello');
      writeFileSync(join(one, 'hello'), 'changed in one');
      writeFileSync(join(one, 'new'), 'new in one');
      assert.equal(readFileSync(join(two, 'hello'), 'utf8'), 'from image');
      assert.ok(!existsSync(join(two, 'new')));
      assert.equal(readFileSync(join(driver.imagePath('img_a'), 'hello'), 'utf8'), 'from image');
      assert.deepEqual((await driver.listSandboxes()).sort(), ['sb_one', 'sb_two']);
      assert.deepEqual(await driver.persistDirs('sb_one'), []);
    });

    it('keeps a sandbox across deactivate, activate and release/init', async () => {
      await driver.deactivateRootfs('sb_one');
      await driver.release();
      await driver.init();
      const one = await driver.activateRootfs('sb_one');
      assert.equal(readFileSync(join(one, 'hello'), 'utf8'), 'changed in one');
      assert.ok(await driver.sandboxExists('sb_one'));
    });

    it('snapshots every unit read-only, and restores independent copies', async () => {
      const one = await driver.activateRootfs('sb_one');
      await driver.snapshotSandbox('sb_one', 'snap_1');
      writeFileSync(join(one, 'hello'), 'after the snapshot');
      await driver.createSandbox('sb_restored', { snapshotId: 'snap_1' }, []);
      const restored = await driver.activateRootfs('sb_restored');
      assert.equal(readFileSync(join(restored, 'hello'), 'utf8'), 'changed in one');
      assert.equal(readFileSync(join(restored, 'new'), 'utf8'), 'new in one');
      writeFileSync(join(restored, 'hello'), 'restored diverges');
      assert.equal(readFileSync(join(one, 'hello'), 'utf8'), 'after the snapshot');
      assert.deepEqual(await driver.listSnapshots(), ['snap_1']);
      assert.ok((await driver.snapshotSizeBytes('snap_1')) > 0);
      await driver.deleteSandbox('sb_restored');
      await driver.deleteSnapshot('snap_1');
      assert.deepEqual(await driver.listSnapshots(), []);
    });

    it('keeps persisted directories across a rootfs reset, seeded from the image', async () => {
      await driver.createSandbox('sb_p', { imageId: 'img_a' }, ['/home', '/data']);
      const dirs = await driver.persistDirs('sb_p');
      assert.equal(dirs.length, 2);
      assert.equal(readFileSync(join(dirs[0] ?? '', 'rc'), 'utf8'), 'from image');
      writeFileSync(join(dirs[1] ?? '', 'kept'), 'survives');
      const rootfs = await driver.activateRootfs('sb_p');
      writeFileSync(join(rootfs, 'scratch'), 'goes away');
      await driver.resetRootfs('sb_p', 'img_a');
      const fresh = await driver.activateRootfs('sb_p');
      assert.ok(!existsSync(join(fresh, 'scratch')));
      assert.equal(readFileSync(join(fresh, 'hello'), 'utf8'), 'from image');
      assert.equal(readFileSync(join((await driver.persistDirs('sb_p'))[1] ?? '', 'kept'), 'utf8'), 'survives');
      // snapshot + restore carry persisted dirs too
      await driver.snapshotSandbox('sb_p', 'snap_p');
      await driver.createSandbox('sb_p2', { snapshotId: 'snap_p' }, []);
      assert.equal(readFileSync(join((await driver.persistDirs('sb_p2'))[1] ?? '', 'kept'), 'utf8'), 'survives');
      await driver.deleteSandbox('sb_p2');
      await driver.deleteSnapshot('snap_p');
    });

    it('refuses to seed a persisted path through a symlink in the image', async () => {
      await assert.rejects(driver.createSandbox('sb_evil', { imageId: 'img_a' }, ['/evil']), /symlink/);
      assert.ok(!(await driver.sandboxExists('sb_evil')), 'a failed create leaves nothing');
      assert.ok(!(await driver.listSandboxes()).includes('sb_evil'));
    });

    it('commits a sandbox, persisted paths included, into a new image', async () => {
      const rootfs = await driver.activateRootfs('sb_p');
      writeFileSync(join(rootfs, 'committed'), 'yes');
      await driver.commitSandbox('sb_p', 'img_c', ['/home', '/data']);
      const img = driver.imagePath('img_c');
      assert.equal(readFileSync(join(img, 'committed'), 'utf8'), 'yes');
      assert.equal(readFileSync(join(img, 'data', 'kept'), 'utf8'), 'survives');
      assert.equal(statSync(join(img, 'hello')).isFile(), true);
      await driver.deleteImage('img_c');
      await driver.deleteSandbox('sb_p');
    });

    it('deletes sandboxes, including subvolumes or dirs a sandbox made inside', async () => {
      const two = await driver.activateRootfs('sb_two');
      if (btrfs) await run(['btrfs', 'subvolume', 'create', join(two, 'nested')]);
      else await fsp.mkdir(join(two, 'nested'));
      await driver.deleteSandbox('sb_two');
      assert.ok(!(await driver.sandboxExists('sb_two')));
      await driver.deleteSandbox('sb_two'); // idempotent
      await driver.deleteSandbox('sb_one');
      assert.deepEqual(await driver.listSandboxes(), []);
    });

    it('discards staging and deletes images', async () => {
      await driver.createImageStaging('img_tmp');
      assert.deepEqual(await driver.listStaging(), ['img_tmp']);
      await driver.discardImageStaging('img_tmp');
      assert.deepEqual(await driver.listStaging(), []);
      await driver.deleteImage('img_a');
      assert.deepEqual(await driver.listImages(), []);
    });

    it('reports what it can do and how full it is', async () => {
      const info = driver.info();
      assert.equal(info.driver, name === 'dir' ? 'dir' : 'btrfs');
      assert.equal(info.constantTimeSnapshots, btrfs);
      // Disk limits need btrfs simple quotas, which the nook-init helper enables by ioctl.
      if (!btrfs) assert.equal(info.diskLimits, false);
      const u = await driver.usage();
      assert.ok(u.sizeBytes > 0 && u.freeBytes > 0 && u.freeBytes <= u.sizeBytes);
    });
  });
}
