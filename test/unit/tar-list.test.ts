/**
 * Layer listings are what every pre-extraction check reads (device nodes, `..`, whiteouts):
 * a name the listing gets wrong is a check skipped. Hostile names here, through real bsdtar,
 * listed from a file and from a stream fed in small pieces (as a download delivers it).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { rawTar as tarOf, type RawTarEntry } from '../helpers/raw-tar.js';
import { NookError } from '../../src/api/errors.js';
import { listLayerFile, StreamLister, type Member } from '../../src/oci/tar-list.js';


const HOSTILE: RawTarEntry[] = [
  { path: 'dir/', type: 'Directory' },
  { path: 'dir/sp ace', body: 'x' },
  { path: 'dir/.wh.sp ace' },
  { path: 'new\nline', body: 'x' },
  { path: 'back\\slash', body: 'x' },
  { path: 'ünïcode', body: 'x' },
  { path: 'link', type: 'SymbolicLink', linkpath: '../up' },
  { path: 'hard', type: 'Link', linkpath: 'dir/sp ace' },
  { path: '../escape', body: 'x' },
  { path: '/abs', body: 'x' },
  { path: 'mem', type: 'CharacterDevice', devmaj: 1 },
];

const EXPECTED: Member[] = [
  { type: 'd', path: 'dir/' },
  { type: '-', path: 'dir/sp ace' },
  { type: '-', path: 'dir/.wh.sp ace' },
  { type: '-', path: 'new\nline' },
  { type: '-', path: 'back\\slash' },
  { type: '-', path: 'ünïcode' },
  { type: 'l', path: 'link' },
  { type: 'h', path: 'hard' },
  { type: '-', path: '../escape' },
  { type: '-', path: 'abs' },
  { type: 'c', path: 'mem' },
];

async function listStream(bytes: Buffer, piece: number): Promise<Member[]> {
  const l = new StreamLister();
  for (let i = 0; i < bytes.length; i += piece) await l.write(bytes.subarray(i, i + piece));
  return l.finish();
}

describe('layer listings', () => {
  const dir = mkdtempSync('/tmp/nook-tar-list-');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('give every hostile name exactly, from a file and from a stream, plain or gzipped', async () => {
    const plain = tarOf(HOSTILE);
    for (const bytes of [plain, gzipSync(plain)]) {
      const file = join(dir, 'layer');
      writeFileSync(file, bytes);
      assert.deepEqual(await listLayerFile(file), EXPECTED);
      assert.deepEqual(await listStream(bytes, 7), EXPECTED);
    }
  });

  it('refuse a link whose name or target holds the listing\'s own separator, rather than guess its name', async () => {
    // Read as "a" with target "../../b -> c", this symlink's name would hide its `..`.
    for (const evil of [
      { path: 'a -> ../../b', type: 'SymbolicLink' as const, linkpath: 'c' },
      { path: 'x', type: 'SymbolicLink' as const, linkpath: 'y -> z' },
      { path: 'h link to ../x', type: 'Link' as const, linkpath: 'dir/f' },
    ]) {
      const bytes = tarOf([{ path: 'dir/f', body: 'x' }, evil]);
      await assert.rejects(listStream(bytes, 512), (e: unknown) => e instanceof NookError && /cannot tell its name from its target/.test(e.hint ?? ''));
    }
  });

  // (A truncated layer never gets this far: its digest is checked first.)
  it('refuse bytes that are not a tar', async () => {
    await assert.rejects(listStream(Buffer.alloc(70_000, 'x'), 4096), (e: unknown) => e instanceof NookError && /not a readable tar/.test(e.message));
    const file = join(dir, 'garbage');
    writeFileSync(file, Buffer.alloc(70_000, 'x'));
    await assert.rejects(listLayerFile(file), (e: unknown) => e instanceof NookError && /not a readable tar/.test(e.message));
  });
});
