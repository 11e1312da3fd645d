/**
 * An attacker's (and a crash's) review of the fast copy's one-time handoff socket, against a
 * real daemon: what a daemon killed while a relay waits for its file leaves in the socket
 * directory; and files that change while they are copied (a host source growing or shrinking
 * during copy-in, a sandbox file an attacker keeps growing during copy-out).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { hostProcessesWith, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

/** Starts a fast copy over the unix socket and resolves with the handoff socket's path (the copy is left waiting). */
function startFastCopy(socketPath: string, ref: string, body: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method: 'POST', path: `/v1/sandboxes/${ref}/files/fast-copy`, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => {
        text += b.toString();
        const ready = text.split('\n').map((l) => (l ? (JSON.parse(l) as { type: string; socket?: string }) : undefined)).find((e) => e?.type === 'ready');
        if (ready?.socket) resolve(ready.socket);
      });
      res.on('error', () => undefined);
      res.on('end', () => reject(new Error(`no ready event: ${text}`)));
    });
    req.on('error', () => undefined);
    req.end(JSON.stringify(body));
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const MAX_BYTES = 64 * 1024 * 1024;

describe('red team: fast copy', () => {
  let d: TestDaemon;
  let host: string;
  before(async () => {
    d = await startDaemon({ NOOK_MAX_COPY_IN_BYTES: String(MAX_BYTES) });
    await d.client.sandboxes.create({ name: 'cp', image: 'minimal' });
    host = mkdtempSync('/tmp/nook-redteam-copy-');
  });
  after(async () => {
    await d?.teardown();
    rmSync(host, { recursive: true, force: true });
  });

  /** The file of the last fastCopy audit record: its outcome, bytes and sha256. */
  const lastCopy = async (): Promise<{ outcome: string; file: { bytes?: number; sha256?: string } }> => {
    const r = (await d.client.audit.list({ sandbox: 'cp', limit: 1000 })).filter((x) => x.action === 'fastCopy').at(-1);
    return { outcome: r?.outcome ?? 'none', file: (r?.result as { file?: { bytes?: number; sha256?: string } } | undefined)?.file ?? {} };
  };

  it('attack: a sandbox file growing during copy-out: the host gets exactly the audited bytes, or nothing at the bound; never a temp file', async () => {
    const sb = await d.client.sandboxes.get('cp');
    await sb.exec(['sh', '-c', 'mkdir -p /work && head -c 8000000 /dev/urandom > /work/grow']);
    // Appends 1 MiB at a time until the file passes the bound (about 2 s), while the copies run.
    const grower = sb.exec(['sh', '-c', 'while [ $(stat -c %s /work/grow) -lt 90000000 ]; do head -c 1048576 /dev/urandom >> /work/grow; done'], { timeoutMs: 60_000 });
    const seen = { copied: 0, refused: 0 };
    for (let i = 0; i < 12; i++) {
      const dest = join(host, `out-${i}`);
      const r = await d.cli(['cp', '--max-bytes', String(MAX_BYTES), 'cp:/work/grow', dest]);
      const audited = await lastCopy();
      if (r.code === 0) {
        seen.copied++;
        const got = readFileSync(dest);
        assert.equal(audited.outcome, 'ok');
        assert.equal(got.length, audited.file.bytes, 'the host file holds the audited byte count');
        assert.equal(sha(got), audited.file.sha256, 'the host file is what the audit says moved');
        assert.ok(got.length <= MAX_BYTES);
      } else {
        seen.refused++;
        assert.match(r.stderr, /PAYLOAD_TOO_LARGE/, r.stderr);
        assert.ok(!existsSync(dest), 'nothing at the destination');
      }
      assert.deepEqual(readdirSync(host).filter((f) => f.startsWith('.')), [], 'no temp file left beside the destination');
    }
    await grower;
    console.log(`copy-out while growing: ${seen.copied} copied, ${seen.refused} refused at the bound`);
    assert.ok(seen.refused > 0, 'the bound was reached at least once');
  });

  it('attack: a host source growing or shrinking during copy-in: the sandbox file is exactly the audited bytes, or nothing at the bound', async () => {
    const sb = await d.client.sandboxes.get('cp');
    const src = join(host, 'src');
    for (const how of ['grow', 'shrink', 'grow-past-bound']) {
      writeFileSync(src, randomBytes(how === 'shrink' ? 48 * 1024 * 1024 : 8 * 1024 * 1024));
      const limit = how === 'grow-past-bound' ? MAX_BYTES + 4 * 1024 * 1024 : 40 * 1024 * 1024;
      const timer = setInterval(() => {
        try {
          if (how === 'shrink') truncateSync(src, Math.max(0, (readFileSync(src).length >> 1) - 1));
          else if (readFileSync(src).length < limit) appendFileSync(src, randomBytes(4 * 1024 * 1024));
        } catch {
          // the copy may hold it; next tick
        }
      }, 5);
      const r = await d.cli(['cp', src, `cp:/work/in-${how}`]);
      clearInterval(timer);
      const audited = await lastCopy();
      const files = (await sb.exec(['ls', '-A', '/work'])).stdout.split('\n').filter(Boolean);
      if (r.code === 0) {
        const inside = (await sb.exec(['sh', '-c', `stat -c %s /work/in-${how}; sha256sum /work/in-${how} | cut -d' ' -f1`])).stdout.split('\n');
        assert.equal(Number(inside[0]), audited.file.bytes, `${how}: the sandbox file holds the audited byte count`);
        assert.equal(inside[1], audited.file.sha256, `${how}: the sandbox file is what the audit says moved`);
      } else {
        assert.match(r.stderr, /PAYLOAD_TOO_LARGE/, `${how}: ${r.stderr}`);
        assert.ok(!files.includes(`in-${how}`), `${how}: nothing written`);
      }
      assert.deepEqual(files.filter((f) => f.startsWith('.')), [], `${how}: no temp file in the sandbox`);
      console.log(`copy-in (${how}): ${r.code === 0 ? `${audited.file.bytes} bytes copied` : 'refused at the bound'}`);
    }
  });

  it('a daemon killed while a relay waits for its file leaves no handoff socket and no relay behind', async () => {
    const socket = await startFastCopy(d.socket, 'cp', { direction: 'in', path: '/work/x' });
    assert.ok(existsSync(socket), 'the relay listens');
    await d.kill9();
    // The relay dies with the daemon (PR_SET_PDEATHSIG).
    await waitFor(() => hostProcessesWith(socket).length === 0, 5000, 'the relay to die with the daemon');
    await d.start();
    assert.equal(existsSync(socket), false, `the one-time socket ${socket} outlived its daemon`);
  });
});
