/**
 * Red-team findings after the issue-12 hardening pass: each `it` reproduces one attack
 * against a real daemon and asserts the safe behaviour. A sandbox is the attacker unless
 * the test says otherwise (a loopback client, a hostile artifact).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

/** The daemon's peak resident memory so far, in MiB. */
function peakRssMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** The daemon's resident memory now, in MiB. */
function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** A `tar` first on the sandbox's PATH that writes `mib` MiB to stderr and fails. */
const STDERR_FLOOD_TAR = (mib: number): string =>
  `mkdir -p /usr/local/bin && printf '#!/bin/sh\\ncat >/dev/null &\\nhead -c ${mib * 1024 * 1024} /dev/zero | tr "\\\\000" e >&2\\nexit 2\\n' > /usr/local/bin/tar && chmod +x /usr/local/bin/tar`;

describe('red team', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d.teardown();
  });

  it('a sandbox tar that floods stderr during nook cp out/in does not balloon the daemon', async () => {
    const s: Sandbox = await d.client.sandboxes.create({ name: 'tar-flood', image: 'minimal' });
    const setup = await s.exec(['sh', '-c', `${STDERR_FLOOD_TAR(300)} && mkdir -p /work && echo x > /work/f`]);
    assert.equal(setup.exitCode, 0, setup.stderr);
    const pid = d.proc?.pid ?? 0;
    const before = peakRssMiB(pid);
    // Out: the daemon reads tar's stderr for the error message.
    await assert.rejects(async () => {
      for await (const _ of await s.files.readTar('/work')) void _;
    });
    // In: the same tar unpacking an upload.
    await assert.rejects(s.files.writeTar('/work/in', Readable.from([Buffer.alloc(10240)])));
    const grown = peakRssMiB(pid) - before;
    assert.ok(grown < 100, `the daemon's peak memory grew by ${grown.toFixed(0)} MiB from 2 x 300 MiB of sandbox stderr`);
    assert.equal((await s.exec(['echo', 'alive'])).stdout, 'alive\n');
    await s.destroy();
  });

  it('a stalled `logs --follow` client while the process floods output does not balloon the daemon', async () => {
    const s = await d.client.sandboxes.create({ name: 'log-flood', image: 'minimal' });
    await s.processes.start(['sh', '-c', 'sleep 1; head -c 300000000 /dev/zero; touch /tmp/flood-done; sleep 600'], { name: 'flood' });
    const pid = d.proc?.pid ?? 0;
    const before = rssMiB(pid);
    // A follower that reads the response head and then stops reading (`nook logs -f | less`, a hung agent).
    const sock = connect(d.socket);
    await new Promise((r) => sock.once('connect', r));
    sock.write('GET /v1/sandboxes/log-flood/processes/flood/logs?follow=true HTTP/1.1\r\nHost: nook\r\n\r\n');
    sock.once('data', () => sock.pause());
    let peak = 0;
    try {
      // The stored log is bounded (rotated at 8 MiB): wait until the 300 MB went through it.
      await waitFor(async () => {
        peak = Math.max(peak, rssMiB(pid) - before);
        return (await s.exec(['test', '-e', '/tmp/flood-done'])).exitCode === 0;
      }, 60_000, 'the flood to finish');
      await new Promise((r) => setTimeout(r, 1000));
      peak = Math.max(peak, rssMiB(pid) - before);
      // Reading again: the follower gets what was queued, then an error that says why it ended.
      let tail = '';
      sock.on('data', (b: Buffer) => (tail = (tail + b.toString('latin1')).slice(-4096)));
      sock.resume();
      await waitFor(() => tail.includes('"code":"BUSY"'), 30_000, 'the stream to end with BUSY');
      assert.match(tail, /read too slowly/);
    } finally {
      sock.destroy();
    }
    assert.ok(peak < 150, `the daemon held ${peak.toFixed(0)} MiB more for one stalled log follower`);
    await s.destroy();
  });

  it('listing a directory whose escaped names pass the 64 MiB listing bound answers a clear error, not INTERNAL', async () => {
    const s = await d.client.sandboxes.create({ name: 'big-dir', image: 'minimal' });
    // 50 000 names of 240 control bytes: each is escaped to \u0001 (6 bytes) in the listing, about 78 MB in all.
    const made = await s.exec(['sh', '-c', `mkdir -p /work/d && cd /work/d && awk 'BEGIN{for(i=0;i<50000;i++){printf "%06d", i; for(j=0;j<240;j++) printf "\\001"; printf "\\n"}}' | xargs touch && ls | wc -l`], { timeoutMs: 300_000 });
    assert.equal(made.stdout.trim(), '50000', made.stderr);
    await rejectsWith(s.files.list('/work/d'), 'PAYLOAD_TOO_LARGE');
    assert.equal((await s.files.list('/work')).length, 1);
    await s.destroy();
  });
});
