import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NookError } from '../../src/api/errors.js';
import { run } from '../../src/util/proc.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { sha, tarOf, writeLayout } from '../helpers/oci.js';

/** Writes an OCI layout tar with the given layers and a config naming FROM_IMAGE=1 and /srv. */
async function handMadeLayout(work: string, layers: Buffer[], name: string): Promise<string> {
  const layout = join(work, `layout-${name}`);
  writeLayout(layout, [{ layers, config: { Env: ['FROM_IMAGE=1'], WorkingDir: '/srv' } }], name);
  const out = join(work, `${name}.tar`);
  await run(['tar', '-C', layout, '-cf', out, '.']);
  return out;
}

/** A host directory holding one file an attacker would like to see inside an image. */
function hostFileDir(work: string): string {
  const dir = join(work, 'host-secret');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'secret.txt'), 'host-only\n');
  return dir;
}

describe('OCI image layout export and import', () => {
  let d: TestDaemon;
  let work: string;

  before(async () => {
    d = await startDaemon();
    work = mkdtempSync('/tmp/nook-oci-');
  });
  after(async () => {
    await d.teardown();
    rmSync(work, { recursive: true, force: true });
  });

  it('round-trips a committed sandbox: files, modes, ownership, symlinks, hard links', async () => {
    const sb = await d.client.sandboxes.create({ name: 'src', image: 'minimal', env: { FROM_SANDBOX: 'yes' } });
    const setup = [
      'mkdir -p /work/t/sub',
      'echo data > /work/t/file && chmod 640 /work/t/file && chown 1000:2000 /work/t/file',
      'echo run > /work/t/tool && chmod 4755 /work/t/tool',
      'ln -s file /work/t/link && ln -s /etc/passwd /work/t/abs',
      'ln /work/t/file /work/t/hard',
      'chmod 1777 /work/t/sub && chown 65534:65534 /work/t/sub',
    ].join(' && ');
    assert.equal((await sb.exec(['sh', '-c', setup])).exitCode, 0);
    const listing = 'cd /work/t && for f in file tool link abs hard sub; do stat -c "%n %f %u %g %h" $f; done; readlink link abs; cat file hard';
    const before = (await sb.exec(['sh', '-c', listing])).stdout;
    await sb.commit({ image: 'committed' });
    const file = join(work, 'committed.oci.tar');
    const exported = await d.client.images.export('committed', file);
    assert.ok(exported.sizeBytes > 1000);

    // The layout is well formed and every digest matches, checked without nook's code.
    const layout = join(work, 'unpacked');
    mkdirSync(layout);
    await run(['tar', '-xf', file, '-C', layout]);
    assert.deepEqual(JSON.parse(readFileSync(join(layout, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; size: number; annotations: Record<string, string> }[] };
    const blob = (digest: string): Buffer => {
      const b = readFileSync(join(layout, 'blobs', 'sha256', digest.replace('sha256:', '')));
      assert.equal(`sha256:${sha(b)}`, digest, 'blob matches its digest');
      return b;
    };
    const md = index.manifests[0];
    assert.ok(md);
    assert.equal(md.annotations['org.opencontainers.image.ref.name'], 'committed');
    const manifest = JSON.parse(blob(md.digest).toString()) as { config: { digest: string }; layers: { digest: string; size: number; mediaType: string }[] };
    const config = JSON.parse(blob(manifest.config.digest).toString()) as { rootfs: { diff_ids: string[] }; config: { Env: string[] } };
    assert.ok(config.config.Env.includes('FROM_SANDBOX=yes'));
    const layer = manifest.layers[0];
    assert.ok(layer);
    assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    const { gunzipSync } = await import('node:zlib');
    assert.equal(`sha256:${sha(gunzipSync(blob(layer.digest)))}`, config.rootfs.diff_ids[0], 'diff_id is the digest of the uncompressed layer');
    const owners = await run(['sh', '-c', `tar -tvzf "$1" --numeric-owner | grep -E ' \\./work/t/file$'`, 'sh', join(layout, 'blobs', 'sha256', layer.digest.replace('sha256:', ''))]);
    assert.match(owners.stdout, / 1000\/2000 /, 'ownership is mapped back to ordinary ids in the layer');

    const imported = await d.client.images.import(file, { name: 'reimported' });
    assert.equal(imported.name, 'reimported');
    const copy = await d.client.sandboxes.create({ name: 'copy', image: 'reimported' });
    assert.equal((await copy.exec(['sh', '-c', listing])).stdout, before);
    assert.equal((await copy.exec(['sh', '-c', 'echo $FROM_SANDBOX'])).stdout, 'yes\n');
    await copy.destroy();
    await sb.destroy();
  });

  it('applies layers in order, honouring whiteouts and opaque directories', async () => {
    const l1 = join(work, 'l1');
    mkdirSync(join(l1, 'a'), { recursive: true });
    mkdirSync(join(l1, 'b'), { recursive: true });
    for (const f of ['a/x', 'a/y', 'b/z']) writeFileSync(join(l1, f), f);
    mkdirSync(join(l1, 'bin'));
    await run(['cp', '/bin/busybox', join(l1, 'bin', 'busybox')]);
    for (const applet of ['sh', 'ls', 'pwd']) await run(['ln', '-s', 'busybox', join(l1, 'bin', applet)]);
    const l2 = join(work, 'l2');
    mkdirSync(join(l2, 'a'), { recursive: true });
    mkdirSync(join(l2, 'b'), { recursive: true });
    writeFileSync(join(l2, 'a', '.wh.x'), '');
    writeFileSync(join(l2, 'b', '.wh..wh..opq'), '');
    writeFileSync(join(l2, 'b', 'new'), 'new');
    const file = await handMadeLayout(work, [await tarOf(l1, 'a', 'b', 'bin'), await tarOf(l2, 'a', 'b')], 'layered');
    await d.client.images.import(file, { name: 'layered' });
    const sb = await d.client.sandboxes.create({ name: 'layered', image: 'layered' });
    assert.equal((await sb.exec(['sh', '-c', 'cd / && ls a b && pwd && echo $FROM_IMAGE'])).stdout, 'a:\ny\n\nb:\nnew\n/\n1\n');
    assert.equal((await sb.exec(['pwd'])).stdout, '/srv\n', 'the image config\'s WorkingDir is the default cwd');
    await sb.destroy();
  });

  it('a layer cannot write through a symlink an earlier layer planted: it lands inside the image, never on the host', async () => {
    const victim = mkdtempSync('/tmp/nook-victim-');
    try {
      // Layer 1: busybox plus links out (absolute and ../); layer 2: files "inside" them.
      const py = `
import tarfile, io, sys
def layer(path, entries):
    t = tarfile.open(path, 'w')
    for name, kind, data in entries:
        i = tarfile.TarInfo(name)
        if kind == 'sym':
            i.type = tarfile.SYMTYPE; i.linkname = data; t.addfile(i)
        elif kind == 'file':
            b = data.encode(); i.size = len(b); i.mode = 0o755; t.addfile(i, io.BytesIO(b))
        else:
            i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
    t.close()
bb = open('/bin/busybox', 'rb').read()
t = tarfile.open(sys.argv[1], 'w')
i = tarfile.TarInfo('bin'); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
i = tarfile.TarInfo('bin/busybox'); i.size = len(bb); i.mode = 0o755; t.addfile(i, io.BytesIO(bb))
for a in ['sh', 'ls', 'cat', 'find']:
    i = tarfile.TarInfo('bin/' + a); i.type = tarfile.SYMTYPE; i.linkname = 'busybox'; t.addfile(i)
i = tarfile.TarInfo('abs'); i.type = tarfile.SYMTYPE; i.linkname = sys.argv[3]; t.addfile(i)
i = tarfile.TarInfo('rel'); i.type = tarfile.SYMTYPE; i.linkname = '../../../../../../..' + sys.argv[3]; t.addfile(i)
t.close()
layer(sys.argv[2], [('abs/pwned-abs', 'file', 'x'), ('rel/pwned-rel', 'file', 'y')])
`;
      const l1 = join(work, 'planted-1.tar');
      const l2 = join(work, 'planted-2.tar');
      await run(['python3', '-c', py, l1, l2, victim]);
      const file = await handMadeLayout(work, [readFileSync(l1), readFileSync(l2)], 'planted');
      const outcome = await d.client.images.import(file, { name: 'planted' }).then(
        () => 'imported',
        (e: unknown) => (e instanceof NookError ? e.code : String(e)),
      );
      assert.deepEqual(readdirSync(victim), [], 'nothing written on the host through the planted links');
      if (outcome === 'imported') {
        // The links resolve inside the image, as they would at run time.
        const sb = await d.client.sandboxes.create({ name: 'planted', image: 'planted' });
        assert.deepEqual(readdirSync(victim), []);
        await sb.destroy();
        await d.client.images.remove('planted');
      } else {
        assert.equal(outcome, 'INVALID_ARGUMENT');
        await assert.rejects(d.client.images.get('planted'));
      }
    } finally {
      rmSync(victim, { recursive: true, force: true });
    }
  });

  it('never reads a host file through a link in the archive, nor echoes one', async () => {
    const host = readFileSync('/etc/hostname', 'utf8').trim();
    for (const member of ['index.json', 'manifest.json']) {
      const dir = join(work, `linked-${member}`);
      mkdirSync(dir);
      await run(['ln', '-s', '/etc/hostname', join(dir, member)]);
      writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
      const file = join(work, `linked-${member}.tar`);
      await run(['tar', '-C', dir, '-cf', file, '.']);
      const e = await d.client.images.import(file, { name: 'linked' }).then(
        () => null,
        (err: unknown) => err as NookError,
      );
      assert.equal(e?.code, 'INVALID_ARGUMENT');
      assert.match(e?.message ?? '', /not a plain file/);
      if (host.length >= 4) assert.ok(!(e?.message ?? '').includes(host), 'the host file\'s text is not in the answer');
    }
    await assert.rejects(d.client.images.get('linked'));
  });

  it('never builds an image from host content that a linked blobs/ directory points at', async () => {
    // A host content store (any directory of sha256-named blobs), and an archive whose
    // blobs/ (or blobs/sha256/) is a link to it: every blob then "verifies".
    const hostStore = join(work, 'host-store');
    writeLayout(hostStore, [{ layers: [await tarOf(hostFileDir(work), 'secret.txt')], config: {} }], 'host');
    for (const [name, link, target] of [
      ['linked-blobs', 'blobs', join(hostStore, 'blobs')],
      ['linked-sha256', 'blobs/sha256', join(hostStore, 'blobs', 'sha256')],
    ] as const) {
      const dir = join(work, name);
      mkdirSync(join(dir, 'blobs'), { recursive: true });
      if (link === 'blobs') rmSync(join(dir, 'blobs'), { recursive: true });
      await run(['ln', '-s', target, join(dir, link)]);
      writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
      writeFileSync(join(dir, 'index.json'), readFileSync(join(hostStore, 'index.json')));
      const file = join(work, `${name}.tar`);
      await run(['tar', '-C', dir, '-cf', file, '.']);
      const e = await d.client.images.import(file, { name: 'from-host' }).then(
        () => null,
        (err: unknown) => err as NookError,
      );
      assert.equal(e?.code, 'INVALID_ARGUMENT', `${name}: ${e?.message ?? 'imported an image built from host content'}`);
      assert.match(e?.message ?? '', /outside itself/);
    }
    await assert.rejects(d.client.images.get('from-host'));
  });

  it('refuses tampered, malformed and dangerous archives, leaving no image behind', async () => {
    const good = join(work, 'committed.oci.tar');
    const tampered = join(work, 'tampered');
    mkdirSync(tampered);
    await run(['tar', '-xf', good, '-C', tampered]);
    const idx = JSON.parse(readFileSync(join(tampered, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(readFileSync(join(tampered, 'blobs/sha256', (idx.manifests[0]?.digest ?? '').slice(7)), 'utf8')) as { layers: { digest: string }[] };
    const layerPath = join(tampered, 'blobs/sha256', (manifest.layers[0]?.digest ?? '').slice(7));
    const bytes = readFileSync(layerPath);
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] ?? 0) ^ 0xff;
    writeFileSync(layerPath, bytes);
    await run(['tar', '-C', tampered, '-cf', join(work, 'tampered.tar'), '.']);

    const devDir = join(work, 'dev');
    mkdirSync(devDir);
    await run(['mknod', join(devDir, 'null'), 'c', '1', '3']);
    const withDevice = await handMadeLayout(work, [await tarOf(devDir, 'null')], 'device');
    writeFileSync(join(work, 'not-a-tar'), 'hello');
    // The outer archive itself holding a fifo beside a valid layout: refused before it is unpacked.
    const fifoDir = join(work, 'fifo-outer');
    mkdirSync(fifoDir);
    await run(['tar', '-xf', good, '-C', fifoDir]);
    await run(['mkfifo', join(fifoDir, 'pipe')]);
    await run(['tar', '-C', fifoDir, '-cf', join(work, 'fifo-outer.tar'), '.']);

    const cases: [string, string, string][] = [
      [join(work, 'tampered.tar'), 'DIGEST_MISMATCH', 'does not match its digest'],
      [withDevice, 'INVALID_ARGUMENT', 'device nodes'],
      [join(work, 'not-a-tar'), 'INVALID_ARGUMENT', 'not a tar'],
      [join(work, 'fifo-outer.tar'), 'INVALID_ARGUMENT', 'only files, directories and symlinks'],
    ];
    for (const [file, code, text] of cases) {
      const e = await d.client.images.import(file, { name: 'bad' }).then(
        () => assert.fail(`${file} imported`),
        (err: unknown) => err as NookError,
      );
      assert.equal(e.code, code, e.message);
      assert.match(e.message, new RegExp(text));
    }
    assert.deepEqual((await d.client.images.list()).map((i) => i.name).sort(), ['committed', 'layered', 'minimal', 'reimported']);
    const staging = await run(['ls', join(d.stateDir, 'storage/btrfs/pool/staging')]);
    assert.equal(staging.stdout.trim(), '', 'no half-built image in the pool');
  });
});
