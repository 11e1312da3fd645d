/**
 * Pulls from a hostile registry: a loopback HTTP server that speaks the distribution API
 * and lies about one blob (altered bytes, more bytes than declared, a cut-off body, a tar
 * that escapes or is not a tar). Pulls overlap download and unpack per layer, so a bad
 * layer 3 can fail while layers 1 and 2 are already applied: nothing of them may remain.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { ProgressEvent } from '../../src/api/schemas.js';
import { run } from '../../src/util/proc.js';
import { rejectsWith } from '../helpers/assert.js';
import { bsdtarChildren, routeRegistry } from '../helpers/hostile-registry.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { sha, tarOf } from '../helpers/oci.js';

const cacheDir = mkdtempSync('/tmp/nook-pull-attack-cache-');
const blobDir = join(cacheDir, 'blobs', 'sha256');

/** How the server misbehaves when it sends a blob. */
type Lie = 'none' | 'flip' | 'oversize' | 'cut' | 'short';

interface Served {
  manifest: Buffer;
  blobs: Map<string, { bytes: Buffer; lie: Lie; delayMs: number }>;
}

/** One repository per test image: `repo` -> what its :1 tag serves. */
const repos = new Map<string, Served>();

/** Registers an image whose layers (uncompressed tars) are served gzipped, with `lies[i]` for layer i. */
function serve(repo: string, layers: Buffer[], lies: { lie?: Lie; delayMs?: number }[] = []): { layerHex: string[] } {
  const blobs = new Map<string, { bytes: Buffer; lie: Lie; delayMs: number }>();
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin'] }, rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha(l)}`) } }));
  blobs.set(sha(config), { bytes: config, lie: 'none', delayMs: 0 });
  const descs = layers.map((l, i) => {
    const gz = gzipSync(l);
    blobs.set(sha(gz), { bytes: gz, lie: lies[i]?.lie ?? 'none', delayMs: lies[i]?.delayMs ?? 0 });
    return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sha(gz)}`, size: gz.length };
  });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha(config)}`, size: config.length },
      layers: descs,
    }),
  );
  repos.set(repo, { manifest, blobs });
  return { layerHex: descs.map((d) => d.digest.slice(7)) };
}

function hostileRegistry(): Server {
  return createServer((req, res) => routeRegistry(repos, req, res, (blob) => {
    const send = (): void => {
      const b = Buffer.from(blob.bytes);
      if (blob.lie === 'flip') b[b.length - 20] = (b[b.length - 20] ?? 0) ^ 0xff;
      if (blob.lie === 'oversize') return void res.writeHead(200).end(Buffer.concat([b, Buffer.alloc(64 * 1024, 1)]));
      if (blob.lie === 'short') return void res.writeHead(200).end(b.subarray(0, b.length >> 1));
      if (blob.lie === 'cut') {
        // Promises the whole blob, sends half, hangs up.
        res.writeHead(200, { 'content-length': String(b.length) });
        res.write(b.subarray(0, b.length >> 1), () => res.socket?.destroy());
        return;
      }
      res.writeHead(200, { 'content-length': String(b.length) }).end(b);
    };
    if (blob.delayMs > 0) setTimeout(send, blob.delayMs);
    else send();
  }));
}

describe('pulls from a hostile registry', () => {
  let d: TestDaemon;
  let server: Server;
  let host: string;
  let work: string;

  /** `count` layers of their own (no blob shared with another test): layer N holds /fileN, 1 MiB, with `tag` in it. */
  const layersOf = async (tag: string, count: number): Promise<Buffer[]> => {
    const out: Buffer[] = [];
    for (let n = 1; n <= count; n++) {
      const dir = join(work, `${tag}-${n}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `file${n}`), Buffer.concat([Buffer.from(`${tag}\n`), Buffer.alloc(1024 * 1024, n)]));
      out.push(await tarOf(dir, `file${n}`));
    }
    return out;
  };

  /** Nothing of a failed pull stays: no image, no staging subvolume, no partial of `badHex`, no bsdtar. */
  const assertNothingLeft = async (name: string, badHex?: string): Promise<void> => {
    await assert.rejects(d.client.images.get(name), 'no image');
    const staging = await run(['ls', join(d.stateDir, 'storage/btrfs/pool/staging')]);
    assert.equal(staging.stdout.trim(), '', 'no half-built image in the pool');
    if (badHex) assert.ok(!readdirSync(blobDir).some((f) => f.startsWith(badHex) && !f.endsWith('.partial')), 'the bad blob is not in the cache');
    assert.equal(bsdtarChildren(d.proc?.pid ?? -1), 0, 'no lister or extractor left running');
  };

  before(async () => {
    work = mkdtempSync('/tmp/nook-pull-attack-');
    d = await startDaemon({ NOOK_CACHE_DIR: cacheDir });
    server = hostileRegistry();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await d?.teardown();
    server?.close();
    rmSync(work, { recursive: true, force: true });
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('pulls a well-behaved image from it (the baseline the attacks below depart from)', async () => {
    serve('good', await layersOf('good', 3));
    const img = await d.client.images.pull(`${host}/library/good:1`, { name: 'good' });
    const root = join(d.stateDir, 'storage/btrfs/pool/images', img.id);
    for (const n of [1, 2, 3]) assert.equal(readFileSync(join(root, `file${n}`)).subarray(0, 5).toString(), 'good\n');
    await d.client.images.remove('good');
  });

  it('a bad layer 3 while layers 1 and 2 are already applied leaves no image, no staging, no partial, nothing running', async () => {
    const { layerHex } = serve('bad3', await layersOf('bad3', 3), [{}, {}, { lie: 'flip', delayMs: 1500 }]);
    const events: ProgressEvent[] = [];
    await rejectsWith(d.client.images.pull(`${host}/library/bad3:1`, { name: 'bad3', onProgress: (e) => events.push(e) }), 'DIGEST_MISMATCH', /sha256:/);
    const unpacked = events.filter((e) => e.type === 'progress' && e.phase === 'unpack').map((e) => (e.type === 'progress' ? e.message : ''));
    assert.ok(unpacked.some((m) => m.startsWith('layer 2/3')), `layers 1 and 2 were applied before layer 3 failed: ${unpacked.join('; ')}`);
    await assertNothingLeft('bad3', layerHex[2]);
    assert.ok(!existsSync(join(blobDir, `${layerHex[2]}.partial`)), 'an altered blob is not kept to resume from');
  });

  it('a bad layer 1 cancels the downloads of the layers above it', async () => {
    const { layerHex } = serve('bad1', await layersOf('bad1', 4), [{ lie: 'flip' }, { delayMs: 3000 }, { delayMs: 3000 }, { delayMs: 3000 }]);
    const t0 = Date.now();
    await rejectsWith(d.client.images.pull(`${host}/library/bad1:1`, { name: 'bad1' }), 'DIGEST_MISMATCH');
    assert.ok(Date.now() - t0 < 2500, `the failure is reported without waiting for the slow layers (${Date.now() - t0} ms)`);
    await assertNothingLeft('bad1', layerHex[0]);
    // Past the moment the slow layers would have arrived: a failed pull downloads nothing more.
    await new Promise((r) => setTimeout(r, 3500));
    for (const hex of layerHex.slice(1)) assert.ok(!existsSync(join(blobDir, hex)), 'a cancelled layer was not fetched in the background');
    assert.equal(bsdtarChildren(d.proc?.pid ?? -1), 0);
  });

  it('a layer bigger than its descriptor is cut off at the declared size and refused', async () => {
    const layers = await layersOf('big', 2);
    const { layerHex } = serve('big', layers, [{}, { lie: 'oversize' }]);
    await rejectsWith(d.client.images.pull(`${host}/library/big:1`, { name: 'big' }), 'DIGEST_MISMATCH', /larger than its declared/);
    await assertNothingLeft('big', layerHex[1]);
    const partial = join(blobDir, `${layerHex[1]}.partial`);
    const declared = gzipSync(layers[1] ?? Buffer.alloc(0)).length;
    if (existsSync(partial)) assert.ok(readFileSync(partial).length <= declared, 'never more than the declared size on disk');
  });

  it('a truncated layer (short body, or a connection cut mid-body) is refused with a clear error', async () => {
    const short = serve('short', await layersOf('short', 2), [{}, { lie: 'short' }]);
    await rejectsWith(d.client.images.pull(`${host}/library/short:1`, { name: 'short' }), 'DIGEST_MISMATCH', /bytes\)/);
    await assertNothingLeft('short', short.layerHex[1]);
    const cut = serve('cut', await layersOf('cut', 2), [{}, { lie: 'cut' }]);
    await rejectsWith(d.client.images.pull(`${host}/library/cut:1`, { name: 'cut' }), 'REGISTRY_ERROR', /cut off/);
    await assertNothingLeft('cut', cut.layerHex[1]);
  });

  it('a layer with ../ paths, a device node, or bytes that are no tar is refused before anything of it lands', async () => {
    const evil = join(work, 'evil');
    mkdirSync(evil, { recursive: true });
    writeFileSync(join(evil, 'payload'), 'pwned\n');
    const escaping = (await run(['sh', '-c', `bsdtar -P -C "${evil}" -s ',^payload,../../payload,' -cf - payload | base64 -w0`])).stdout;
    serve('escape', [...(await layersOf('escape', 1)), Buffer.from(escaping, 'base64')]);
    await rejectsWith(d.client.images.pull(`${host}/library/escape:1`, { name: 'escape' }), 'INVALID_ARGUMENT', /escapes the image/);
    await assertNothingLeft('escape');

    const dev = join(work, 'dev');
    mkdirSync(dev, { recursive: true });
    await run(['mknod', join(dev, 'mem'), 'c', '1', '1']);
    serve('device', [await tarOf(dev, 'mem')]);
    await rejectsWith(d.client.images.pull(`${host}/library/device:1`, { name: 'device' }), 'INVALID_ARGUMENT', /device nodes/);
    await assertNothingLeft('device');

    serve('notar', [...(await layersOf('notar', 1)), Buffer.alloc(70_000, 'x')]);
    await rejectsWith(d.client.images.pull(`${host}/library/notar:1`, { name: 'notar' }), 'INVALID_ARGUMENT', /not a readable tar/);
    await assertNothingLeft('notar');
  });
});
