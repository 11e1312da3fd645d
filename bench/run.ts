/**
 * nook benchmarks, side by side with raw crun, bwrap and a host fork+exec in the same run.
 * Prints medians (and p90) and ratios; `--json` prints the raw figures. Not a test: timing
 * targets live here, never in the test suite.
 *
 *   npm run bench                 # default iterations
 *   BENCH_N=50 npm run bench      # more iterations
 */
import { createServer, request as httpRequest } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { AuditLog, type AuditContext } from '../src/core/audit.js';
import { openDb } from '../src/store/db.js';
import { join } from 'node:path';
import { buildOciSpec } from '../src/runtime/oci-config.js';
import { resolvePaths } from '../src/core/paths.js';
import { run, which } from '../src/util/proc.js';
import { startDaemon, type TestDaemon } from '../test/helpers/daemon.js';
import { benchImages } from './images.js';
import { benchState } from './state.js';
import { benchPool } from './pool.js';
import { benchCopy, type CopyBench } from './copy.js';
import { benchEgress } from './egress.js';
import { round, stat, timeIt, type Stat } from './stats.js';
import { HIDE_UNIFIED, spawnQuiet } from './raw.js';

const N = Number(process.env.BENCH_N ?? 30);
const IDLE_SANDBOXES = Number(process.env.BENCH_IDLE ?? 50);

function memAvailableBytes(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

async function main(): Promise<void> {
  const keyDir = mkdtempSync('/tmp/nook-bench-key-');
  const d: TestDaemon = await startDaemon({ NOOK_PROXY_HOSTS: 'bench.test=127.0.0.1', NOOK_MASTER_KEY_FILE: join(keyDir, 'master.key') });
  const paths = resolvePaths({ NOOK_STATE_DIR: d.stateDir });
  const crunRoot = paths.runtimeStateDir;
  const results: Stat[] = [];
  const crun = ['crun', '--root', join(d.stateDir, 'bench-crun')];
  const extra: Record<string, number> = {};
  const poolRatios: Record<string, number> = {};
  let copy: CopyBench | undefined;
  try {
    const image = await d.client.images.build({ preset: 'minimal' });
    const rootfs = join(d.stateDir, 'storage', 'btrfs', 'pool', 'images', image.id);
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

    // --- create to first exec ---------------------------------------------------------
    const ids: string[] = [];
    results.push(
      stat(
        'nook create + first exec',
        await timeIt(
          N,
          async (i) => {
            const sb = await d.client.sandboxes.create({ name: `bench-${i}`, image: 'minimal' });
            ids.push(sb.id);
            await sb.exec(['true']);
          },
          async (i) => {
            await (await d.client.sandboxes.get(`bench-${i}`)).destroy();
          },
        ),
      ),
    );

    const bundleBase = join(d.stateDir, 'bench-bundles');
    const bundle = (args: string[], id: string): string => {
      const dir = join(bundleBase, id);
      mkdirSync(dir, { recursive: true });
      const spec = buildOciSpec({ rootfs, hostname: id, env, limits: { memoryMiB: 1024, cpus: 1, pids: 1024 }, cgroupsPath: `/nook-bench/${id}`, swapLimit: false, initDir: paths.initDir }) as {
        process: { args: string[] };
        root: { readonly: boolean };
      };
      spec.process.args = args;
      spec.root.readonly = true; // the image itself, read-only: raw crun gets no snapshot to make
      writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
      return dir;
    };
    results.push(
      stat(
        'raw crun run /bin/true (same rootfs, same config)',
        await timeIt(N, async (i) => {
          const code = await spawnQuiet([...HIDE_UNIFIED, ...crun, 'run', '--bundle', bundle(['/bin/true'], `raw-${i}`), `raw-${i}`]);
          if (code !== 0) throw new Error(`crun run exited ${code}`);
        }),
      ),
    );
    results.push(
      stat(
        'raw crun run -d + crun exec true',
        await timeIt(
          N,
          async (i) => {
            const id = `rawd-${i}`;
            if ((await spawnQuiet([...HIDE_UNIFIED, ...crun, 'run', '-d', '--bundle', bundle(['/.nook/nook-init', 'init'], id), id])) !== 0) throw new Error('crun run -d failed');
            await spawnQuiet([...crun, 'exec', id, '/bin/true']);
          },
          async (i) => {
            await run([...HIDE_UNIFIED, ...crun, 'delete', '-f', `rawd-${i}`], { allowFail: true });
          },
        ),
      ),
    );
    if (await which('bwrap')) {
      results.push(
        stat(
          'bwrap --unshare-all /bin/true',
          await timeIt(N, async () => {
            await spawnQuiet(['bwrap', '--unshare-all', '--ro-bind', rootfs, '/', '--proc', '/proc', '--dev', '/dev', '/bin/true']);
          }),
        ),
      );
    }

    // --- warm pool: create and one-shot run against raw crun run, measured just above -------------
    if (process.env.BENCH_POOL !== '0') results.push(...(await benchPool(d, N, results.find((r) => r.name.startsWith('raw crun run /bin/true'))?.medianMs ?? NaN, poolRatios, extra)));

    // --- exec round trip ----------------------------------------------------------------
    const sb = await d.client.sandboxes.create({ name: 'bench-exec', image: 'minimal' });
    await sb.exec(['true']);
    results.push(stat('nook exec true (SDK, socket)', await timeIt(N * 3, async () => void (await sb.exec(['true'])))));
    results.push(stat('raw crun exec true', await timeIt(N * 3, async () => void (await spawnQuiet(['crun', '--root', crunRoot, 'exec', sb.id, '/bin/true'])))));
    results.push(stat('host fork+exec /bin/true', await timeIt(N * 3, async () => void (await spawnQuiet(['/bin/true'])))));
    await sb.destroy();

    // --- idle memory --------------------------------------------------------------------
    await new Promise((r) => setTimeout(r, 1000));
    const before = memAvailableBytes();
    const idle = [];
    for (let i = 0; i < IDLE_SANDBOXES; i++) idle.push(await d.client.sandboxes.create({ name: `idle-${i}`, image: 'minimal' }));
    await new Promise((r) => setTimeout(r, 2000));
    const afterBytes = memAvailableBytes();
    let cgroupBytes = 0;
    for (const s of idle) {
      try {
        cgroupBytes += Number(readFileSync(join('/sys/fs/cgroup/memory', `nook-${paths.instance}`, s.id, 'memory.usage_in_bytes'), 'utf8'));
      } catch {
        // no memory cgroup
      }
    }
    extra.idleSandboxes = IDLE_SANDBOXES;
    extra.hostMiBPerIdleSandbox = round((before - afterBytes) / IDLE_SANDBOXES / 1024 / 1024);
    extra.cgroupMiBPerIdleSandbox = round(cgroupBytes / IDLE_SANDBOXES / 1024 / 1024);
    for (const s of idle) await s.destroy();
    // --- network: proxy throughput and latency, exposed-port latency ------------------------
    {
      const chunk = Buffer.alloc(1024 * 1024, 97);
      const server = createServer((req, res) => {
        if (req.url === '/100m') {
          res.writeHead(200, { 'content-length': String(100 * chunk.length) });
          let sent = 0;
          const pump = (): void => {
            while (sent < 100 && res.write(chunk)) sent++;
            if (sent < 100) res.once('drain', pump);
            else res.end();
          };
          pump();
        } else res.end('ok\n');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      const port = (server.address() as { port: number }).port;
      try {
        const sb = await d.client.sandboxes.create({ name: 'bench-net', image: 'minimal', allowHosts: [`bench.test:${port}`] });
        const hostWget = (path: string, times: number): Promise<unknown> =>
          run(['sh', '-c', `i=0; while [ $i -lt ${times} ]; do busybox wget -q -O /dev/null http://127.0.0.1:${port}${path}; i=$((i+1)); done`]);
        const sandboxWget = async (path: string, times: number): Promise<void> => {
          const r = await sb.exec(['sh', '-c', `i=0; while [ $i -lt ${times} ]; do wget -q -O /dev/null http://bench.test:${port}${path} || exit 1; i=$((i+1)); done`], { timeoutMs: 300_000 });
          if (r.exitCode !== 0) throw new Error(`download through the proxy failed: ${r.stderr}`);
        };
        const directMs = await timeIt(5, () => hostWget('/100m', 1).then(() => undefined));
        const proxiedMs = await timeIt(5, () => sandboxWget('/100m', 1));
        const direct = stat('100 MiB download, host direct (busybox wget)', directMs);
        const proxied = stat('100 MiB download, sandbox via proxy', proxiedMs);
        results.push(direct, proxied);
        extra.proxyThroughputMiBs = round(100 / (proxied.medianMs / 1000));
        extra.directThroughputMiBs = round(100 / (direct.medianMs / 1000));
        const per = 20;
        const directReq = await timeIt(5, () => hostWget('/small', per).then(() => undefined));
        const proxiedReq = await timeIt(5, () => sandboxWget('/small', per));
        results.push(stat('small request, host direct (per request)', directReq.map((x) => x / per)));
        results.push(stat('small request, sandbox via proxy (per request)', proxiedReq.map((x) => x / per)));
        void sb.exec(['sh', '-c', 'mkdir -p /work/www && echo ok > /work/www/index.html && httpd -f -p 8000 -h /work/www'], { timeoutMs: 600_000 }).catch(() => undefined);
        const exposure = await sb.expose(8000);
        const fetchOnce = (url: string, headers: Record<string, string> = {}): Promise<void> =>
          new Promise((resolve, reject) => {
            const req = httpRequest(url, { headers, agent: false }, (res) => {
              res.resume();
              res.on('end', () => resolve());
            });
            req.on('error', reject);
            req.end();
          });
        for (let i = 0; i < 50 && (await fetchOnce(exposure.url).then(() => true, () => false)) === false; i++) await new Promise((r) => setTimeout(r, 50));
        results.push(stat('request to exposed port (token check + bridge)', await timeIt(N * 2, () => fetchOnce(exposure.url))));
        results.push(stat('request to a host server direct', await timeIt(N * 2, () => fetchOnce(`http://127.0.0.1:${port}/small`))));
        await sb.destroy();
        const egress = await benchEgress(d.client, Math.min(N, 9));
        results.push(...egress.rows);
        Object.assign(extra, { egressProxiedMiBs: egress.proxiedMiBs, egressDirectMiBs: egress.directMiBs, egressRatio: egress.ratio });
      } finally {
        server.close();
      }
    }

    // --- interactive: keystroke echo through a PTY, bulk output through logs -f and a PTY ----
    {
      const sb = await d.client.sandboxes.create({ name: 'bench-pty', image: 'minimal' });
      let screen = '';
      let wanted = '';
      let seen: () => void = () => undefined;
      const t = await sb.pty.create({
        cols: 120,
        rows: 40,
        cmd: ['sh'],
        onData: (b) => {
          // Only the tail matters: searching a 100 MiB screen on every chunk would be quadratic.
          screen = (screen + b.toString('latin1')).slice(-64);
          if (wanted && screen.includes(wanted)) seen();
        },
      });
      await new Promise((r) => setTimeout(r, 300));
      const echo: number[] = [];
      for (let i = 0; i < N * 3; i++) {
        const ch = String.fromCharCode(97 + (i % 26));
        screen = '';
        wanted = ch;
        const got = new Promise<void>((r) => (seen = r));
        const t0 = performance.now();
        t.write(ch);
        await got;
        echo.push(performance.now() - t0);
      }
      wanted = '';
      t.write('\x15'); // Ctrl-U: drop the typed line
      results.push(stat('PTY keystroke echo', echo));
      await sb.exec(['sh', '-c', 'head -c 104857600 /dev/zero | tr "\\0" a | fold -w 1023 > /work/big']);
      const ptyMs = await timeIt(3, async () => {
        const done = new Promise<void>((r) => {
          wanted = '__PTYDONE__';
          seen = r;
        });
        screen = '';
        t.write('cat /work/big; echo __PTY""DONE__\n');
        await done;
      });
      results.push(stat('100 MiB through a PTY (cat)', ptyMs));
      t.kill();
      const logsMs = await timeIt(3, async (i) => {
        await sb.processes.start(['cat', '/work/big'], { name: `cat-${i}` });
        for await (const e of sb.processes.logs(`cat-${i}`, { follow: true })) void e;
      });
      results.push(stat('100 MiB through logs -f (cat)', logsMs));
      extra.ptyMiBs = round(100 / (stat('', ptyMs).medianMs / 1000));
      extra.logsMiBs = round(100 / (stat('', logsMs).medianMs / 1000));
      await sb.destroy();
    }

    // --- audit: cost per audited call, verify over a million records ------------------------
    {
      const dir = mkdtempSync('/tmp/nook-audit-bench-');
      try {
        const db = openDb(join(dir, 'audit.db'));
        const audit = new AuditLog(db);
        const ctx = (i: number): AuditContext => ({
          receipt: `rcpt_bench${i}`,
          actor: 'unix:bench@host',
          action: 'exec',
          inputs: { argv: { command: 'true', args: 0, sha256: 'x'.repeat(64) }, ref: 'bench' },
          result: { exitCode: 0, durationMs: 3, stdout: { sha256: 'y'.repeat(64), bytes: 0 } },
          sandboxId: 'sb_bench',
          sandbox: 'bench',
        });
        // What each mutating call pays: an opening record and an outcome record.
        const perCall = await timeIt(2000, async (i) => {
          audit.begin(ctx(i));
          audit.append(ctx(i), 'ok');
        });
        const perCallStat = stat('audit records for one call (open + outcome)', perCall);
        results.push(perCallStat);
        extra.auditOverheadPctOfExec = round((perCallStat.medianMs / (results.find((r) => r.name.startsWith('nook exec'))?.medianMs ?? 1)) * 100);
        const million = 1_000_000;
        db.transaction(() => {
          for (let i = 4000; i < million; i++) audit.append(ctx(i), 'ok');
        })();
        const t0 = performance.now();
        const v = audit.verify();
        extra.auditVerifyMillionMs = round(performance.now() - t0);
        extra.auditVerifyRecords = v.records;
        db.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }

    // --- volumes and copies -----------------------------------------------------------------
    if (process.env.BENCH_VOLUMES !== '0') {
      const tmp = mkdtempSync('/tmp/nook-vol-bench-');
      try {
        const sb = await d.client.sandboxes.create({ name: 'bench-vol', image: 'minimal' });
        const size = 256 * 1024 * 1024;
        const data = Buffer.alloc(size, 7);
        writeFileSync(join(tmp, 'src'), data);
        results.push(stat('copy 256 MiB into a sandbox (nook files.write)', await timeIt(3, async () => void (await sb.files.write('/work/big', data)))));
        results.push(stat('copy 256 MiB out of a sandbox (nook files.read)', await timeIt(3, async () => void (await sb.files.read('/work/big', { maxBytes: size })))));
        results.push(stat('plain cp of 256 MiB on the host', await timeIt(3, async () => void (await run(['cp', join(tmp, 'src'), join(tmp, 'dst')])))));
        // Directory copies stream as tar: 1 GiB in 4 files, in and out, against cp -a on the host.
        mkdirSync(join(tmp, 'tree'));
        for (let i = 0; i < 4; i++) await run(['sh', '-c', `head -c 268435456 /dev/urandom > ${join(tmp, 'tree', `part${i}`)}`]);
        results.push(stat('copy a 1 GiB directory into a sandbox (tar stream)', await timeIt(3, async () => void (await sb.files.uploadDir(join(tmp, 'tree'), '/work/tree')), async () => void (await sb.exec(['rm', '-rf', '/work/tree'])))));
        await sb.files.uploadDir(join(tmp, 'tree'), '/work/tree');
        results.push(stat('copy a 1 GiB directory out of a sandbox (tar stream)', await timeIt(3, async () => void (await sb.files.download('/work/tree', join(tmp, 'out'), { maxBytes: 2 * 1024 ** 3 })), async () => rmSync(join(tmp, 'out'), { recursive: true, force: true }))));
        results.push(stat('cp -a of the 1 GiB directory on the host', await timeIt(3, async () => void (await run(['cp', '-a', join(tmp, 'tree'), join(tmp, 'cpa')])), async () => rmSync(join(tmp, 'cpa'), { recursive: true, force: true }))));
        await sb.exec(['rm', '-rf', '/work/tree']);
        await d.client.volumes.create('bench', { sizeMiB: 2048 });
        await d.client.volumes.unlock('bench');
        await sb.volumes.mount('bench', '/vol', { rw: true });
        await sb.exec(['sh', '-c', 'dd if=/dev/urandom of=/vol/data bs=1M count=1024 2>/dev/null; sync'], { timeoutMs: 600_000 });
        const dd = async (path: string): Promise<void> => {
          const r = await sb.exec(['sh', '-c', `dd if=/dev/zero of=${path} bs=1M count=256 conv=fsync 2>/dev/null; rm ${path}`], { timeoutMs: 300_000 });
          if (r.exitCode !== 0) throw new Error(r.stderr);
        };
        results.push(stat('write 256 MiB (fsync) to an unlocked volume', await timeIt(3, () => dd('/vol/w'))));
        results.push(stat('write 256 MiB (fsync) to the unencrypted rootfs', await timeIt(3, () => dd('/work/w'))));
        await sb.volumes.unmount('/vol');
        const lock: number[] = [];
        const unlock: number[] = [];
        for (let i = 0; i < 5; i++) {
          let t0 = performance.now();
          await d.client.volumes.lock('bench');
          lock.push(performance.now() - t0);
          t0 = performance.now();
          await d.client.volumes.unlock('bench');
          unlock.push(performance.now() - t0);
        }
        results.push(stat('lock a 2 GiB volume holding 1 GiB', lock));
        results.push(stat('unlock a 2 GiB volume holding 1 GiB', unlock));
        await d.client.volumes.remove('bench');
        await sb.destroy();
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }

    // --- nook cp of 1 GiB in and out against host cp (bench/copy.ts) ------------------------
    if (process.env.BENCH_COPY !== '0') {
      copy = await benchCopy(d, 3);
      results.push(...copy.results);
    }

    // --- images: pull, unpack, warm rebuild ---------------------------------------------------
    if (process.env.BENCH_IMAGES !== '0') results.push(...(await benchImages(d, Math.max(3, Math.min(N, 5)), extra)));

    // --- state: snapshot, fork, restore across data sizes (bench/state.ts) -------------------
    if (process.env.BENCH_STATE !== '0') results.push(...(await benchState(d)));

  } catch (e) {
    process.stderr.write(`daemon log (tail):\n${d.log.split('\n').slice(-30).join('\n')}\n`);
    throw e;
  } finally {
    const leftovers = await run([...crun, 'list', '-q'], { allowFail: true });
    for (const id of leftovers.stdout.split('\n').filter(Boolean)) await run([...HIDE_UNIFIED, ...crun, 'delete', '-f', id], { allowFail: true });
    await run(['sh', '-c', 'for c in /sys/fs/cgroup/*/nook-bench; do find "$c" -depth -type d -exec rmdir {} \\; 2>/dev/null; done'], { allowFail: true });
    rmSync(join(d.stateDir, 'bench-bundles'), { recursive: true, force: true });
    await d.teardown();
    rmSync(keyDir, { recursive: true, force: true });
  }

  const by = (name: string): number => results.find((r) => r.name.startsWith(name))?.medianMs ?? NaN;
  const stateRatios: Record<string, number> = {};
  for (const size of ['10 MiB', '1 GiB', '20k files']) {
    const fork = results.find((r) => r.name === `fork + first exec (${size})`);
    if (fork) stateRatios[`fork + first exec / create + first exec (${size})`] = round(fork.medianMs / by('nook create'));
  }
  const ratios = {
    ...stateRatios,
    ...poolRatios,
    'create+first exec / raw crun run': round(by('nook create') / by('raw crun run /bin/true')),
    'create+first exec / raw crun run -d + exec': round(by('nook create') / by('raw crun run -d')),
    'exec / raw crun exec': round(by('nook exec') / by('raw crun exec')),
    'exec / host fork+exec': round(by('nook exec') / by('host fork+exec')),
    ...copy?.ratios,
  };
  if (process.argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ n: N, results, ratios, memory: extra }, null, 2) + '\n');
    return;
  }
  const w = Math.max(...results.map((r) => r.name.length));
  process.stdout.write(`\nnook benchmarks (N=${N}; medians, p90)\n\n`);
  for (const r of results) process.stdout.write(`  ${r.name.padEnd(w)}  ${r.medianMs.toFixed(2).padStart(8)} ms   p90 ${r.p90Ms.toFixed(2).padStart(8)} ms\n`);
  process.stdout.write('\nratios (lower is better)\n');
  for (const [k, v] of Object.entries(ratios)) process.stdout.write(`  ${k.padEnd(45)} ${v.toFixed(2)}x\n`);
  process.stdout.write(`\nidle memory with ${extra.idleSandboxes} sandboxes running\n`);
  process.stdout.write(`  host MemAvailable drop per sandbox   ${extra.hostMiBPerIdleSandbox} MiB\n`);
  process.stdout.write(`  memory cgroup usage per sandbox       ${extra.cgroupMiBPerIdleSandbox} MiB\n`);
  if (extra.auditVerifyMillionMs !== undefined) {
    process.stdout.write(`\naudit: ${extra.auditOverheadPctOfExec}% of an exec round trip per call; verify of ${extra.auditVerifyRecords} records in ${extra.auditVerifyMillionMs} ms\n`);
  }
  if (extra.unpackMiBs !== undefined) process.stdout.write(`\nimages: pull ${extra.pullVsSkopeo}x the time of skopeo copy (which does not unpack); unpack ${extra.unpackMiBs} MiB/s\n`);
  if (extra.pullVsSkopeoUmoci !== undefined) process.stdout.write(`images: pull ${extra.pullVsSkopeoUmoci}x the time of skopeo copy + umoci raw unpack (target <= 1x)\n`);
  if (extra.ptyMiBs !== undefined) process.stdout.write(`\nbulk output: PTY ${extra.ptyMiBs} MiB/s, logs -f ${extra.logsMiBs} MiB/s\n`);
  if (extra.proxyThroughputMiBs !== undefined) {
    process.stdout.write(`\negress proxy throughput\n  via proxy ${extra.proxyThroughputMiBs} MiB/s, direct ${extra.directThroughputMiBs} MiB/s: ${round((extra.proxyThroughputMiBs ?? 0) / (extra.directThroughputMiBs ?? 1))}x\n`);
    process.stdout.write(`  256 MiB, interleaved: via proxy ${extra.egressProxiedMiBs} MiB/s, host direct ${extra.egressDirectMiBs} MiB/s: ${extra.egressRatio}x (target >= 0.8x)\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
