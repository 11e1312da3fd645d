/**
 * One suite, every StorageDriver (btrfs pool and dir/overlay), on real filesystems.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, promises as fsp, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

    before(async () => {
      root = mkdtempSync('/tmp/nook-storage-');
      driver = make(root);
      await driver.init();
      await driver.init(); // idempotent
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
      await fsp.symlink('hello', join(staging, 'link'));
      await driver.commitImage(id);
    }

    it('builds, lists and seals images', async () => {
      await makeImage('img_a', 'from image');
      assert.deepEqual(await driver.listImages(), ['img_a']);
      assert.deepEqual(await driver.listStaging(), []);
      assert.equal(readFileSync(join(driver.imagePath('img_a'), 'hello'), 'utf8'), 'from image');
      if (name !== 'dir') {
        assert.throws(() => writeFileSync(join(driver.imagePath('img_a'), 'x'), 'y'), /EROFS|read-only/i);
      }
    });

    it('gives each rootfs a private writable copy of its image', async () => {
      await driver.createRootfs('sb_one', 'img_a');
      await driver.createRootfs('sb_two', 'img_a');
      const one = await driver.activateRootfs('sb_one');
      const two = await driver.activateRootfs('sb_two');
      assert.equal(readFileSync(join(one, 'hello'), 'utf8'), 'from image');
      assert.equal(await fsp.readlink(join(one, 'link')), 'hello');
      writeFileSync(join(one, 'hello'), 'changed in one');
      writeFileSync(join(one, 'new'), 'new in one');
      assert.equal(readFileSync(join(two, 'hello'), 'utf8'), 'from image');
      assert.ok(!existsSync(join(two, 'new')));
      assert.equal(readFileSync(join(driver.imagePath('img_a'), 'hello'), 'utf8'), 'from image');
      assert.deepEqual((await driver.listRootfs()).sort(), ['sb_one', 'sb_two']);
    });

    it('keeps a rootfs across deactivate, activate and release/init', async () => {
      await driver.deactivateRootfs('sb_one');
      await driver.release();
      await driver.init();
      const one = await driver.activateRootfs('sb_one');
      assert.equal(readFileSync(join(one, 'hello'), 'utf8'), 'changed in one');
      assert.ok(await driver.rootfsExists('sb_one'));
    });

    it('deletes rootfs, including subvolumes or dirs a sandbox made inside', async () => {
      const two = await driver.activateRootfs('sb_two');
      if (name !== 'dir') await run(['btrfs', 'subvolume', 'create', join(two, 'nested')]);
      else await fsp.mkdir(join(two, 'nested'));
      await driver.deleteRootfs('sb_two');
      assert.ok(!(await driver.rootfsExists('sb_two')));
      await driver.deleteRootfs('sb_two'); // idempotent
      await driver.deleteRootfs('sb_one');
      assert.deepEqual(await driver.listRootfs(), []);
    });

    it('discards staging and deletes images', async () => {
      await driver.createImageStaging('img_tmp');
      assert.deepEqual(await driver.listStaging(), ['img_tmp']);
      await driver.discardImageStaging('img_tmp');
      assert.deepEqual(await driver.listStaging(), []);
      await driver.deleteImage('img_a');
      assert.deepEqual(await driver.listImages(), []);
    });

    it('reports what it can do', () => {
      const info = driver.info();
      assert.equal(info.driver, name.split(' ')[0]);
      assert.equal(info.constantTimeSnapshots, name !== 'dir');
    });
  });
}
