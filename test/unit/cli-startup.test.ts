/**
 * The CLI starts fast because it loads only what the command needs: no zod schemas, tar,
 * ws, cli-progress or daemon code for `nook --version`, `nook --help`, or a command that
 * fails to reach a daemon. Checked by logging every module the real CLI resolves: tsc's
 * output (one file per module, so each is named), and the installed bundle (by size: the
 * schemas chunk alone is most of a megabyte).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { CLI_MAIN, CLI_UNBUNDLED } from '../helpers/daemon.js';

const REGISTER = join(import.meta.dirname, '..', 'helpers', 'module-log-register.js');

/** Packages and source modules that cost start-up time and that these commands do not need. */
const HEAVY = [/\/node_modules\/(zod|tar|ws|cli-progress|hono|@hono|better-sqlite3)\//, /\/src\/api\/(schemas|routes|openapi)\.js$/, /\/src\/api\/schemas\//, /\/src\/(daemon|core)\//, /^node:(https|tls)$/];

function modulesLoaded(args: string[], env: Record<string, string> = {}, cli = CLI_UNBUNDLED): { urls: string[]; status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nook-cli-startup-'));
  try {
    const log = join(dir, 'modules.log');
    const r = spawnSync(process.execPath, ['--import', REGISTER, cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env, NOOK_MODULE_LOG: log } });
    const urls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    return { urls, status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function heavy(urls: string[]): string[] {
  return urls.filter((u) => HEAVY.some((re) => re.test(u)));
}

describe('CLI start-up loads only what the command needs', () => {
  it('the module log works: it sees the CLI itself and commander', () => {
    const { urls } = modulesLoaded(['--version']);
    assert.ok(urls.some((u) => u.endsWith('/src/cli/main.js')), 'main.js in the log');
    assert.ok(urls.some((u) => /\/node_modules\/commander\//.test(u)), 'commander in the log');
  });

  it('nook --version loads no heavy module', () => {
    const r = modulesLoaded(['--version']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
    assert.deepEqual(heavy(r.urls), []);
  });

  it('nook --help loads no heavy module', () => {
    const r = modulesLoaded(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /exec/);
    assert.deepEqual(heavy(r.urls), []);
  });

  it('nook exec and nook ls, down to their error, load no heavy module; the error keeps its code and hint', () => {
    // A TCP URL on a closed loopback port: the CLI never starts a daemon for a URL.
    const env = { NOOK_URL: 'http://127.0.0.1:1' };
    for (const args of [['exec', 'sb', '--', '/bin/true'], ['ls']]) {
      const r = modulesLoaded(args, env);
      assert.equal(r.status, 1, args.join(' '));
      assert.match(r.stderr, /\[DAEMON_UNAVAILABLE\]/);
      assert.match(r.stderr, /hint: /);
      assert.deepEqual(heavy(r.urls), [], args.join(' '));
      const commandModules = r.urls.filter((u) => /\/src\/cli\/commands\/(?!index\.js)/.test(u));
      assert.deepEqual(commandModules.map((u) => u.split('/').pop()), [args[0] === 'ls' ? 'sandbox.js' : 'exec.js'], 'only the module defining the command');
    }
  });

  it('the installed bundle reads under 300 KB of code for --version, ls and exec', () => {
    const env = { NOOK_URL: 'http://127.0.0.1:1' };
    const bundleDir = dirname(CLI_MAIN);
    for (const args of [['--version'], ['ls'], ['exec', 'sb', '--', '/bin/true']]) {
      const r = modulesLoaded(args, env, CLI_MAIN);
      const files = [...new Set(r.urls.filter((u) => u.startsWith('file:')).map((u) => fileURLToPath(u)))];
      assert.ok(files.includes(CLI_MAIN), 'the log saw the bundle');
      assert.deepEqual(files.filter((f) => dirname(f) !== bundleDir), [], 'nothing outside the bundle');
      const bytes = files.reduce((sum, f) => sum + statSync(f).size, 0);
      assert.ok(bytes < 300 * 1024, `${args.join(' ')}: ${bytes} bytes of code`);
    }
  });
});
