/**
 * `nook cp` of one file on the daemon's host takes the fast path (src/core/fast-copy.ts): the
 * CLI hands its open file to a native relay, nook-init hands back the open sandbox file, the
 * relay moves and hashes the bytes. These tests run the real CLI against a real daemon and
 * check what a user (or an attacker inside the sandbox) would: the bytes, the audit record,
 * the bounds, and that no path the sandbox controls reaches a host file.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, linkSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditRecord } from '../../src/api/schemas.js';
import type { Sandbox } from '../../src/sdk/client.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

const MAX_IN_BYTES = 128 * 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('fast copy (nook cp on the daemon host)', () => {
  let d: TestDaemon;
  let sb: Sandbox;
  let host: string;

  before(async () => {
    d = await startDaemon({ NOOK_MAX_COPY_IN_BYTES: String(MAX_IN_BYTES) });
    sb = await d.client.sandboxes.create({ name: 'fast', image: 'minimal' });
    host = mkdtempSync('/tmp/nook-fast-copy-');
  });
  after(async () => {
    await d.teardown();
    rmSync(host, { recursive: true, force: true });
  });

  /** The audit records of the calls made since `seq`. */
  async function recordsSince(seq: number): Promise<AuditRecord[]> {
    return (await d.client.audit.list({ sandbox: 'fast', limit: 1000 })).filter((r) => r.seq > seq);
  }
  async function lastSeq(): Promise<number> {
    return (await d.client.audit.list({ limit: 1000 })).at(-1)?.seq ?? 0;
  }
  /** What is in a sandbox directory, temp files included. */
  async function lsInside(dir: string): Promise<string[]> {
    return (await sb.exec(['ls', '-A', dir])).stdout.split('\n').filter(Boolean).sort();
  }

  it('copies in and out byte for byte, past the daemon, with size and sha256 on the audit record', async () => {
    const data = randomBytes(9 * 1024 * 1024 + 123);
    writeFileSync(join(host, 'in.bin'), data, { mode: 0o640 });
    const seq = await lastSeq();
    const cin = await d.cli(['cp', '--json', join(host, 'in.bin'), 'fast:/work/in.bin']);
    assert.equal(cin.code, 0, cin.stderr);
    assert.equal((JSON.parse(cin.stdout) as { size: number }).size, data.length);
    const inside = await sb.exec(['sh', '-c', 'sha256sum /work/in.bin | cut -d" " -f1; stat -c "%a %u" /work/in.bin']);
    assert.equal(inside.stdout, `${sha(data)}\n640 0\n`);

    const cout = await d.cli(['cp', '--max-bytes', String(64 * 1024 * 1024), 'fast:/work/in.bin', join(host, 'out.bin')]);
    assert.equal(cout.code, 0, cout.stderr);
    assert.deepEqual(readFileSync(join(host, 'out.bin')), data);

    const records = await recordsSince(seq);
    const copies = records.filter((r) => r.action === 'fastCopy');
    assert.deepEqual(
      copies.map((r) => [r.outcome, r.result.file]),
      [
        ['ok', { path: '/work/in.bin', bytes: data.length, sha256: sha(data), direction: 'in', fast: true }],
        ['ok', { path: '/work/in.bin', bytes: data.length, sha256: sha(data), direction: 'out', fast: true }],
      ],
    );
    assert.ok(!records.some((r) => r.action === 'writeFile'), 'the fast path did the copy, not the stream');
    assert.deepEqual(readdirSync(host).sort(), ['in.bin', 'out.bin'], 'no temp file left on the host');
  });

  it('refuses a copy past the bound before writing anything, in and out', async () => {
    writeFileSync(join(host, 'big.bin'), Buffer.alloc(MAX_IN_BYTES + 1, 1));
    const before = await lsInside('/work');
    const seq = await lastSeq();
    const r = await d.cli(['cp', join(host, 'big.bin'), 'fast:/work/big.bin']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /PAYLOAD_TOO_LARGE/);
    assert.deepEqual(await lsInside('/work'), before, 'nothing written, not even a temp file');
    const records = await recordsSince(seq);
    const copies = records.filter((x) => x.action === 'fastCopy' || x.action === 'writeFile');
    assert.deepEqual(copies.map((x) => [x.action, x.errorCode]), [['fastCopy', 'PAYLOAD_TOO_LARGE']], 'refused once, not streamed again');

    await sb.exec(['sh', '-c', 'head -c 2000000 /dev/zero > /work/two-mb']);
    const out = await d.cli(['cp', '--max-bytes', '1000', 'fast:/work/two-mb', join(host, 'two-mb')]);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /PAYLOAD_TOO_LARGE/);
    assert.ok(!readdirSync(host).some((f) => f.includes('two-mb')), 'no file and no temp file on the host');
  });

  it("attacker: a symlink planted in the sandbox never steers the copy to a host file (absolute host paths, /proc/self/fd links to the agent's host log)", async () => {
    const secret = join(host, 'secret');
    writeFileSync(secret, 'host only');
    // Copy-out through links: an absolute host path resolves inside the sandbox (not there);
    // /proc/self/fd/1 and 2 of the copying process were PID 1's stdio: crun's log file on the host.
    await sb.exec(['sh', '-c', `ln -s ${secret} /work/to-host; ln -s /proc/self/fd/1 /work/to-fd1; ln -s /proc/self/fd/2 /work/to-fd2; ln -s /proc/1/fd/1 /work/to-init-fd1`]);
    for (const link of ['to-host', 'to-fd1', 'to-fd2', 'to-init-fd1']) {
      const r = await d.cli(['cp', `fast:/work/${link}`, join(host, `stolen-${link}`)]);
      assert.notEqual(r.code, 0, `${link}: ${r.stdout}`);
      assert.ok(!existsSync(join(host, `stolen-${link}`)), `${link} copied a host file out`);
    }
    // Copy-in onto a link to a host path: the link is replaced inside the sandbox, the host file untouched.
    writeFileSync(join(host, 'payload'), 'from the user');
    const r = await d.cli(['cp', join(host, 'payload'), 'fast:/work/to-host']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(secret, 'utf8'), 'host only');
    assert.equal((await sb.files.stat('/work/to-host')).type, 'file');
    assert.equal((await sb.files.read('/work/to-host')).toString(), 'from the user');
    // Copy-in into a directory that is a link to /proc/self/fd: refused, nothing written anywhere.
    await sb.exec(['ln', '-s', '/proc/self/fd', '/work/fd-dir']);
    const viaFd = await d.cli(['cp', join(host, 'payload'), 'fast:/work/fd-dir/1']);
    assert.notEqual(viaFd.code, 0);
    assert.equal(readFileSync(secret, 'utf8'), 'host only');
  });

  it('attacker: a sandbox swapping the target directory for a link mid-copy cannot redirect the write', async () => {
    const data = randomBytes(120 * 1024 * 1024);
    writeFileSync(join(host, 'race.bin'), data);
    await sb.exec(['sh', '-c', 'mkdir -p /work/d /work/elsewhere']);
    // Inside the sandbox: wait for the copy's agent session (a new nook-init child of PID 1),
    // give it 30 ms to resolve the path (the copy itself takes longer), then move /work/d away
    // and put a link to /work/elsewhere in its place, mid-copy ("late" if the copy was done).
    const swap = sb.exec(
      [
        'sh',
        '-c',
        `known=" $(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ') "
        while :; do
          for p in $(ls /proc | grep -E '^[0-9]+$'); do
            case "$known" in *" $p "*) continue;; esac
            known="$known$p "
            if [ "$(cut -d' ' -f4 /proc/$p/stat 2>/dev/null)" = 1 ] && grep -q nook-init /proc/$p/cmdline 2>/dev/null; then
              usleep 30000; [ -e /work/d/race.bin ] && echo late
              mv /work/d /work/d.real && ln -s /work/elsewhere /work/d && echo swapped; exit 0
            fi
          done
        done`,
      ],
      { timeoutMs: 60_000 },
    );
    await new Promise((res) => setTimeout(res, 300));
    const r = await d.cli(['cp', join(host, 'race.bin'), 'fast:/work/d/race.bin']);
    const swapped = (await swap).stdout;
    assert.match(swapped, /swapped/, 'the sandbox swapped the directory');
    if (swapped.includes('late')) process.stderr.write('note: this run swapped after the copy was done (a loaded host); the race was not exercised\n');
    assert.equal(r.code, 0, r.stderr);
    const found = (await sb.exec(['sh', '-c', 'for f in /work/d.real/race.bin /work/elsewhere/race.bin; do [ -f $f ] && echo $f $(sha256sum < $f | cut -d" " -f1); done'])).stdout;
    assert.equal(found, `/work/d.real/race.bin ${sha(data)}\n`, 'the file landed in the directory resolved first, not through the swapped-in link');
    assert.deepEqual(readdirSync(host).filter((f) => f.startsWith('.')), [], 'no temp file on the host');
  });

  it('a copy out over an existing host file replaces it whole: a hard link keeps the old bytes, a symlink is replaced, never written through', async () => {
    // 9 MiB: large enough for the CLI to swap the file in by exchange (nook-copy replace).
    const data = randomBytes(9 * 1024 * 1024);
    await sb.files.write('/work/new.bin', data);
    const target = join(host, 'replace.bin');
    writeFileSync(target, 'old bytes');
    linkSync(target, join(host, 'replace.link'));
    const victim = join(host, 'victim');
    writeFileSync(victim, 'not to be written');
    symlinkSync(victim, join(host, 'via-link.bin'));
    for (const dest of [target, join(host, 'via-link.bin')]) {
      const r = await d.cli(['cp', '--max-bytes', String(64 * 1024 * 1024), 'fast:/work/new.bin', dest]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(lstatSync(dest).isFile(), `${dest} is the copied file now`);
      assert.deepEqual(readFileSync(dest), data);
    }
    assert.equal(readFileSync(join(host, 'replace.link'), 'utf8'), 'old bytes', 'the old file was replaced, not overwritten');
    assert.equal(readFileSync(victim, 'utf8'), 'not to be written');
    assert.deepEqual(readdirSync(host).filter((f) => f.startsWith('.')), [], 'no temp file on the host');
  });

  it('a copy failing midway (the disk limit) leaves no partial file and the old file as it was', async () => {
    const small = await d.client.sandboxes.create({ name: 'fast-small', image: 'minimal', diskMiB: 16 });
    await small.files.write('/work/keep.txt', 'old contents');
    writeFileSync(join(host, 'fill.bin'), randomBytes(30 * 1024 * 1024));
    const seq = await lastSeq();
    const r = await d.cli(['cp', join(host, 'fill.bin'), 'fast-small:/work/keep.txt']);
    assert.notEqual(r.code, 0, 'past the sandbox disk limit the copy fails');
    assert.equal((await small.files.read('/work/keep.txt')).toString(), 'old contents');
    const left = (await small.exec(['ls', '-A', '/work'])).stdout.split('\n').filter(Boolean);
    assert.deepEqual(left, ['keep.txt'], 'no partial or temp file');
    const fast = (await d.client.audit.list({ sandbox: 'fast-small', limit: 100 })).filter((x) => x.seq > seq && x.action === 'fastCopy');
    assert.equal(fast[0]?.outcome, 'error', 'the fast path was taken and failed');
    await small.destroy();
  });

  it('falls back to the stream with the same result when the fast path is off or unavailable', async () => {
    const data = randomBytes(1024 * 1024);
    writeFileSync(join(host, 'fallback.bin'), data);
    const seq = await lastSeq();
    const r = await d.cli(['cp', join(host, 'fallback.bin'), 'fast:/work/fallback.bin'], { env: { NOOK_COPY_BINARY: '/bin/false' } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await sb.exec(['sh', '-c', 'sha256sum < /work/fallback.bin | cut -d" " -f1'])).stdout.trim(), sha(data));
    const out = await d.cli(['cp', 'fast:/work/fallback.bin', join(host, 'fallback.out')], { env: { NOOK_FAST_COPY: '0' } });
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(readFileSync(join(host, 'fallback.out')), data);
    const records = await recordsSince(seq);
    assert.ok(records.some((x) => x.action === 'fastCopy' && x.outcome === 'error'), 'the failed fast attempt is on the record');
    assert.deepEqual(records.find((x) => x.action === 'writeFile')?.result.file, { path: '/work/fallback.bin', bytes: data.length, sha256: sha(data), direction: 'in' });
  });
});
