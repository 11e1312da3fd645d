/**
 * `nook cp` of one 1 GiB file in and out, from the real CLI (whole processes), against a host
 * `cp` into and out of the same btrfs pool, measured interleaved in the same run; the ratio
 * is host time / nook time (1.0x: as fast as cp; target >= 0.7x). The streaming path
 * (NOOK_FAST_COPY=0, what remote clients and the SDK use) is measured beside it, with the
 * fixed cost (a 1-byte `nook cp` each way), a copy out over an existing file, and the bound
 * every copy carries: `openssl dgst -sha256` of the same 1 GiB (the audit digest).
 * A 1 GiB directory (4 files) goes in and out too, fast path and stream, against `cp -a`.
 *
 *   node dist/bench/copy.js            # standalone (N=3)
 *   BENCH_ROWS=directory node dist/bench/copy.js   # only the rows whose name holds that word
 *   called from bench/run.ts           # as part of npm run bench
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/util/proc.js';
import { startDaemon, CLI_MAIN, type TestDaemon } from '../test/helpers/daemon.js';
import { round, stat, type Stat } from './stats.js';

const GiB = 1024 ** 3;

export interface CopyBench {
  results: Stat[];
  /** host cp time / nook cp time, per direction (higher is better; 1 = host speed). */
  ratios: Record<string, number>;
}

export async function benchCopy(d: TestDaemon, n: number): Promise<CopyBench> {
  const tmp = mkdtempSync('/tmp/nook-copy-bench-');
  const poolDir = join(d.stateDir, 'storage', 'btrfs', 'pool', 'bench-copy');
  const sb = await d.client.sandboxes.create({ name: 'bench-copy', image: 'minimal' });
  try {
    mkdirSync(poolDir, { recursive: true });
    const src = join(tmp, 'src');
    await run(['sh', '-c', `head -c ${GiB} /dev/urandom > ${src}`]);
    await run(['cp', src, join(poolDir, 'big')]);
    const one = join(tmp, 'one');
    await run(['sh', '-c', `printf x > ${one}`]);
    const cli = async (args: string[], env: Record<string, string> = {}): Promise<void> => {
      const r = await run([process.execPath, CLI_MAIN, ...args], { env: { ...d.env, ...env }, allowFail: true });
      if (r.code !== 0) throw new Error(`nook ${args.join(' ')} failed: ${r.stderr}`);
    };
    // A file deleted in the pool holds its space until btrfs commits (up to 30 s): three 1 GiB
    // copies in a row filled the 8 GiB test pool (ENOSPC, the pool forced read-only). Commit
    // after each delete, untimed; it also starts every row without the last one's dirty pages.
    const commit = async (): Promise<void> => void (await run(['sync', '-f', poolDir]));
    const removeIn = async (): Promise<void> => {
      await cli(['fs', 'rm', 'bench-copy', '/work/in']);
      await commit();
    };
    // The directory rows' tree: 4 files of 256 MiB (bench/README.md's 1 GiB directory).
    const tree = join(tmp, 'tree');
    mkdirSync(tree);
    for (let i = 0; i < 4; i++) await run(['sh', '-c', `head -c ${GiB / 4} ${src} > ${join(tree, `part${i}`)}`]);
    const removeTree = async (): Promise<void> => {
      await cli(['fs', 'rm', '-r', 'bench-copy', '/work/tree']);
      await commit();
    };
    const dirOut = ['cp', '--max-bytes', String(2 * GiB), 'bench-copy:/work/dir', join(tmp, 'dir-out')];
    const removeDirOut = async (): Promise<void> => rmSync(join(tmp, 'dir-out'), { recursive: true, force: true });
    const allRows: Array<[string, () => Promise<void>, () => Promise<void>]> = [
      ['nook cp 1 GiB in (fast path)', () => cli(['cp', src, 'bench-copy:/work/in']), removeIn],
      ['nook cp 1 GiB in (stream, NOOK_FAST_COPY=0)', () => cli(['cp', src, 'bench-copy:/work/in'], { NOOK_FAST_COPY: '0' }), removeIn],
      ['host cp 1 GiB into the pool', async () => void (await run(['cp', src, join(poolDir, 'in')])), async () => {
        rmSync(join(poolDir, 'in'), { force: true });
        await commit();
      }],
      // The file is left for the next row to replace.
      ['nook cp 1 GiB out (fast path)', () => cli(['cp', '--max-bytes', String(2 * GiB), 'bench-copy:/work/big', join(tmp, 'out')]), async () => undefined],
      ['nook cp 1 GiB out (fast path), over an existing file', () => cli(['cp', '--max-bytes', String(2 * GiB), 'bench-copy:/work/big', join(tmp, 'out')]), async () => rmSync(join(tmp, 'out'), { force: true })],
      ['nook cp 1 GiB out (stream, NOOK_FAST_COPY=0)', () => cli(['cp', '--max-bytes', String(2 * GiB), 'bench-copy:/work/big', join(tmp, 'out')], { NOOK_FAST_COPY: '0' }), async () => rmSync(join(tmp, 'out'), { force: true })],
      ['host cp 1 GiB out of the pool', async () => void (await run(['cp', join(poolDir, 'big'), join(tmp, 'out')])), async () => rmSync(join(tmp, 'out'), { force: true })],
      ['sha256 of 1 GiB (openssl dgst, the audit digest alone)', async () => void (await run(['openssl', 'dgst', '-sha256', join(poolDir, 'big')])), async () => undefined],
      ['nook cp 1 byte in (fast path)', () => cli(['cp', one, 'bench-copy:/work/one']), async () => undefined],
      ['nook cp 1 byte out (fast path)', () => cli(['cp', 'bench-copy:/work/one', join(tmp, 'one.out')]), async () => rmSync(join(tmp, 'one.out'), { force: true })],
      ['nook cp 1 GiB directory (4 files) in (fast path)', () => cli(['cp', tree, 'bench-copy:/work/tree']), removeTree],
      ['nook cp 1 GiB directory (4 files) in (stream, NOOK_FAST_COPY=0)', () => cli(['cp', tree, 'bench-copy:/work/tree'], { NOOK_FAST_COPY: '0' }), removeTree],
      ['host cp -a 1 GiB directory into the pool', async () => void (await run(['cp', '-a', tree, join(poolDir, 'tree')])), async () => {
        rmSync(join(poolDir, 'tree'), { recursive: true, force: true });
        await commit();
      }],
      ['nook cp 1 GiB directory (4 files) out (fast path)', () => cli(dirOut), removeDirOut],
      ['nook cp 1 GiB directory (4 files) out (stream, NOOK_FAST_COPY=0)', () => cli(dirOut, { NOOK_FAST_COPY: '0' }), removeDirOut],
      ['host cp -a 1 GiB directory out of the pool', async () => void (await run(['cp', '-a', join(poolDir, 'dir'), join(tmp, 'dir-out')])), removeDirOut],
    ];
    const only = process.env.BENCH_ROWS;
    const rows = only ? allRows.filter(([name]) => name.includes(only)) : allRows;
    await cli(['cp', src, 'bench-copy:/work/big']);
    await cli(['cp', tree, 'bench-copy:/work/dir']);
    await run(['cp', '-a', tree, join(poolDir, 'dir')]);
    const samples = new Map<string, number[]>(rows.map(([name]) => [name, []]));
    // Interleaved rounds, so load from other work on the host hits every row alike.
    for (let i = 0; i < n; i++) {
      for (const [name, fn, after] of rows) {
        const t0 = performance.now();
        await fn();
        samples.get(name)?.push(performance.now() - t0);
        await after();
      }
    }
    const results = rows.map(([name]) => stat(name, samples.get(name) ?? []));
    const by = (prefix: string): number => results.find((r) => r.name.startsWith(prefix))?.medianMs ?? NaN;
    const ratios = {
      'host cp in / nook cp in (fast)': round(by('host cp 1 GiB into') / by('nook cp 1 GiB in (fast')),
      'host cp in / nook cp in (stream)': round(by('host cp 1 GiB into') / by('nook cp 1 GiB in (stream')),
      'host cp out / nook cp out (fast)': round(by('host cp 1 GiB out') / by('nook cp 1 GiB out (fast')),
      'host cp out / nook cp out (stream)': round(by('host cp 1 GiB out') / by('nook cp 1 GiB out (stream')),
      // The most copy-out can reach while every byte is hashed with sha256 (fixed cost aside).
      'host cp out / sha256 alone (the ceiling)': round(by('host cp 1 GiB out') / by('sha256 of 1 GiB')),
      'host cp -a dir in / nook cp dir in (fast)': round(by('host cp -a 1 GiB directory into') / by('nook cp 1 GiB directory (4 files) in (fast')),
      'host cp -a dir in / nook cp dir in (stream)': round(by('host cp -a 1 GiB directory into') / by('nook cp 1 GiB directory (4 files) in (stream')),
      'host cp -a dir out / nook cp dir out (fast)': round(by('host cp -a 1 GiB directory out') / by('nook cp 1 GiB directory (4 files) out (fast')),
      'host cp -a dir out / nook cp dir out (stream)': round(by('host cp -a 1 GiB directory out') / by('nook cp 1 GiB directory (4 files) out (stream')),
    };
    // Rows left out (BENCH_ROWS) leave their ratios out too.
    return { results, ratios: Object.fromEntries(Object.entries(ratios).filter(([, v]) => Number.isFinite(v))) };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    await sb.destroy().catch(() => undefined);
    rmSync(poolDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const d = await startDaemon();
  try {
    await d.client.images.build({ preset: 'minimal' });
    const r = await benchCopy(d, Number(process.env.BENCH_N ?? 3));
    if (process.argv.includes('--json')) {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      return;
    }
    process.stdout.write('| | median | p90 |\n| --- | --- | --- |\n');
    for (const s of r.results) process.stdout.write(`| ${s.name} | ${s.medianMs} ms | ${s.p90Ms} ms |\n`);
    process.stdout.write('\n');
    for (const [k, v] of Object.entries(r.ratios)) process.stdout.write(`${k}: ${v}x\n`);
  } finally {
    await d.teardown();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
