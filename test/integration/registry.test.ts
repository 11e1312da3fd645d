import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { ProgressEvent } from '../../src/api/schemas.js';
import { run } from '../../src/util/proc.js';
import { rejectsWith } from '../helpers/assert.js';
import { CLI_MAIN, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { sha, tarOf, writeLayout } from '../helpers/oci.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, startRegistry, type TestRegistry } from '../helpers/registry.js';

const auth = { username: REGISTRY_USER, password: REGISTRY_PASSWORD };
/** This test's daemon gets a cache dir of its own, so its blob cache is its own too. */
const cacheDir = mkdtempSync('/tmp/nook-registry-cache-');
const blobDir = join(cacheDir, 'blobs', 'sha256');

/** Two layers: a busybox userland with files, then whiteouts, an opaque dir and new files. */
async function buildLayers(work: string): Promise<Buffer[]> {
  const l1 = join(work, 'l1');
  for (const d of ['bin', 'etc', 'app', 'cfg', 'data', 'tmp']) mkdirSync(join(l1, d), { recursive: true });
  await run(['cp', '/bin/busybox', join(l1, 'bin', 'busybox')]);
  for (const applet of ['sh', 'cat', 'ls', 'id', 'stat', 'pwd', 'echo']) await run(['ln', '-s', 'busybox', join(l1, 'bin', applet)]);
  writeFileSync(join(l1, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/app:/bin/sh\n');
  writeFileSync(join(l1, 'etc', 'group'), 'root:x:0:\napp:x:1000:\n');
  writeFileSync(join(l1, 'app', 'old.txt'), 'old\n');
  writeFileSync(join(l1, 'app', 'gone.txt'), 'gone\n');
  writeFileSync(join(l1, 'cfg', 'a.conf'), 'a\n');
  writeFileSync(join(l1, 'data', 'one'), 'linked\n');
  await run(['ln', join(l1, 'data', 'one'), join(l1, 'data', 'two')]);
  await run(['ln', '-s', 'old.txt', join(l1, 'app', 'link')]);
  const l2 = join(work, 'l2');
  for (const d of ['app', 'cfg']) mkdirSync(join(l2, d), { recursive: true });
  writeFileSync(join(l2, 'app', '.wh.gone.txt'), '');
  writeFileSync(join(l2, 'cfg', '.wh..wh..opq'), '');
  writeFileSync(join(l2, 'cfg', 'b.conf'), 'b\n');
  writeFileSync(join(l2, 'app', 'new.txt'), 'new\n');
  return [await tarOf(l1, 'bin', 'etc', 'app', 'cfg', 'data', 'tmp'), await tarOf(l2, 'app', 'cfg')];
}

/** A layer holding /marker with `text`. */
async function markerLayer(work: string, text: string): Promise<Buffer> {
  const dir = join(work, `marker-${text}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'marker'), `${text}\n`);
  return tarOf(dir, 'marker');
}

/** An OCI layout directory as a tar to import. */
async function layoutTar(work: string, layout: string, name: string): Promise<string> {
  const file = join(work, `${name}.tar`);
  await run(['tar', '-C', layout, '-cf', file, '.']);
  return file;
}

describe('images from registries and archives', () => {
  let d: TestDaemon;
  let reg: TestRegistry;
  let work: string;
  let amd64ManifestDigest: string;
  let layers: Buffer[];

  before(async () => {
    work = mkdtempSync('/tmp/nook-registry-test-');
    [d, reg] = await Promise.all([startDaemon({ NOOK_CACHE_DIR: cacheDir }), startRegistry()]);
    layers = await buildLayers(work);
    const config = { Env: ['PATH=/bin', 'GREETING=hello'], WorkingDir: '/app', User: 'app', Cmd: ['sh', '-c', 'echo from-cmd'] };
    // A multi-platform index: nook must choose linux/amd64, not the first entry.
    const { manifests } = writeLayout(
      join(work, 'layout'),
      [
        { layers: [layers[0] ?? Buffer.alloc(0)], config: { ...config, Env: ['PATH=/bin', 'ARCH=arm64'] }, architecture: 'arm64' },
        { layers, config, architecture: 'amd64' },
      ],
      '1.0',
    );
    amd64ManifestDigest = manifests[1]?.digest ?? '';
    await reg.push(`oci:${join(work, 'layout')}:1.0`, 'library/tools:1.0', true);
  });
  after(async () => {
    await d?.teardown();
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('pulls through token auth: linux/amd64 from an index, layers in order, config as defaults', async () => {
    const events: ProgressEvent[] = [];
    const granted = reg.tokens.granted;
    const img = await d.client.images.pull(`${reg.host}/library/tools:1.0`, { auth, onProgress: (e) => events.push(e) });
    assert.equal(img.name, 'tools:1.0');
    assert.equal(img.digest, amd64ManifestDigest, 'the amd64 manifest, found through the index');
    assert.equal(img.source, `${reg.host}/library/tools:1.0`);
    assert.equal(img.layers.length, 2);
    assert.deepEqual(img.config.cmd, ['sh', '-c', 'echo from-cmd']);
    assert.equal(img.config.user, 'app');
    assert.ok(reg.tokens.granted > granted, 'the registry sent us to its token service');
    assert.ok(events.some((e) => e.type === 'progress' && e.phase === 'download'), 'progress while downloading');

    const sb = await d.client.sandboxes.create({ name: 'tools', image: 'tools:1.0' });
    const r = await sb.exec(['sh', '-c', 'pwd; id -u; echo $GREETING $ARCH; ls /app; ls /cfg; cat /app/link; stat -c %h /data/one']);
    assert.equal(r.stdout, '/app\n1000\nhello\nlink\nnew.txt\nold.txt\nb.conf\nold\n2\n');
    assert.equal((await sb.exec(['id', '-u'], { user: 'root' })).stdout, '0\n', 'an explicit user wins over the image\'s');
    const inspected = await d.client.images.get('tools:1.0');
    assert.deepEqual(inspected.usedBy, ['tools']);
    await sb.destroy();
  });

  it('shares the blob cache: a second pull of the same image downloads nothing', async () => {
    const events: ProgressEvent[] = [];
    const again = await d.client.images.pull(`${reg.host}/library/tools:1.0`, { auth, name: 'tools-copy', onProgress: (e) => events.push(e) });
    assert.equal(again.digest, amd64ManifestDigest);
    assert.ok(!events.some((e) => e.type === 'progress' && e.phase === 'download'), 'no blob fetched again');
    const same = await d.client.images.pull(`${reg.host}/library/tools:1.0`, { auth });
    assert.equal(same.name, 'tools:1.0', 'pulling an unchanged tag answers with the image it already has');
    await d.client.images.remove('tools-copy');
  });

  it('resumes an interrupted layer download and verifies the whole of it', async () => {
    const layerHex = sha(readFileSync(join(work, 'layout', 'blobs', 'sha256', (await d.client.images.get('tools:1.0')).layers[0]?.digest.slice(7) ?? '')));
    const full = readFileSync(join(blobDir, layerHex));
    rmSync(join(blobDir, layerHex));
    // Half of the real blob, as a download cut off part-way leaves it.
    writeFileSync(join(blobDir, `${layerHex}.partial`), full.subarray(0, Math.floor(full.length / 2)));
    await d.client.images.pull(`${reg.host}/library/tools:1.0`, { auth, name: 'resumed' });
    assert.deepEqual(readFileSync(join(blobDir, layerHex)), full);
    assert.ok(!existsSync(join(blobDir, `${layerHex}.partial`)));
    await d.client.images.remove('resumed');

    // A partial file with wrong bytes is caught by the digest check, and then retried clean.
    rmSync(join(blobDir, layerHex));
    writeFileSync(join(blobDir, `${layerHex}.partial`), Buffer.alloc(1000, 7));
    await rejectsWith(d.client.images.pull(`${reg.host}/library/tools:1.0`, { auth, name: 'resumed' }), 'DIGEST_MISMATCH');
    await assert.rejects(d.client.images.get('resumed'), 'no half-made image');
    await d.client.images.pull(`${reg.host}/library/tools:1.0`, { auth, name: 'resumed' });
    await d.client.images.remove('resumed');
  });

  it('refuses a blob the registry altered, leaving no image and no staging behind', async () => {
    const { manifests } = writeLayout(join(work, 'victim'), [{ layers: [layers[0] ?? Buffer.alloc(0)], config: { Env: ['PATH=/bin'] } }], 'v1');
    await reg.push(`oci:${join(work, 'victim')}:v1`, 'library/victim:v1');
    const manifest = JSON.parse(readFileSync(join(work, 'victim', 'blobs', 'sha256', manifests[0]?.digest.slice(7) ?? ''), 'utf8')) as { layers: { digest: string }[] };
    const hex = manifest.layers[0]?.digest.slice(7) ?? '';
    const stored = join(reg.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = readFileSync(stored);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 20] = (flipped[flipped.length - 20] ?? 0) ^ 0xff;
    writeFileSync(stored, flipped);
    rmSync(join(blobDir, hex), { force: true });
    await rejectsWith(d.client.images.pull(`${reg.host}/library/victim:v1`, { auth }), 'DIGEST_MISMATCH');
    await assert.rejects(d.client.images.get('victim:v1'));
    assert.ok(!readdirSync(blobDir).some((f) => f.startsWith(hex)), 'nothing of the bad blob kept');
    writeFileSync(stored, bytes);
  });

  it('answers wrong credentials, unknown tags and unreachable registries with clear codes', async () => {
    await rejectsWith(d.client.images.pull(`${reg.host}/library/tools:1.0`, { name: 'x1' }), 'REGISTRY_AUTH_FAILED');
    await rejectsWith(d.client.images.pull(`${reg.host}/library/tools:1.0`, { name: 'x1', auth: { username: REGISTRY_USER, password: 'wrong' } }), 'REGISTRY_AUTH_FAILED');
    await rejectsWith(d.client.images.pull(`${reg.host}/library/tools:9.9`, { auth }), 'IMAGE_NOT_FOUND');
    await rejectsWith(d.client.images.pull('127.0.0.1:1/library/tools:1.0'), 'REGISTRY_ERROR');
    await rejectsWith(d.client.images.pull('Not A Reference'), 'INVALID_ARGUMENT');
    // A registry that fails: its status, not a 500 of ours.
    const sizeless = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'a'.repeat(64)}` },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'b'.repeat(64)}` }],
    });
    // A registry that fails outright, and one whose manifest leaves a download unbounded.
    const broken = createServer((req, res) => {
      if (req.url?.includes('/nosize/manifests/')) res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(sizeless);
      else res.writeHead(500).end('{"errors":[{"code":"UNKNOWN"}]}');
    });
    await new Promise<void>((r) => broken.listen(0, '127.0.0.1', r));
    try {
      await rejectsWith(d.client.images.pull(`127.0.0.1:${(broken.address() as AddressInfo).port}/library/tools:1.0`), 'REGISTRY_ERROR', /500/);
      await rejectsWith(d.client.images.pull(`127.0.0.1:${(broken.address() as AddressInfo).port}/library/nosize:1`), 'REGISTRY_ERROR', /declares no usable size/);
    } finally {
      broken.close();
    }
    // Only an arm64 image under that tag: no linux/amd64 to run here.
    writeLayout(join(work, 'arm-only'), [{ layers: [layers[0] ?? Buffer.alloc(0)], config: { Env: ['PATH=/bin'] }, architecture: 'arm64' }, { layers: [layers[0] ?? Buffer.alloc(0)], config: { Env: ['PATH=/bin'] }, architecture: 'ppc64le' }], 'arm');
    await reg.push(`oci:${join(work, 'arm-only')}:arm`, 'library/tools:arm', true);
    await rejectsWith(d.client.images.pull(`${reg.host}/library/tools:arm`, { auth }), 'NOT_SUPPORTED', /linux\/arm64/);
    const audit = await d.client.audit.list({ action: 'pullImage' });
    assert.ok(audit.length > 0);
    assert.ok(!JSON.stringify(audit).includes(REGISTRY_PASSWORD), 'the password is never in the audit log');
  });

  it('imports a docker save archive (written by skopeo) and refuses a tampered one', async () => {
    const archive = join(work, 'tools.docker.tar');
    await run(['skopeo', 'copy', '--quiet', `oci:${join(work, 'layout')}:1.0`, `docker-archive:${archive}:tools:1.0`]);
    const img = await d.client.images.import(archive, { name: 'from-docker' });
    assert.equal(img.source, 'import:docker-archive');
    assert.equal(img.config.user, 'app');
    const sb = await d.client.sandboxes.create({ name: 'docker', image: 'from-docker' });
    assert.equal((await sb.exec(['sh', '-c', 'ls /app /cfg'])).stdout, '/app:\nlink\nnew.txt\nold.txt\n\n/cfg:\nb.conf\n');
    await sb.destroy();

    const unpacked = join(work, 'docker-unpacked');
    mkdirSync(unpacked);
    await run(['tar', '-xf', archive, '-C', unpacked]);
    const entry = (JSON.parse(readFileSync(join(unpacked, 'manifest.json'), 'utf8')) as { Layers: string[] }[])[0];
    const layerFile = join(unpacked, entry?.Layers[1] ?? '');
    const raw = readFileSync(layerFile);
    const plain = raw[0] === 0x1f ? gunzipSync(raw) : raw;
    assert.ok(plain.includes(Buffer.from('new\n')));
    writeFileSync(layerFile, Buffer.concat([plain.subarray(0, 512), Buffer.from(plain.subarray(512)).fill(0, 0, 4)]));
    const bad = join(work, 'bad.docker.tar');
    await run(['tar', '-C', unpacked, '-cf', bad, '.']);
    await rejectsWith(d.client.images.import(bad, { name: 'bad-docker' }), 'DIGEST_MISMATCH');
    await assert.rejects(d.client.images.get('bad-docker'));
  });

  it('the blob cache is retained state: listed, and dropped by gc', async () => {
    const item = (await d.client.retained()).find((i) => i.kind === 'blobs');
    assert.ok(item && (item.sizeBytes ?? 0) > 0, 'the cache is listed with its size');
    const dry = await d.client.gc({ olderThanMs: 0, kinds: ['blobs'], dryRun: true });
    assert.equal(dry.deleted[0]?.kind, 'blobs');
    assert.ok(readdirSync(blobDir).length > 0, 'a dry run deletes nothing');
    await d.client.gc({ olderThanMs: 0, kinds: ['blobs'] });
    assert.deepEqual(readdirSync(blobDir), []);
    // Images do not need their blobs: they still run, and a pull fetches again.
    const sb = await d.client.sandboxes.create({ name: 'after-gc', image: 'tools:1.0' });
    assert.equal((await sb.exec(['cat', '/app/new.txt'])).stdout, 'new\n');
    await sb.destroy();
    const events: ProgressEvent[] = [];
    await d.client.images.pull(`${reg.host}/library/tools:1.0`, { auth, name: 'refetched', onProgress: (e) => events.push(e) });
    assert.ok(events.some((e) => e.type === 'progress' && e.phase === 'download'));
    await d.client.images.remove('refetched');
  });

  it('nook image pull and inspect from the CLI, with the password on stdin', async () => {
    const pulled = await run(['sh', '-c', 'printf %s "$PW" | node "$CLI" image pull --json --username "$U" --password-stdin --name cli-tools "$REF"'], {
      env: { ...process.env, ...d.env, PW: REGISTRY_PASSWORD, U: REGISTRY_USER, CLI: CLI_MAIN, REF: `${reg.host}/library/tools:1.0` },
    });
    assert.equal((JSON.parse(pulled.stdout) as { digest: string }).digest, amd64ManifestDigest);
    const shown = await run(['node', CLI_MAIN, 'image', 'inspect', 'cli-tools'], { env: { ...process.env, ...d.env } });
    assert.match(shown.stdout, new RegExp(`digest: +${amd64ManifestDigest}`));
    assert.match(shown.stdout, /layers: +2/);
    assert.match(shown.stdout, /user: +app/);
  });
  it('run and create take a registry reference and pull it as --pull says (missing, always, never)', async () => {
    // Version 1 of a public image (anonymous pulls), and a local image that already holds its default name.
    const v1 = join(work, 'pub-v1');
    writeLayout(v1, [{ layers: [...layers, await markerLayer(work, 'v1')], config: { Env: ['PATH=/bin'], WorkingDir: '/' } }], '1');
    await reg.push(`oci:${v1}:1`, 'public/tool:1');
    await d.client.images.import(await layoutTar(work, v1, 'squatter'), { name: 'tool:1' });
    const ref = `${reg.host}/public/tool:1`;
    const env = { ...process.env, ...d.env };

    await rejectsWith(d.client.sandboxes.create({ name: 'never', image: ref, pull: 'never' }), 'IMAGE_NOT_FOUND', /never pulled/);
    const first = await run(['node', CLI_MAIN, 'run', '--image', ref, '--', 'cat', '/marker'], { env });
    assert.equal(first.stdout, 'v1\n');
    const pulled = (await d.client.images.list()).find((i) => i.source === ref);
    assert.ok(pulled && pulled.name !== 'tool:1', `pulled under a free name, the local tool:1 untouched: ${pulled?.name}`);
    assert.equal((await d.client.images.get('tool:1')).source.startsWith('import'), true);

    // The registry moves on; missing keeps what was pulled, never too, always fetches v2.
    const v2 = join(work, 'pub-v2');
    writeLayout(v2, [{ layers: [...layers, await markerLayer(work, 'v2')], config: { Env: ['PATH=/bin'], WorkingDir: '/' } }], '1');
    await reg.push(`oci:${v2}:1`, 'public/tool:1');
    const held = await d.client.sandboxes.create({ name: 'holds-v1', image: ref });
    assert.equal((await held.exec(['cat', '/marker'])).stdout, 'v1\n');
    const never = await d.client.run(['cat', '/marker'], { image: ref, pull: 'never' });
    assert.equal(never.stdout, 'v1\n');
    const always = await run(['node', CLI_MAIN, 'create', '--name', 'fresh', '--image', ref, '--pull', 'always', '--json'], { env });
    assert.equal(always.code, 0, always.stderr);
    assert.equal((await (await d.client.sandboxes.get('fresh')).exec(['cat', '/marker'])).stdout, 'v2\n');
    assert.equal((await held.exec(['cat', '/marker'])).stdout, 'v1\n', 'the sandbox on v1 keeps its image, set aside under another name');
    const names = (await d.client.images.list()).filter((i) => i.source === ref).map((i) => i.name);
    assert.equal(names.length, 2, names.join(', '));

    const bad = await run(['node', CLI_MAIN, 'run', '--image', ref, '--pull', 'sometimes', '--', 'true'], { env, allowFail: true });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--pull takes missing, always, never/);
    for (const sb of ['holds-v1', 'fresh']) await d.client.sandboxes.get(sb).then((s) => s.destroy());
  });
});
