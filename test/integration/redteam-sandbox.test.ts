/**
 * An attacker who is root inside a sandbox, against a real daemon: what the sandbox leaves in
 * its files and the daemon later reads or copies on the host (commit, export), and an image
 * made of many files (what such a sandbox exports, or a registry serves) being imported.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, TestDaemon, waitFor } from '../helpers/daemon.js';
import { writeLayout } from '../helpers/oci.js';
import { rawTar, type RawTarEntry } from '../helpers/raw-tar.js';
import { run } from '../../src/util/proc.js';

/** Resolves with `p`, or with 'timeout' after ms. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

describe('red team: a hostile sandbox rootfs', () => {
  let d: TestDaemon;
  let host: string;
  before(async () => {
    d = await startDaemon();
    host = mkdtempSync('/tmp/nook-redteam-sandbox-');
  });
  after(async () => {
    await d?.teardown();
    rmSync(host, { recursive: true, force: true });
  });

  it('attack: a 4 EiB sparse file committed and exported costs its stored bytes, not its length, and is reported so; sparse files round-trip', async () => {
    const sb = await d.client.sandboxes.create({ name: 'sparse', image: 'minimal' });
    // 1 MiB of data 1 GiB into a 2 GiB file: the rest is holes, which the disk limit does not count.
    const made = await sb.exec(['sh', '-c', 'truncate -s 2G /data && head -c 1048576 /dev/urandom | dd of=/data bs=1M seek=1024 conv=notrunc 2>/dev/null && dd if=/data bs=1M skip=1024 count=1 2>/dev/null | sha256sum']);
    assert.equal(made.exitCode, 0, made.stderr);
    const digest = made.stdout.split(' ')[0] ?? '';
    await sb.commit({ image: 'sparse-data' });
    const file = join(host, 'data.oci.tar');
    const t0 = Date.now();
    await d.client.images.export('sparse-data', file);
    const dataMs = Date.now() - t0;
    // The image comes back with the same bytes and the same holes.
    await d.client.images.import(file, { name: 'sparse-back' });
    const back = await d.client.sandboxes.create({ name: 'back', image: 'sparse-back' });
    const seen = await back.exec(['sh', '-c', 'stat -c %s /data && du -k /data | cut -f1 && dd if=/data bs=1M skip=1024 count=1 2>/dev/null | sha256sum']);
    const [size, usedKiB, sum] = seen.stdout.split('\n');
    assert.equal(size, String(2 * 1024 ** 3));
    assert.ok(Number(usedKiB) < 4096, `the imported file is stored sparse (${usedKiB} KiB used)`);
    assert.equal(sum?.split(' ')[0], digest);

    // The attack: a file of 4 EiB of holes. Before, export read every zero of it through tar
    // and gzip into the state dir, for years, until the host disk was full.
    const hog = await sb.exec(['sh', '-c', 'truncate -s 4611686018427387904 /huge && du -k /huge | cut -f1']);
    assert.equal(hog.exitCode, 0, hog.stderr);
    assert.equal(hog.stdout.trim(), '0');
    await sb.commit({ image: 'sparse-hog' });
    // Sizes in reports are what is stored: before, the image and the sandbox showed 4 EiB
    // (du's apparent size), a figure the sandbox chose.
    const GiB = 1024 ** 3;
    assert.ok((await d.client.images.get('sparse-hog')).sizeBytes < GiB, 'the image size counts stored blocks');
    const kept = (await d.client.retained()).find((i) => i.kind === 'sandbox' && i.name === 'sparse');
    assert.ok(kept && (kept.sizeBytes ?? 0) < GiB, `the sandbox is reported as ${kept?.sizeBytes} bytes`);
    const t1 = Date.now();
    const huge = join(host, 'hog.oci.tar');
    const exported = await within(d.client.images.export('sparse-hog', huge), 30_000);
    const hogMs = Date.now() - t1;
    assert.notEqual(exported, 'timeout', 'export of an image holding a 4 EiB sparse file still running after 30 s');
    assert.ok(statSync(huge).size < 64 * 1024 ** 2, `export is ${statSync(huge).size} bytes`);
    // The member says its full length; the host tools read it as a sparse file.
    const listed = spawnSync('sh', ['-c', `mkdir -p ${host}/l && tar -xf ${huge} -C ${host}/l && for b in ${host}/l/blobs/sha256/*; do bsdtar -tvf "$b" 2>/dev/null | grep ' \\./huge$'; done`], { encoding: 'utf8' });
    assert.match(listed.stdout, / 4611686018427387904 /, listed.stdout + listed.stderr);
    console.log(`export: 2 GiB sparse file ${dataMs} ms; 4 EiB sparse file ${hogMs} ms, ${statSync(huge).size} bytes`);
    // The daemon answers and kept nothing behind in its temp dir.
    await d.client.health();
    const tmp = join(d.stateDir, 'tmp');
    await waitFor(() => !existsSync(tmp) || readdirSync(tmp).every((e) => !e.startsWith('export-')), 5000, 'the export temp dir removed');
  });

  it('attack: an image of 400,000 empty files does not stall the daemon while its ownership is shifted', async () => {
    // 400 directories of 1,000 empty files: 200 MB of tar, 1 MB gzipped.
    const entries: RawTarEntry[] = [];
    for (let i = 0; i < 400; i++) {
      entries.push({ path: `m${i}/`, type: 'Directory', mode: 0o755 });
      for (let j = 0; j < 1000; j++) entries.push({ path: `m${i}/f${j}` });
    }
    const layout = join(host, 'many');
    writeLayout(layout, [{ layers: [rawTar(entries)], config: {} }], 'many');
    const file = join(host, 'many.oci.tar');
    await run(['tar', '-C', layout, '-cf', file, '.']);
    // Every 20 ms a health call: the longest answer is the longest the daemon stopped serving.
    let worstMs = 0;
    let importing = true;
    const probe = (async () => {
      while (importing) {
        const t = Date.now();
        await d.client.health();
        worstMs = Math.max(worstMs, Date.now() - t);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const t0 = Date.now();
    try {
      await d.client.images.import(file, { name: 'many' });
    } finally {
      importing = false;
      await probe;
    }
    console.log(`import of 400,000 files: ${Date.now() - t0} ms, longest health answer ${worstMs} ms`);
    // The files are there, owned by the sandbox's root (host uid 100000), the last ones too.
    const image = join(d.stateDir, 'storage', 'btrfs', 'pool', 'images', (await d.client.images.get('many')).id);
    assert.equal(readdirSync(join(image, 'm399')).length, 1000);
    assert.equal(statSync(join(image, 'm399', 'f999')).uid, 100_000);
    assert.ok(worstMs < 1000, `the daemon answered nothing for ${worstMs} ms during the import`);
  });
});

describe('red team: an export the state dir cannot hold', () => {
  let mnt: string;
  let d: TestDaemon;
  const MiB = 1024 * 1024;
  const filler = (): string => join(mnt, 'filler');
  const freeBytes = (): number => {
    const st = statfsSync(mnt);
    return st.bavail * st.bsize;
  };
  /** Fills the file system until `leaveBytes` are free. */
  const leave = async (leaveBytes: number): Promise<void> => {
    rmSync(filler(), { force: true });
    await run(['fallocate', '-l', String(Math.max(0, freeBytes() - leaveBytes)), filler()]);
  };
  /** Exports `image` while watching the state dir's free space; answers the lowest seen and the outcome. */
  const exportWatched = async (image: string, file: string): Promise<{ lowest: number; error: string | null }> => {
    let lowest = freeBytes();
    const watch = setInterval(() => (lowest = Math.min(lowest, freeBytes())), 5);
    try {
      const done = await within(d.client.images.export(image, file), 120_000);
      return { lowest, error: done === 'timeout' ? 'timeout' : null };
    } catch (e) {
      return { lowest, error: (e as { code?: string }).code ?? String(e) };
    } finally {
      clearInterval(watch);
      lowest = Math.min(lowest, freeBytes());
    }
  };

  before(async () => {
    mnt = mkdtempSync('/tmp/nook-redteam-export-');
    await run(['mount', '-t', 'tmpfs', '-o', 'size=800m', 'tmpfs', mnt]);
    mkdirSync(join(mnt, 'state'));
    d = new TestDaemon(join(mnt, 'state'), { NOOK_POOL_SIZE_GIB: '1' });
    await d.start();
  });
  after(async () => {
    rmSync(filler(), { force: true });
    await d?.teardown();
    for (let i = 0; i < 50 && (await run(['umount', mnt], { allowFail: true })).code !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    rmSync(mnt, { recursive: true, force: true });
  });

  it('attack: exporting 160 MiB a sandbox wrote never takes the state dir below its floor (the pool is a loop file there)', async () => {
    const sb = await d.client.sandboxes.create({ name: 'big', image: 'minimal' });
    const made = await sb.exec(['sh', '-c', 'head -c 167772160 /dev/urandom > /blob && echo ok'], { timeoutMs: 60_000 });
    assert.equal(made.stdout.trim(), 'ok', made.stderr);
    await sb.commit({ image: 'big' });
    const out = mkdtempSync('/tmp/nook-redteam-export-out-');
    try {
      // Room for one copy of the layer and the floor (64 MiB), not for two copies.
      await leave(290 * MiB);
      const fits = await exportWatched('big', join(out, 'big.oci.tar'));
      console.log(`export with 290 MiB free: ${fits.error ?? 'ok'}, lowest free ${Math.round(fits.lowest / MiB)} MiB`);
      assert.equal(fits.error, null, 'an export that fits once is made');
      assert.ok(statSync(join(out, 'big.oci.tar')).size > 160 * MiB);
      assert.ok(fits.lowest >= 48 * MiB, `the export took the state dir down to ${Math.round(fits.lowest / MiB)} MiB free`);
      // Too little room: refused with NO_SPACE, the floor kept, nothing left in the temp dir.
      await leave(150 * MiB);
      const refused = await exportWatched('big', join(out, 'refused.oci.tar'));
      console.log(`export with 150 MiB free: ${refused.error ?? 'ok'}, lowest free ${Math.round(refused.lowest / MiB)} MiB`);
      assert.equal(refused.error, 'NO_SPACE');
      assert.ok(refused.lowest >= 48 * MiB, `the refused export took the state dir down to ${Math.round(refused.lowest / MiB)} MiB free`);
      const tmp = join(d.stateDir, 'tmp');
      await waitFor(() => readdirSync(tmp).every((e) => !e.startsWith('export-')), 5000, 'the export temp dir removed');
      // The pool still takes writes.
      rmSync(filler(), { force: true });
      const after = await sb.exec(['sh', '-c', 'head -c 1048576 /dev/urandom > /after && echo ok']);
      assert.equal(after.stdout.trim(), 'ok', after.stderr);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
