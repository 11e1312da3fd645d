/**
 * `nook cp` of a directory on the daemon's host takes the fast path (src/core/fast-copy.ts,
 * fastTar; native/copy/tar-relay.c): the tar stream goes between the CLI and a one-time
 * native relay over a handed-over socket pair, and the relay runs the sandbox's own tar
 * through its exec agent. The real CLI against a real daemon: the tree round trip, the
 * audit record (the stream's sha256), the bounds, and what a hostile sandbox's `tar` can do
 * to the new input path (garbage, too much, never ending): a clear error, nothing on the
 * host, no relay, socket or scratch directory left.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditRecord } from '../../src/api/schemas.js';
import type { Sandbox } from '../../src/sdk/client.js';
import { run } from '../../src/util/proc.js';
import { writeSampleTree } from '../helpers/tree.js';
import { hostProcessesWith, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

const MAX_TAR_IN_BYTES = 16 * 1024 * 1024;
const IDLE_TIMEOUT_MS = 2000;

describe('fast copy of directories (nook cp DIR on the daemon host)', () => {
  let d: TestDaemon;
  let sb: Sandbox;
  let host: string;

  before(async () => {
    d = await startDaemon({ NOOK_MAX_TAR_IN_BYTES: String(MAX_TAR_IN_BYTES), NOOK_COPY_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS) });
    sb = await d.client.sandboxes.create({ name: 'dirs', image: 'minimal' });
    host = mkdtempSync('/tmp/nook-fast-dir-');
    const src = join(host, 'src');
    writeSampleTree(src);
    writeFileSync(join(src, 'private'), 'mine\n');
    chmodSync(join(src, 'private'), 0o600);
    writeFileSync(join(src, 'big.bin'), randomBytes(6 * 1024 * 1024 + 7));
  });
  after(async () => {
    await d.teardown();
    rmSync(host, { recursive: true, force: true });
  });

  async function recordsSince(seq: number, sandbox = 'dirs'): Promise<AuditRecord[]> {
    return (await d.client.audit.list({ sandbox, limit: 1000 })).filter((r) => r.seq > seq);
  }
  async function lastSeq(): Promise<number> {
    return (await d.client.audit.list({ limit: 1000 })).at(-1)?.seq ?? 0;
  }
  /** Nothing of a copy may outlive it: no relay, no handoff socket, no scratch dir on the host. */
  async function assertNothingLeft(): Promise<void> {
    await waitFor(() => hostProcessesWith('nook-copy relay').length === 0, 5000, 'the relays to exit');
    assert.deepEqual(readdirSync(dirname(d.socket)).filter((f) => f.startsWith('.nook-copy-')), [], 'no handoff socket left');
    assert.deepEqual(readdirSync(host).filter((f) => f.startsWith('.')), [], 'no scratch directory left on the host');
  }

  it('copies a tree in and back out past the daemon, byte for byte (files, modes, symlinks, empty dirs), the tar stream sha256 on the record', async () => {
    const seq = await lastSeq();
    const cin = await d.cli(['cp', '--json', join(host, 'src'), 'dirs:/work/tree']);
    assert.equal(cin.code, 0, cin.stderr);
    const inResult = JSON.parse(cin.stdout) as { path: string; bytes: number; sha256: string };
    assert.equal(inResult.path, '/work/tree');

    const cout = await d.cli(['cp', 'dirs:/work/tree', join(host, 'back')]);
    assert.equal(cout.code, 0, cout.stderr);
    const diff = await run(['diff', '-r', '--no-dereference', join(host, 'src'), join(host, 'back')], { allowFail: true });
    assert.equal(diff.code, 0, `the tree came back different:\n${diff.stdout}`);
    for (const [f, mode] of [['run.sh', 0o755], ['private', 0o600], ['a/b/c/deep.txt', 0o644]] as const) assert.equal(statSync(join(host, 'back', f)).mode & 0o777, mode, f);
    assert.equal(readlinkSync(join(host, 'back', 'shortcut')), 'a/b/c/deep.txt');
    assert.ok(statSync(join(host, 'back', 'empty')).isDirectory());

    // The audit record holds the stream's sha256: for copy-out, the sandbox's own tar of the tree.
    const outSha = (await sb.exec(['sh', '-c', 'tar -cf - -C /work tree | sha256sum | cut -d" " -f1'])).stdout.trim();
    const records = await recordsSince(seq);
    const copies = records.filter((r) => r.action === 'fastCopy').map((r) => [r.outcome, r.result.file]);
    assert.equal(copies.length, 2);
    assert.deepEqual(copies[0], ['ok', { path: '/work/tree', bytes: inResult.bytes, sha256: inResult.sha256, direction: 'in', kind: 'tar', fast: true }]);
    const outFile = copies[1]?.[1] as { sha256: string; bytes: number } | undefined;
    assert.deepEqual(copies[1], ['ok', { path: '/work/tree', bytes: outFile?.bytes, sha256: outSha, direction: 'out', kind: 'tar', fast: true, type: 'dir' }]);
    assert.ok(!records.some((r) => r.action === 'putTar' || r.action === 'getTar'), 'the fast path did the copies, not the stream');
    await assertNothingLeft();
  });

  it('refuses past the bound, in and out, once (not streamed again), nothing put in place on the host', async () => {
    const seq = await lastSeq();
    const huge = join(host, 'huge');
    mkdirSync(huge);
    writeFileSync(join(huge, 'data'), randomBytes(MAX_TAR_IN_BYTES + 1024 * 1024));
    const cin = await d.cli(['cp', huge, 'dirs:/work/huge']);
    assert.equal(cin.code, 1);
    assert.match(cin.stderr, /PAYLOAD_TOO_LARGE/);
    rmSync(huge, { recursive: true });

    const cout = await d.cli(['cp', '--max-bytes', String(1024 * 1024), 'dirs:/work/tree', join(host, 'too-large')]);
    assert.equal(cout.code, 1);
    assert.match(cout.stderr, /PAYLOAD_TOO_LARGE/);
    assert.ok(!readdirSync(host).includes('too-large'), 'nothing put in place');
    const copies = (await recordsSince(seq)).filter((r) => ['fastCopy', 'putTar', 'getTar'].includes(r.action));
    assert.deepEqual(copies.map((r) => [r.action, r.errorCode]), [['fastCopy', 'PAYLOAD_TOO_LARGE'], ['fastCopy', 'PAYLOAD_TOO_LARGE']]);
    await assertNothingLeft();
  });

  /** A sandbox whose `tar` (first on the agent's PATH) is the attacker's script. */
  async function hostileTar(name: string, script: string): Promise<Sandbox> {
    const evil = await d.client.sandboxes.create({ name, image: 'minimal' });
    await evil.exec(['sh', '-c', 'mkdir -p /work/tree /usr/local/sbin /opt && echo x > /work/tree/f && tar -cf /opt/tree.tar -C /work tree']);
    assert.equal((await evil.exec(['tar', '-tf', '/opt/tree.tar'])).stdout, 'tree/\ntree/f\n', 'the whole archive the script sends');
    await evil.files.write('/usr/local/sbin/tar', Buffer.from(`#!/bin/sh\n${script}\n`), { mode: 0o755 });
    return evil;
  }

  it('attacker: a sandbox tar that sends a whole archive then never stops is cut at the bound: nothing put in place', async () => {
    // A valid archive of `tree` first (what an untar would take as whole), then endless zeros.
    const evil = await hostileTar('evil-flood', 'cat /opt/tree.tar; exec cat /dev/zero');
    const seq = await lastSeq();
    const t0 = Date.now();
    const r = await d.cli(['cp', '--max-bytes', String(8 * 1024 * 1024), 'evil-flood:/work/tree', join(host, 'flooded')]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /PAYLOAD_TOO_LARGE/);
    assert.ok(Date.now() - t0 < 20_000, 'stopped at the bound, not at a timeout');
    assert.ok(!readdirSync(host).includes('flooded'), 'the archive before the flood was not put in place');
    const copies = (await recordsSince(seq, 'evil-flood')).filter((x) => ['fastCopy', 'getTar'].includes(x.action));
    assert.deepEqual(copies.map((x) => [x.action, x.errorCode]), [['fastCopy', 'PAYLOAD_TOO_LARGE']]);
    await assertNothingLeft();
    await waitFor(async () => (await evil.exec(['sh', '-c', 'ps -o args | grep -c "[c]at /dev/zero"'])).stdout.trim() === '0', 5000, 'the flooding tar to be killed');
    await evil.destroy();
  });

  it('a sandbox tar that sends a whole-looking archive and then fails: the failure is reported, nothing put in place', async () => {
    const evil = await hostileTar('evil-fail', 'cat /opt/tree.tar; echo "tar: read error" >&2; exit 2');
    const r = await d.cli(['cp', 'evil-fail:/work/tree', join(host, 'failed')]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /tar in the sandbox failed \(archiving, exit 2\): tar: read error \[INVALID_ARGUMENT\]/);
    assert.ok(!readdirSync(host).includes('failed'), 'an archive the sandbox said was not whole was put in place');
    await assertNothingLeft();
    await evil.destroy();
  });

  it("attacker: a sandbox tar's archive never steers a host path (.. and absolute names, a write through a link it made, setuid bits); a refusal leaves no scratch directory", async () => {
    const victim = join(host, 'victim-dir');
    mkdirSync(victim);
    const evil = await hostileTar('evil-paths', 'cat /opt/evil.tar');
    // Both paths unpack with the same safe untar; the stream's run also left its scratch directory behind before.
    for (const [through, env] of [false, true].flatMap((t) => [[t, {}], [t, { NOOK_FAST_COPY: '0' }]] as const)) {
    // Built on the host (python's tarfile writes whatever names it is given), sent by the sandbox's "tar".
    const evilTar = join(host, 'evil.tar');
    const py = [
      'import io, sys, tarfile',
      'def add(t, name, data=b"x", **kw):',
      '  i = tarfile.TarInfo(name); [setattr(i, k, v) for k, v in kw.items()]; i.size = len(data) if i.type == tarfile.REGTYPE else 0',
      '  t.addfile(i, io.BytesIO(data) if i.type == tarfile.REGTYPE else None)',
      't = tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT)',
      'add(t, "tree", type=tarfile.DIRTYPE, mode=0o755)',
      'add(t, "tree/ok.txt", b"fine")',
      'add(t, "tree/../../escaped.txt", b"out")',
      `add(t, "${victim}/abs.txt", b"abs")`,
      // Relative, so it lands as a link (an absolute one refuses the whole archive: strict).
      'add(t, "tree/link", type=tarfile.SYMTYPE, linkname="../victim-dir")',
      ...(through ? ['add(t, "tree/link/through.txt", b"through")'] : []),
      'add(t, "tree/suid", b"#!/bin/sh", mode=0o4755)',
      't.close()',
    ].join('\n');
    await run(['python3', '-c', py, evilTar]);
    await evil.files.write('/opt/evil.tar', readFileSync(evilTar));
    rmSync(evilTar);
    const dest = join(host, `landed${through ? '-through' : ''}${'NOOK_FAST_COPY' in env ? '-stream' : ''}`);
    const r = await d.cli(['cp', '--json', 'evil-paths:/work/tree', dest], { env });
    assert.deepEqual(readdirSync(victim), [], 'nothing written through a link or by an absolute name');
    assert.ok(!readdirSync(dirname(host)).includes('escaped.txt') && !readdirSync(host).includes('escaped.txt'), 'nothing written above the destination');
    if (through) {
      // A write through a link the archive made: the whole copy is refused, with a clear error.
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /RUNTIME_ERROR.*the archive broke off \(TAR_SYMLINK_ERROR: Cannot extract through symbolic link\); nothing was written/);
      assert.ok(!existsSync(dest));
    } else {
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { skipped: string[] };
      assert.equal(out.skipped.length, 2, `the .. and absolute entries were skipped: ${r.stdout}`);
      assert.equal(readFileSync(join(dest, 'ok.txt'), 'utf8'), 'fine');
      assert.equal(readlinkSync(join(dest, 'link')), '../victim-dir', 'the link is kept as a link, never followed');
      assert.equal(statSync(join(dest, 'suid')).mode & 0o7000, 0, 'no setuid bit on the host');
    }
    await assertNothingLeft();
    }
    await evil.destroy();
  });

  it('attacker: a sandbox tar that writes garbage gets a clear error; nothing lands on the host', async () => {
    const evil = await hostileTar('evil-garbage', 'head -c 3000000 /dev/urandom');
    const r = await d.cli(['cp', 'evil-garbage:/work/tree', join(host, 'garbage')]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /RUNTIME_ERROR|INVALID_ARGUMENT/);
    assert.ok(!readdirSync(host).includes('garbage'));
    await assertNothingLeft();
    await evil.destroy();
  });

  /** Copies out of and into a hostile sandbox: each ends with TIMEOUT at the idle timeout, nothing reaches the host. */
  async function timesOutBothWays(name: string, hostName: string): Promise<void> {
    const t0 = Date.now();
    const out = await d.cli(['cp', `${name}:/work/tree`, join(host, hostName)]);
    assert.equal(out.code, 1, out.stdout);
    assert.match(out.stderr, /TIMEOUT/);
    const cin = await d.cli(['cp', join(host, 'src'), `${name}:/work/in`]);
    assert.equal(cin.code, 1, cin.stdout);
    assert.match(cin.stderr, /TIMEOUT/);
    assert.ok(Date.now() - t0 < 4 * IDLE_TIMEOUT_MS + 10_000, `stopped by the idle timeout (${Date.now() - t0} ms)`);
    assert.ok(!readdirSync(host).includes(hostName));
  }

  it('attacker: a sandbox tar that never exits (out) or never reads (in) is stopped by the idle timeout, killed, nothing left', async () => {
    const evil = await hostileTar('evil-hang', 'exec sleep 1000');
    const seq = await lastSeq();
    await timesOutBothWays('evil-hang', 'hung');
    const copies = (await recordsSince(seq, 'evil-hang')).filter((x) => ['fastCopy', 'getTar', 'putTar'].includes(x.action));
    assert.deepEqual(copies.map((x) => [x.action, x.errorCode]), [['fastCopy', 'TIMEOUT'], ['fastCopy', 'TIMEOUT']], 'timed out once each, not streamed again');
    await assertNothingLeft();
    await waitFor(async () => (await evil.exec(['sh', '-c', 'ps -o args | grep -c "[s]leep 1000"'])).stdout.trim() === '0', 5000, 'the hung tars to be killed');
    await evil.destroy();
  });

  it('attacker: a sandbox tar that only chatters (stderr; stdout too while it should be reading) moves no archive bytes and is stopped by the idle timeout', { timeout: 60_000 }, async () => {
    // Output that is not the archive is no progress: it would otherwise hold a copy open forever.
    const evil = await hostileTar('evil-chatter', 'while :; do echo chatter >&2; case "$1" in -x*) echo chatter ;; esac; sleep 0.2; done');
    await timesOutBothWays('evil-chatter', 'chatter');
    await assertNothingLeft();
    await evil.destroy();
  });

  it('falls back to the stream with the same tree when the fast path is unavailable', async () => {
    const seq = await lastSeq();
    const r = await d.cli(['cp', join(host, 'src'), 'dirs:/work/fallback'], { env: { NOOK_COPY_BINARY: '/bin/false' } });
    assert.equal(r.code, 0, r.stderr);
    const out = await d.cli(['cp', 'dirs:/work/fallback', join(host, 'fallback')], { env: { NOOK_COPY_BINARY: '/bin/false' } });
    assert.equal(out.code, 0, out.stderr);
    assert.equal((await run(['diff', '-r', '--no-dereference', join(host, 'src'), join(host, 'fallback')], { allowFail: true })).code, 0);
    const actions = (await recordsSince(seq)).map((x) => [x.action, x.outcome]);
    assert.ok(actions.some(([a, o]) => a === 'fastCopy' && o === 'error'), 'the failed fast attempt is on the record');
    // (A GET stream is not an audited call: the copy out shows in the tree above.)
    assert.deepEqual(actions, [['fastCopy', 'error'], ['putTar', 'ok'], ['fastCopy', 'error']], 'each fast attempt failed, then the stream copied');
    assert.equal(readFileSync(join(host, 'fallback', 'a', 'b', 'c', 'deep.txt'), 'utf8'), 'deep\n');
    await assertNothingLeft();
  });
});
