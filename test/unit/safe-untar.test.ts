import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { rawTar as tarOf } from '../helpers/raw-tar.js';
import { NookError } from '../../src/api/errors.js';
import { safeUntar as sdkUntar } from '../../src/sdk/safe-untar.js';
import { safeUntar as daemonUntar } from '../../src/util/safe-untar.js';


const HOSTILE = tarOf([
  { path: 'ok.txt', body: 'fine' },
  { path: 'suid', mode: 0o4755, body: 'x' },
  { path: '../escape.txt', body: 'out' },
  { path: '/abs.txt', body: 'abs' },
  { path: 'dev', type: 'CharacterDevice' },
  { path: 'fifo', type: 'FIFO' },
  { path: 'hard', type: 'Link', linkpath: '../../etc/passwd' },
  { path: 'link', type: 'SymbolicLink', linkpath: 'ok.txt' },
]);

describe('the SDK and the daemon unpack untrusted tars the same way', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const fresh = (): string => {
    const d = mkdtempSync('/tmp/nook-untar-');
    dirs.push(d);
    return join(d, 'out');
  };

  for (const [name, untar] of [['sdk', sdkUntar], ['daemon', daemonUntar]] as const) {
    it(`${name}: keeps files and symlinks, drops escapes, devices and setuid`, async () => {
      const out = fresh();
      await import('node:fs/promises').then((fs) => fs.mkdir(out));
      const r = await untar(Readable.from([HOSTILE]), out, 1 << 20);
      assert.equal(readFileSync(join(out, 'ok.txt'), 'utf8'), 'fine');
      assert.equal(lstatSync(join(out, 'suid')).mode & 0o7777, 0o755);
      assert.ok(lstatSync(join(out, 'link')).isSymbolicLink(), 'an in-tree symlink is kept as a link');
      for (const gone of ['dev', 'fifo', 'hard']) assert.ok(!existsSync(join(out, gone)), gone);
      assert.ok(!existsSync(join(out, '..', 'escape.txt')));
      assert.deepEqual(r.skipped.sort(), ['../escape.txt (File)', '/abs.txt (File)', 'dev (CharacterDevice)', 'fifo (FIFO)', 'hard (Link)'].sort());
    });
    it(`${name}: answers the same as the other copy, entry by entry`, async () => {
      const outcome = async (f: typeof sdkUntar, entry: Parameters<typeof tarOf>[0][number]): Promise<string> => {
        const out = fresh();
        await import('node:fs/promises').then((fs) => fs.mkdir(out));
        return f(Readable.from([tarOf([entry])]), out, 1 << 20).then(
          (r) => `kept ${r.entries}, skipped ${r.skipped.join(',')}`,
          (e: unknown) => `refused: ${(e as Error).message.split(out).join('<out>')}`,
        );
      };
      const other = name === 'sdk' ? daemonUntar : sdkUntar;
      // A symlink out of the tree (absolute or ../) makes node-tar's strict mode refuse the whole archive, in both.
      const entries: Parameters<typeof tarOf>[0] = [
        { path: 'a', body: 'x' },
        { path: 'abs', type: 'SymbolicLink', linkpath: '/etc/passwd' },
        { path: 'rel', type: 'SymbolicLink', linkpath: '../x' },
        { path: 'd/', type: 'Directory' },
        { path: 'h', type: 'Link', linkpath: 'a' },
        { path: 'blk', type: 'BlockDevice' },
      ];
      for (const e of entries) assert.equal(await outcome(untar, e), await outcome(other, e), e.path);
    });
    it(`${name}: stops at the byte bound with PAYLOAD_TOO_LARGE`, async () => {
      const out = fresh();
      await import('node:fs/promises').then((fs) => fs.mkdir(out));
      const big = tarOf([{ path: 'big', body: 'x'.repeat(100_000) }]);
      await assert.rejects(untar(Readable.from([big]), out, 10_000), (e: unknown) => e instanceof NookError && e.code === 'PAYLOAD_TOO_LARGE');
    });
  }
});
