/**
 * Single-attach means one sandbox at a time can reach a volume. The attack: a process in
 * sandbox A keeps its cwd and an open file on the volume, A's volume is unmounted and the
 * volume mounted into sandbox B; a lazy detach would leave A writing into B's data.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

/** A writer that appends a line every 50 ms through fd 3, with its cwd on the volume; it ignores SIGTERM. */
const WRITER = "trap '' TERM; cd /vol && exec 3>>/vol/marker && while :; do echo tick >&3; usleep 50000; done";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('volume unmount ends access (single-attach against open files and cwds)', () => {
  let d: TestDaemon;
  let keyDir: string;

  before(async () => {
    keyDir = mkdtempSync('/tmp/nook-masterkey-');
    d = await startDaemon({ NOOK_MASTER_KEY_FILE: join(keyDir, 'master.key') });
    await d.client.volumes.create('shared', { sizeMiB: 32 });
    await d.client.volumes.unlock('shared');
  });
  after(async () => {
    await d.teardown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  const markerSize = async (sb: Sandbox, path: string): Promise<number> => {
    const r = await sb.exec(['sh', '-c', `wc -c < ${path}`]);
    assert.equal(r.exitCode, 0, r.stderr);
    return Number(r.stdout.trim());
  };

  /** A with the volume at /vol and the writer running on it (marker growing). */
  const holderSandbox = async (name: string): Promise<Sandbox> => {
    const a = await d.client.sandboxes.create({ name, image: 'minimal' });
    await a.volumes.mount('shared', '/vol', { rw: true });
    await a.exec(['rm', '-f', '/vol/marker']);
    await a.processes.start(['sh', '-c', WRITER], { name: 'writer' });
    await waitFor(async () => (await a.exec(['sh', '-c', 'test -s /vol/marker'])).exitCode === 0, 5000, 'the writer to start');
    return a;
  };

  /** The volume in B: the marker must no longer grow, whatever A's writer was doing. */
  const assertFrozenInB = async (b: Sandbox): Promise<void> => {
    const first = await markerSize(b, '/data/marker');
    await sleep(500);
    const second = await markerSize(b, '/data/marker');
    assert.equal(second, first, `the marker grew from ${first} to ${second} bytes after A lost the volume: A still writes into it`);
  };

  it('refuses a busy unmount naming the holder; --force kills it; then A reaches nothing on the volume', async () => {
    const a = await holderSandbox('a');
    const busy = await rejectsWith(a.volumes.unmount('/vol'), 'VOLUME_BUSY');
    assert.match(busy.message, /usleep|sh -c/, 'names the command');
    assert.match(busy.message, /cwd/, 'says what it holds');
    assert.match(busy.hint ?? '', /--force/);
    const holders = (busy.context?.holders ?? []) as { pid: number; nsPid: number; command: string; uses: string[] }[];
    assert.ok(holders.length >= 1, 'lists the holders');
    assert.ok(holders.some((h) => h.uses.includes('cwd') && h.uses.some((u) => /^fd 3 .*marker/.test(u))), JSON.stringify(holders));
    assert.deepEqual((await d.client.volumes.get('shared')).mountedIn, { sandbox: 'a', path: '/vol', rw: true }, 'still attached after a refusal');
    const locked = await rejectsWith(d.client.volumes.lock('shared'), 'VOLUME_IN_USE');
    assert.match(locked.message, /sandbox a at \/vol/, 'lock names the sandbox holding it');

    // The CLI says the same, and exits non-zero.
    const cli = await d.cli(['volume', 'unmount', 'a', '/vol', '--json']);
    assert.notEqual(cli.code, 0);
    assert.match(cli.stdout + cli.stderr, /VOLUME_BUSY/);

    const before = await markerSize(a, '/vol/marker');
    await a.volumes.unmount('/vol', { force: true });
    assert.equal((await d.client.volumes.get('shared')).mountedIn, null);
    await waitFor(async () => (await a.processes.list()).every((p) => p.state !== 'running'), 5000, 'the writer to be gone');

    const b = await d.client.sandboxes.create({ name: 'b', image: 'minimal' });
    await b.volumes.mount('shared', '/data', { rw: true });
    assert.ok((await markerSize(b, '/data/marker')) >= before, 'B sees what A wrote');
    await assertFrozenInB(b);
    // A has nothing of it left: the path is an empty directory, writes land outside the volume.
    assert.equal((await a.exec(['ls', '-A', '/vol'])).stdout, '', 'A lists nothing of the volume');
    assert.equal((await a.exec(['sh', '-c', 'grep -c " /vol " /proc/mounts || true'])).stdout.trim(), '0', 'no mount of it left in A');
    await a.exec(['sh', '-c', 'echo sneaked > /vol/from-a']);
    assert.equal((await b.exec(['sh', '-c', 'test -e /data/from-a && echo leaked || echo ok'])).stdout.trim(), 'ok', 'a write in A does not reach B');
    await b.volumes.unmount('/data');
    await a.destroy();
    await b.destroy();
  });

  /** The writer's host pid, found by the token on its command line. */
  const writerPid = (token: string): number => {
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const cmd = (() => { try { return readFileSync(`/proc/${e}/cmdline`, 'utf8'); } catch { return ''; } })();
      if (cmd.includes(token) && cmd.includes('usleep')) return Number(e);
    }
    throw new Error(`no writer with ${token}`);
  };
  const alive = (pid: number): boolean => {
    try {
      return !/^State:\s*[ZX]/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch {
      return false;
    }
  };

  it('stop and destroy release the volume only once its holders are gone', async () => {
    for (const how of ['stop', 'destroy'] as const) {
      const a = await holderSandbox(`a-${how}`);
      const pid = writerPid(`cd /vol`);
      assert.ok(alive(pid));
      // Watch the volume while A goes down: the moment it is free, its holder must be gone.
      let done = false;
      const ending = (how === 'stop' ? a.stop() : a.destroy()).finally(() => (done = true));
      let freedWhileAlive = false;
      let polls = 0;
      while (!done) {
        const free = (await d.client.volumes.get('shared')).mountedIn === null;
        polls++;
        if (free) {
          freedWhileAlive = alive(pid);
          break;
        }
      }
      await ending;
      assert.ok(polls > 1, 'the volume was watched while A was going down');
      assert.equal(freedWhileAlive, false, `volume released while A's writer (host pid ${pid}) still ran (${how})`);
      assert.equal(alive(pid), false);
      const b = await d.client.sandboxes.create({ name: `b-${how}`, image: 'minimal' });
      await b.volumes.mount('shared', '/data', { rw: true });
      await assertFrozenInB(b);
      await b.volumes.unmount('/data');
      await b.destroy();
      if (how === 'stop') await a.destroy();
    }
  });
});
