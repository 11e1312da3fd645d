import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { run } from '../../src/util/proc.js';
import { writeSampleTree } from '../helpers/tree.js';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

describe('directory copies (tar streams, tar run inside the sandbox)', () => {
  let d: TestDaemon;
  let sb: Sandbox;
  let work: string;
  let big: Buffer;

  before(async () => {
    work = mkdtempSync('/tmp/nook-dircopy-');
    d = await startDaemon();
    sb = await d.client.sandboxes.create({ name: 'copies', image: 'minimal' });
    const src = join(work, 'src');
    writeSampleTree(src);
    big = randomBytes(20 * 1024 * 1024);
    writeFileSync(join(src, 'big.bin'), big);
  });
  after(async () => {
    await d.teardown();
    rmSync(work, { recursive: true, force: true });
  });

  it('copies a host tree in and back out: contents, modes, symlinks, empty dirs', async () => {
    const r = await sb.files.uploadDir(join(work, 'src'), '/work/in/tree');
    assert.ok(r.bytes > big.length);
    const inside = await sb.exec(['sh', '-c', 'cd /work/in/tree && find . | sort && readlink shortcut && ./run.sh && sha256sum big.bin | cut -d" " -f1']);
    const sha = (await run(['sha256sum', join(work, 'src', 'big.bin')])).stdout.split(' ')[0];
    assert.equal(inside.stdout, `.\n./a\n./a/b\n./a/b/c\n./a/b/c/deep.txt\n./big.bin\n./empty\n./run.sh\n./shortcut\na/b/c/deep.txt\nran\n${sha}\n`);

    const out = await sb.files.download('/work/in/tree', join(work, 'back'));
    assert.equal(out.path, join(work, 'back'));
    assert.deepEqual(out.skipped, []);
    assert.deepEqual(readFileSync(join(work, 'back', 'big.bin')), big);
    assert.equal(readFileSync(join(work, 'back', 'a', 'b', 'c', 'deep.txt'), 'utf8'), 'deep\n');
    assert.equal(readlinkSync(join(work, 'back', 'shortcut')), 'a/b/c/deep.txt');
    assert.equal(statSync(join(work, 'back', 'run.sh')).mode & 0o777, 0o755);
    assert.ok(statSync(join(work, 'back', 'empty')).isDirectory());
    // Into an existing directory: it lands under its own name.
    mkdirSync(join(work, 'into'));
    const again = await sb.files.download('/work/in/tree/a', join(work, 'into'));
    assert.equal(again.path, join(work, 'into', 'a'));
    assert.equal(readFileSync(join(work, 'into', 'a', 'b', 'c', 'deep.txt'), 'utf8'), 'deep\n');
    await rejectsWith(sb.files.download('/work/in/tree/a', join(work, 'into')), 'NAME_TAKEN');
  });

  it('takes only safe things out of a sandbox: no setuid bits, no fifos', async () => {
    await sb.exec(['sh', '-c', 'mkdir -p /work/odd && echo x > /work/odd/suid && chmod 4755 /work/odd/suid && mkfifo /work/odd/pipe']);
    const out = await sb.files.download('/work/odd', join(work, 'odd'));
    assert.equal(statSync(join(work, 'odd', 'suid')).mode & 0o7777, 0o755, 'setuid dropped');
    assert.ok(!existsSync(join(work, 'odd', 'pipe')));
    assert.ok(out.skipped.some((s) => s.startsWith('odd/pipe')));
  });

  it('a hostile archive from a sandbox writes nothing outside the destination', async () => {
    const victim = join(work, 'victim');
    mkdirSync(victim);
    // The sandbox controls its own tar: here it answers with a hand-made hostile archive.
    const evil = join(work, 'evil.tar');
    const py = `
import tarfile, io, sys
t = tarfile.open(sys.argv[1], 'w')
def add(name, data=b'pwned', **kw):
    i = tarfile.TarInfo(name)
    for k, v in kw.items(): setattr(i, k, v)
    i.size = len(data) if i.type == tarfile.REGTYPE else 0
    t.addfile(i, io.BytesIO(data) if i.type == tarfile.REGTYPE else None)
add('loot', type=tarfile.DIRTYPE, mode=0o755)
add('loot/link', type=tarfile.SYMTYPE, linkname=sys.argv[2])
add('loot/link/pwned')
add('loot/../escaped')
add('/abs-pwned-nook-test')
add('loot/hard', type=tarfile.LNKTYPE, linkname='/etc/hostname')
add('loot/dev', type=tarfile.CHRTYPE, devmajor=1, devminor=3)
add('loot/ok.txt', b'fine')
t.close()
`;
    await run(['python3', '-c', py, evil, victim]);
    await sb.files.write('/work/evil.tar', readFileSync(evil));
    await sb.files.mkdir('/usr/local/bin', { parents: true });
    await sb.files.write('/usr/local/bin/tar', '#!/bin/sh\nexec cat /work/evil.tar\n', { mode: 0o755 });
    try {
      const dest = join(work, 'loot-out');
      const result = await sb.files.download('/work/loot', dest).then(
        (r) => r,
        (e: unknown) => e,
      );
      assert.deepEqual(readdirSync(victim), [], 'nothing written through the symlink');
      assert.ok(!existsSync(join(work, 'escaped')), 'no ../ escape');
      assert.ok(!existsSync('/abs-pwned-nook-test'), 'no absolute path');
      if (existsSync(join(dest, 'hard'))) assert.notEqual(lstatSync(join(dest, 'hard')).ino, lstatSync('/etc/hostname').ino, 'no hard link to a host file');
      assert.ok(!existsSync(join(dest, 'dev')), 'no device node');
      assert.ok(!readdirSync(work).some((f) => f.includes('.nook-')), 'no scratch dir left');
      if (!(result instanceof Error)) assert.equal(readFileSync(join(dest, 'ok.txt'), 'utf8'), 'fine');
    } finally {
      await sb.files.remove('/usr/local/bin/tar');
    }
  });

  it('bounds what comes out, and leaves nothing when it stops', async () => {
    await rejectsWith(sb.files.download('/work/in/tree', join(work, 'bounded'), { maxBytes: 1024 * 1024 }), 'PAYLOAD_TOO_LARGE');
    assert.ok(!existsSync(join(work, 'bounded')));
    assert.ok(!readdirSync(work).some((f) => f.includes('.nook-')));
    assert.equal((await sb.exec(['echo', 'still here'])).stdout, 'still here\n', 'the sandbox is fine after a stopped copy');
  });

  it('says NOT_SUPPORTED when the image has no tar, and refuses relative paths', async () => {
    await rejectsWith(sb.files.uploadDir(join(work, 'src'), 'work/rel'), 'INVALID_ARGUMENT');
    await sb.exec(['sh', '-c', 'rm /bin/tar']);
    await rejectsWith(sb.files.uploadDir(join(work, 'src'), '/work/notar'), 'NOT_SUPPORTED');
  });

  it('streams a 1 GiB file in and out without holding it in memory', { timeout: 180_000 }, async () => {
    const sb3 = await d.client.sandboxes.create({ name: 'gib', image: 'minimal' });
    const src = join(work, 'gib.bin');
    await run(['sh', '-c', `head -c 1073741824 /dev/urandom > ${src}`]);
    const sum = async (f: string): Promise<string> => (await run(['sha256sum', f])).stdout.split(' ')[0] ?? '';
    const want = await sum(src);
    const info = await sb3.files.uploadFile(src, '/work/gib.bin');
    assert.equal(info.size, 1024 ** 3);
    assert.equal((await sb3.exec(['sh', '-c', 'sha256sum /work/gib.bin | cut -d" " -f1'], { timeoutMs: 120_000 })).stdout, `${want}\n`);
    rmSync(src);
    const out = await sb3.files.downloadFile('/work/gib.bin', join(work, 'gib.out'), { maxBytes: 2 * 1024 ** 3 });
    assert.equal(out.bytes, 1024 ** 3);
    assert.equal(await sum(join(work, 'gib.out')), want);
    rmSync(join(work, 'gib.out'));
    await sb3.destroy();
  });

  it('an upload cut off part-way leaves the old file as it was, and no temp file', async () => {
    await sb.files.write('/work/keep.txt', 'old contents\n');
    // A raw request that promises 10 MiB, sends 1 MiB and hangs up.
    await new Promise<void>((resolve) => {
      const req = httpRequest({ socketPath: d.socket, method: 'POST', path: `/v1/sandboxes/copies/files/content?path=${encodeURIComponent('/work/keep.txt')}`, headers: { 'content-type': 'application/octet-stream', 'content-length': String(10 * 1024 * 1024) } });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(1024 * 1024, 120), () => setTimeout(() => req.destroy(), 200));
      req.on('close', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await sb.files.read('/work/keep.txt')).toString(), 'old contents\n');
    assert.deepEqual((await sb.files.list('/work')).filter((f) => f.name.startsWith('.nook-write')), []);
  });

  it('nook cp copies directories both ways', async () => {
    const sb2 = await d.client.sandboxes.create({ name: 'cli-copies', image: 'minimal' });
    const up = await d.cli(['cp', '--json', join(work, 'src'), 'cli-copies:/work/project']);
    assert.equal(up.code, 0, up.stderr);
    assert.equal((await sb2.exec(['cat', '/work/project/a/b/c/deep.txt'])).stdout, 'deep\n');
    const down = await d.cli(['cp', '--json', 'cli-copies:/work/project', join(work, 'cli-back')]);
    assert.equal(down.code, 0, down.stderr);
    assert.equal((JSON.parse(down.stdout) as { path: string }).path, join(work, 'cli-back'));
    assert.deepEqual(readFileSync(join(work, 'cli-back', 'big.bin')), big);
    await sb2.destroy();
  });
});
