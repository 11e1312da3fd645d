/**
 * One suite, every RuntimeDriver on this host (crun, runc), driven directly: real
 * containers from a minimal busybox rootfs, no daemon. What a driver cannot do is skipped
 * by its info() flags, with the reason, never by its name. Self-contained (busybox-static,
 * nook-init from native/build), so any host kind (the cgroup v2 guest too) can run it.
 */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Limits } from '../../src/api/schemas.js';
import { PRESETS, PRESET_ENV } from '../../src/oci/presets.js';
import { chooseBackends, chooseRuntime } from '../../src/runtime/index.js';
import type { ExecOutcome, RuntimeDriver, SessionHandle } from '../../src/runtime/driver.js';
import { mountsUnder } from '../../src/util/fs.js';
import { run, which } from '../../src/util/proc.js';

const HELPER = join(import.meta.dirname, '..', '..', '..', 'native', 'build', 'nook-init');
const LIMITS: Limits = { memoryMiB: 128, cpus: 1, pids: 128 };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Rig {
  name: 'crun' | 'runc' | 'runsc';
  root: string;
  rootfs: string;
  /** Names the cgroup parent (nook-<instance>). */
  instance: string;
  driver: RuntimeDriver;
}

/** A state dir of the suite's own: runtime state, bundles, nook-init; torn down after. */
async function makeRig(name: 'crun' | 'runc' | 'runsc'): Promise<Rig | string> {
  if (!(await which(name))) return `${name} is not installed (apt-get install ${name})`;
  const root = mkdtempSync(`/tmp/nook-rt-${name}-`);
  // The sandbox's root (an unprivileged host uid) must traverse down to its rootfs.
  chmodSync(root, 0o711);
  for (const d of ['bin', 'oci', 'bundles']) mkdirSync(join(root, d), { mode: 0o711 });
  copyFileSync(HELPER, join(root, 'bin', 'nook-init'));
  chmodSync(join(root, 'bin', 'nook-init'), 0o755);
  const instance = `rt${process.pid}${name}`;
  try {
    const dirs = { stateRoot: join(root, 'oci'), bundlesDir: join(root, 'bundles'), initDir: join(root, 'bin'), instance };
    const driver = name === 'runsc'
      ? await chooseBackends(dirs, { NOOK_DEFAULT_RUNTIME: 'gvisor' })
      : await chooseRuntime(dirs, name);
    return { name, root, rootfs: join(root, 'rootfs'), instance, driver };
  } catch (e) {
    rmSync(root, { recursive: true, force: true });
    return `${name} driver unavailable here: ${(e as Error).message}`;
  }
}

// runsc through the dispatching driver, as the daemon drives it (gVisor as the default backend).
const rigs: (Rig | string)[] = [await makeRig('crun'), await makeRig('runc'), await makeRig('runsc')];

for (const rig of rigs) {
  if (typeof rig === 'string') {
    describe(`runtime driver conformance: ${rig.split(' ')[0]}`, { skip: rig }, () => undefined);
    continue;
  }
  const { driver, name } = rig;
  const info = driver.info();

  describe(`runtime driver conformance: ${name}`, () => {
    const id = `conf-${name}-${process.pid}`;
    const sessions: SessionHandle[] = [];
    const servers: Server[] = [];
    const hostMounts: string[] = [];

    /** A filesystem of its own (loop ext4, like a volume): holders are found by its device. */
    const ownFs = async (label: string): Promise<string> => {
      const dir = join(rig.root, label);
      mkdirSync(dir, { mode: 0o755 });
      await run(['truncate', '-s', '16M', `${dir}.ext4`]);
      await run(['mkfs.ext4', '-q', '-E', 'root_owner=0:0', `${dir}.ext4`]);
      await run(['mount', '-o', 'loop,nosuid,nodev', `${dir}.ext4`, dir]);
      hostMounts.push(dir);
      return dir;
    };

    const exec = (argv: string[], timeoutMs = 10_000, sandboxId = id): Promise<ExecOutcome & { stdout: string; stderr: string }> => {
      let stdout = '';
      let stderr = '';
      return driver
        .exec(sandboxId, { argv, env: PRESET_ENV, cwd: '/', timeoutMs, onStdout: (b) => (stdout += b.toString()), onStderr: (b) => (stderr += b.toString()) })
        .then((o) => ({ ...o, stdout, stderr }));
    };
    const background = (argv: string[], sandboxId = id): SessionHandle => {
      const s = driver.openSession(sandboxId, { argv, env: PRESET_ENV, cwd: '/' }, { onStdout: () => undefined, onStderr: () => undefined });
      s.exited.catch(() => undefined);
      sessions.push(s);
      return s;
    };
    const start = (sandboxId: string, limits = LIMITS): Promise<void> =>
      driver.start({ sandboxId, hostname: sandboxId, rootfs: rig.rootfs, env: PRESET_ENV, limits, mounts: [] });

    before(async () => {
      await PRESETS.minimal({ target: rig.rootfs, cacheDir: rig.root, progress: () => undefined });
      await start(id);
    });
    after(async () => {
      for (const s of sessions) s.kill();
      for (const s of servers) s.close();
      for (const sb of [id, `${id}-lim`]) await driver.stop(sb, 0).catch(() => undefined);
      await driver.release();
      for (const m of hostMounts) await run(['umount', m], { allowFail: true });
      const cgroups = readdirSync('/sys/fs/cgroup').filter((c) => existsSync(join('/sys/fs/cgroup', c, `nook-${rig.instance}`)));
      assert.deepEqual(cgroups, [], 'release leaves no cgroup of ours in any hierarchy');
      assert.deepEqual(await mountsUnder(rig.root), [], 'nothing stays mounted');
      rmSync(rig.root, { recursive: true, force: true });
    });

    it('starts, reports status and lists the sandbox', async () => {
      assert.equal(await driver.status(id), 'running');
      assert.ok((await driver.list()).some((c) => c.id === id && c.status === 'running'));
      assert.equal(await driver.status('conf-never-made'), 'missing');
      assert.equal(info.name, name);
    });

    it('execs, and a timeout kills the command with everything it started', async () => {
      const r = await exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.deepEqual([r.stdout, r.stderr, r.exitCode, r.timedOut], ['out\n', 'err\n', 3, false]);
      const t = await exec(['sh', '-c', 'sleep 60 & sleep 61; echo never'], 500);
      assert.equal(t.timedOut, true);
      assert.equal(t.stdout, '');
      const left = await exec(['sh', '-c', 'ps -o args | grep -c "^sleep 6[01]" || true']);
      assert.equal(left.stdout.trim(), '0', 'the background sleep went with its tree');
    });

    it('freeze stops every process in place; thaw lets them go on', { skip: !info.freeze && `${name} driver: no freeze` }, async () => {
      const loop = background(['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /root/counter; sleep 0.02; done']);
      const counter = (): number => {
        try {
          return Number(readFileSync(join(rig.rootfs, 'root', 'counter'), 'utf8').trim() || 0);
        } catch {
          return 0; // not written yet
        }
      };
      await waitFor(() => counter() > 2, 'the counter to run');
      await driver.freeze(id);
      try {
        await sleep(50);
        const frozenAt = counter();
        await sleep(300);
        assert.equal(counter(), frozenAt, 'no step while frozen');
      } finally {
        await driver.thaw(id);
      }
      const thawedAt = counter();
      await waitFor(() => counter() > thawedAt + 2, 'the counter to go on after thaw');
      loop.kill();
      await loop.exited;
    });

    it('mounts a host directory into the running sandbox and unmounts it for real', { skip: !info.hotMounts && `${name} driver: no hot mounts` }, async () => {
      const share = await ownFs('share');
      writeFileSync(join(share, 'hello'), 'from the host\n');
      await driver.mountInto(id, share, '/mnt/share', { rw: false });
      assert.equal((await exec(['cat', '/mnt/share/hello'])).stdout, 'from the host\n');
      const ro = await exec(['sh', '-c', 'echo x > /mnt/share/new']);
      assert.notEqual(ro.exitCode, 0, 'read-only unless rw');
      assert.deepEqual(await driver.unmountFrom(id, '/mnt/share', { force: false }), { status: 'unmounted', killed: [] });
      assert.equal((await exec(['test', '-e', '/mnt/share/hello'])).exitCode, 1, 'gone inside');
      assert.deepEqual(await driver.unmountFrom(id, '/mnt/share', { force: false }), { status: 'not-mounted' });
    });

    it('names what holds a mount, refuses to unmount it, and with force kills it first', { skip: !(info.hotMounts && info.holders) && `${name} driver: no holder scan` }, async () => {
      const share = await ownFs('held');
      await driver.mountInto(id, share, '/mnt/held', { rw: true });
      background(['sh', '-c', 'cd /mnt/held && exec sleep 60']);
      await waitFor(async () => (await driver.holdersOf(id, '/mnt/held')).length > 0, 'the holder to show');
      const holders = await driver.holdersOf(id, '/mnt/held');
      assert.ok(holders.some((h) => h.command.startsWith('sleep') && h.uses.includes('cwd')), JSON.stringify(holders));
      const busy = await driver.unmountFrom(id, '/mnt/held', { force: false });
      assert.equal(busy.status, 'busy');
      assert.equal((await exec(['test', '-d', '/mnt/held'])).exitCode, 0);
      const forced = await driver.unmountFrom(id, '/mnt/held', { force: true });
      assert.equal(forced.status, 'unmounted');
      assert.ok(forced.status === 'unmounted' && forced.killed.some((h) => h.command.startsWith('sleep')));
      assert.equal(await driver.status(id), 'running', 'thawed again');
      assert.equal((await exec(['sh', '-c', 'ps -o args | grep -c "^sleep 60" || true'])).stdout.trim(), '0', 'the holder was killed');
    });

    it('listens inside the sandbox for the daemon: a connection from inside reaches it', { skip: !info.egress && `${name} driver: no in-sandbox listener (egress)` }, async () => {
      const handle = await driver.listenInSandbox(id, 3999);
      const server = createServer((s) => s.end('HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\nfrom daemon\n'));
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(handle, () => resolve()));
      const r = await exec(['wget', '-q', '-O', '-', 'http://127.0.0.1:3999/']);
      assert.equal(r.stdout, 'from daemon\n', r.stderr);
      server.close();
    });

    it('exposes a port inside to the host through a socket, and closes it', { skip: !info.exposePorts && `${name} driver: no exposed ports` }, async () => {
      mkdirSync(join(rig.rootfs, 'root', 'www'), { recursive: true });
      writeFileSync(join(rig.rootfs, 'root', 'www', 'index.html'), 'from inside\n');
      background(['httpd', '-f', '-p', '127.0.0.1:8080', '-h', '/root/www']);
      await waitFor(async () => (await exec(['sh', '-c', 'netstat -ltn | grep -c ":8080 " || true'])).stdout.trim() !== '0', 'httpd to listen');
      const sock = await driver.exposePort(id, 8080, { maxConnections: 4 });
      assert.match(await httpOverSocket(sock), /200 OK[\s\S]*from inside/);
      await driver.unexposePort(id, 8080);
      await assert.rejects(httpOverSocket(sock), /ENOENT/, 'nothing answers once closed');
      await driver.unexposePort(id, 'all'); // idempotent
    });

    it('enforces pids and memory limits, and the sandbox lives on', { skip: !info.perProcessLimits && `${name} driver: limits bound the whole sandbox (next test)` }, async () => {
      const lim = `${id}-lim`;
      await start(lim, { memoryMiB: 64, cpus: 1, pids: 24 });
      const fork = await exec(['sh', '-c', 'i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done; wait'], 3000, lim);
      assert.match(fork.stderr, /fork|resource|again/i, `stderr: ${fork.stderr}`);
      const oom = await exec(['awk', 'BEGIN { s = "x"; while (1) s = s s }'], 20_000, lim);
      assert.equal(oom.timedOut, false);
      assert.equal(oom.exitCode, 137, `exit ${oom.exitCode}: ${oom.stderr}`);
      assert.equal((await exec(['echo', 'alive'], 5000, lim)).stdout, 'alive\n');
      await driver.stop(lim, 0);
    });

    it('bounds the whole sandbox by its limits: a fork bomb or a memory blowup ends it, and stop cleans up', { skip: info.perProcessLimits && `${name} driver: limits fail one process (previous test)` }, async () => {
      for (const [what, argv] of [
        ['fork bomb', ['sh', '-c', 'i=0; while [ $i -lt 400 ]; do sleep 30 & i=$((i+1)); done; wait']],
        ['memory blowup', ['awk', 'BEGIN { s = "x"; while (1) s = s s }']],
      ] as const) {
        const lim = `${id}-lim`;
        await start(lim, { memoryMiB: 64, cpus: 1, pids: 24 });
        const r = await exec([...argv], 20_000, lim).catch((e: Error) => e);
        assert.ok(r instanceof Error || r.exitCode !== 0, `${what}: it did not succeed`);
        await waitFor(async () => (await driver.status(lim)) !== 'running', `${what}: the sandbox to end`, 10_000);
        await driver.stop(lim, 0);
        assert.equal(await driver.status(lim), 'missing');
      }
    });

    it('saves process memory and restores it: a counter goes on from where it was', { skip: !info.memorySnapshots && `${name} driver: no memory snapshots` }, async () => {
      const mem = `${id}-mem`;
      await start(mem, LIMITS);
      await exec(['sh', '-c', 'i=0; (while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done) >/dev/null 2>&1 </dev/null &'], 5000, mem);
      // Counting for a while first (a slow host, such as a TCG guest, takes longer to start it).
      const counted = async (): Promise<number> => Number((await exec(['cat', '/tmp/n'], 5000, mem)).stdout.trim()) || 0;
      for (let i = 0; i < 100 && (await counted()) < 5; i++) await sleep(100);
      const before = await counted();
      assert.ok(before >= 5, `the counter never got going (${before})`);
      const image = join(rig.root, 'image');
      mkdirSync(image);
      await driver.checkpoint(mem, image);
      assert.notEqual(await driver.status(mem), 'running');
      await driver.start({ sandboxId: mem, hostname: mem, rootfs: rig.rootfs, env: PRESET_ENV, limits: LIMITS, mounts: [], memoryImage: image });
      const n = await counted();
      assert.ok(n >= before, `the counter went on from ${n}, not from ${before} or more (/tmp is in the saved memory)`);
      await driver.stop(mem, 0);
      rmSync(image, { recursive: true, force: true });
    });

    it('refuses to save memory while a command is attached, and the sandbox runs on', { skip: !info.memorySnapshots && `${name} driver: no memory snapshots` }, async () => {
      const s = driver.openSession(id, { argv: ['sleep', '30'], env: PRESET_ENV, cwd: '/' }, { onStdout: () => undefined, onStderr: () => undefined });
      await sleep(200);
      await assert.rejects(driver.checkpoint(id, join(rig.root, 'no-image')), /attached/);
      s.kill();
      await s.exited.catch(() => undefined);
      assert.equal((await exec(['echo', 'alive'])).stdout, 'alive\n');
    });

    it('answers NOT_SUPPORTED to a memory checkpoint', { skip: info.memorySnapshots && `${name} driver saves memory` }, async () => {
      await assert.rejects(driver.checkpoint(id, join(rig.root, 'no-image')), (e: Error & { code?: string }) => e.code === 'NOT_SUPPORTED');
      assert.equal(await driver.status(id), 'running');
    });

    it('stops: the container and its cgroups are gone, and stop is idempotent', async () => {
      for (const s of sessions.splice(0)) s.kill();
      await driver.stop(id, 2000);
      assert.equal(await driver.status(id), 'missing');
      assert.ok(!(await driver.list()).some((c) => c.id === id));
      assert.ok(!(await driver.listCgroups()).includes(id));
      await driver.stop(id, 0);
    });
  });
}

async function waitFor(ok: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function httpOverSocket(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let got = '';
    s.on('connect', () => s.write('GET / HTTP/1.0\r\nHost: x\r\n\r\n'));
    s.on('data', (b) => (got += b.toString()));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}
