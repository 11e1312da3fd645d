/**
 * Red team, pull pipeline: layers built to make the streaming bsdtar listing (the input of
 * every check made before a layer lands) cost the daemon unbounded memory. A few hundred
 * KiB of gzip can list as hundreds of MiB of names (pax entries with 1 MiB paths), or as
 * millions of members, or (zstd RLE blocks: 4 bytes per 128 KiB) as a 1 TiB file of zeros
 * that extraction would write until the pool is full; the listing must stop at a bound with
 * a clear error, kill bsdtar and leave nothing behind. Loopback registry only.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createGzip } from 'node:zlib';
import { rejectsWith } from '../helpers/assert.js';
import { bsdtarChildren, routeRegistry } from '../helpers/hostile-registry.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { sha } from '../helpers/oci.js';

/** A ustar header block (name, type, size), checksum filled in. */
function header(name: string, type: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 99), 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** A zstd frame (128 KiB window) of raw blocks for `raw` and RLE blocks for runs of one byte. */
function zstdFrame(parts: ({ raw: Buffer } | { run: number; byte: number })[]): Buffer {
  const out: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38])];
  const block = (last: boolean, type: number, size: number, body: Buffer): void => {
    const h = (last ? 1 : 0) | (type << 1) | (size << 3);
    out.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]), body);
  };
  const blocks: [number, number, Buffer][] = [];
  for (const p of parts) {
    if ('raw' in p) blocks.push([0, p.raw.length, p.raw]);
    else for (let left = p.run; left > 0; left -= 131072) blocks.push([1, Math.min(left, 131072), Buffer.from([p.byte])]);
  }
  blocks.forEach(([type, size, body], i) => block(i === blocks.length - 1, type, size, body));
  return Buffer.concat(out);
}

/** A tar header whose size field is base-256 (sizes past 8 GiB). */
function bigHeader(name: string, sizeBytes: bigint): Buffer {
  const h = header(name, '0', 0);
  h.fill(0, 124, 136);
  h[124] = 0x80;
  for (let i = 135, v = sizeBytes; i > 124; i--, v >>= 8n) h[i] = Number(v & 0xffn);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** One empty file whose pax path is `name`: a pax extended header, then the file's own header. */
function paxEntry(name: string): Buffer {
  const body = ` path=${name}\n`;
  let len = body.length + 1;
  while (`${len}${body}`.length !== len) len = `${len}${body}`.length;
  const record = Buffer.from(`${len}${body}`);
  const padded = Buffer.alloc(Math.ceil(record.length / 512) * 512);
  record.copy(padded);
  return Buffer.concat([header('PaxHeader', 'x', record.length), padded, header('f', '0', 0)]);
}

/** gzip of `count` repeats of `entry` and the end-of-archive blocks, streamed (never whole in memory). */
async function gzipRepeats(entry: (i: number) => Buffer, count: number): Promise<Buffer> {
  const source = Readable.from(
    (function* () {
      for (let i = 0; i < count; i++) yield entry(i);
      yield Buffer.alloc(1024);
    })(),
  );
  const out: Buffer[] = [];
  for await (const c of source.pipe(createGzip({ level: 1 })) as AsyncIterable<Buffer>) out.push(c);
  return Buffer.concat(out);
}

const repos = new Map<string, { manifest: Buffer; blobs: Map<string, Buffer> }>();

function serveLayer(repo: string, gz: Buffer, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip'): void {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha(config)}`, size: config.length },
      layers: [{ mediaType, digest: `sha256:${sha(gz)}`, size: gz.length }],
    }),
  );
  repos.set(repo, { manifest, blobs: new Map([[sha(config), config], [sha(gz), gz]]) });
}

function registry(): Server {
  return createServer((req, res) => routeRegistry(repos, req, res, (blob, repo) => {
    res.writeHead(200, { 'content-length': String(blob.length) });
    if (repo !== 'slow' || blob.length < 1000) return void res.end(blob);
    // One byte a second, for ever (the client must give up).
    let i = 0;
    const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write(blob.subarray(i, ++i))), 1000);
    res.on('close', () => clearInterval(timer));
  }));
}

/** The daemon's peak resident memory so far, MiB. */
const peakMiB = (pid: number): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;


describe('red team: pull listing bombs', () => {
  let d: TestDaemon;
  let server: Server;
  let host: string;
  const cacheDir = mkdtempSync('/tmp/nook-redteam-pull-cache-');

  before(async () => {
    d = await startDaemon({ NOOK_CACHE_DIR: cacheDir, NOOK_REGISTRY_TIMEOUT_MS: '4000' });
    server = registry();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await d?.teardown();
    server?.close();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('a layer whose listing is 200 MiB of names (pax paths of 512 KiB, under libarchive\'s 1 MiB header cap) is refused at a bound; the daemon\'s memory stays flat', async () => {
    const pid = d.proc?.pid ?? -1;
    const entry = paxEntry(`d/${'a'.repeat(512 * 1024)}`);
    const gz = await gzipRepeats(() => entry, 400);
    assert.ok(gz.length < 4 * 1024 * 1024, `the bomb is small on the wire (${gz.length} bytes)`);
    serveLayer('names', gz);
    const before = peakMiB(pid);
    const t0 = Date.now();
    await rejectsWith(d.client.images.pull(`${host}/library/names:1`, { name: 'names' }), 'INVALID_ARGUMENT', /listing|members/);
    const grew = peakMiB(pid) - before;
    console.log(`names bomb: ${gz.length} bytes gzip, refused in ${Date.now() - t0} ms, daemon peak grew ${grew.toFixed(0)} MiB`);
    assert.ok(grew < 200, `the daemon's peak memory grew ${grew.toFixed(0)} MiB`);
    await assert.rejects(d.client.images.get('names'), 'no image');
    assert.equal(bsdtarChildren(pid), 0, 'no lister left running');
    await d.client.health();
  });

  it('a layer of 1.5 million empty members is refused at a bound; the daemon\'s memory stays flat', async () => {
    const pid = d.proc?.pid ?? -1;
    const gz = await gzipRepeats((i) => header(`m${i}`, '0', 0), 1_500_000);
    serveLayer('members', gz);
    const before = peakMiB(pid);
    await rejectsWith(d.client.images.pull(`${host}/library/members:1`, { name: 'members' }), 'INVALID_ARGUMENT', /listing|members/);
    const grew = peakMiB(pid) - before;
    console.log(`members bomb: ${gz.length} bytes gzip, daemon peak grew ${grew.toFixed(0)} MiB`);
    assert.ok(grew < 200, `the daemon's peak memory grew ${grew.toFixed(0)} MiB`);
    assert.equal(bsdtarChildren(pid), 0, 'no lister left running');
  });

  it('a 32 MiB zstd layer holding a 1 TiB file of zeros is refused at its header, before any of it is decompressed or written', async () => {
    const pid = d.proc?.pid ?? -1;
    const TiB = 1024n ** 4n;
    const layer = zstdFrame([{ raw: bigHeader('zeros', TiB) }, { run: Number(TiB), byte: 0 }, { run: 1024, byte: 0 }]);
    // Declared gzip: the media type is checked, the bytes are sniffed by bsdtar (as extraction does).
    serveLayer('zeros', layer);
    const t0 = Date.now();
    await rejectsWith(d.client.images.pull(`${host}/library/zeros:1`, { name: 'zeros' }), 'INVALID_ARGUMENT', /listing is too large.*GiB/);
    const ms = Date.now() - t0;
    console.log(`zstd bomb: ${layer.length} bytes, refused in ${ms} ms`);
    assert.ok(ms < 15_000, `refused at the header, not after decompressing (${ms} ms)`);
    assert.equal(bsdtarChildren(pid), 0, 'no lister left running');
    await assert.rejects(d.client.images.get('zeros'), 'no image');
  });

  it('a registry that sends a layer at 1 byte/s is given up at the request timeout with a clear error', async () => {
    const pid = d.proc?.pid ?? -1;
    serveLayer('slow', await gzipRepeats((i) => header(`f${i}`, '0', 0), 2000));
    const t0 = Date.now();
    await rejectsWith(d.client.images.pull(`${host}/library/slow:1`, { name: 'slow' }), 'REGISTRY_ERROR', /cut off after \d+ bytes/);
    const ms = Date.now() - t0;
    console.log(`slow registry: given up after ${ms} ms`);
    assert.ok(ms < 10_000, `given up at the 4 s request timeout (${ms} ms)`);
    assert.equal(bsdtarChildren(pid), 0, 'no lister left running');
  });
});
