import type { Command } from 'commander';
import { NookError } from '../../api/errors.js';
import type { CreateSandboxRequest } from '../../api/schemas.js';
import type { Sandbox } from '../../sdk/client.js';
import { connect } from '../connect.js';
import { durationMs, keyValue, positiveInt, positiveNumber } from '../parse.js';
import { progressBar } from '../progress.js';
import { printJson, sandboxRows } from '../render.js';

interface CreateFlags {
  name?: string;
  image?: string;
  ttl?: number;
  memoryMib?: number;
  cpus?: number;
  pids?: number;
  label?: Record<string, string>;
  env?: Record<string, string>;
  cwd?: string;
  persistent: boolean;
  snapshot?: string;
  persist?: string[];
  allowHost?: string[];
  profile?: string;
  volume?: string[];
  network?: 'none' | 'allowlist' | 'learn';
  json?: boolean;
}

/** `name:/guest[:ro|:rw]` -> a declared volume mount. */
function parseVolumeFlag(v: string): { volume: string; guest: string; rw: boolean } {
  const m = /^([a-z0-9][a-z0-9-]{0,62}):(\/[^:]*)(?::(ro|rw))?$/.exec(v);
  if (!m) throw new NookError('INVALID_ARGUMENT', `-v ${v}: expected NAME:/PATH[:ro|:rw]`, { hint: 'e.g. -v data:/data:rw (raw disks and tar bundles are not supported yet)' });
  return { volume: m[1] ?? '', guest: m[2] ?? '', rw: m[3] === 'rw' };
}

export function registerSandboxCommands(program: Command): void {
  program
    .command('create')
    .description('create a sandbox and start it (persistent unless --non-persistent)')
    .option('--name <name>', 'unique name (default: generated)')
    .option('--image <image>', 'image to start from (default: python)')
    .option('--ttl <duration>', 'stop (persistent) or destroy (non-persistent) after this long, e.g. 1h', durationMs)
    .option('--memory-mib <MiB>', 'memory limit', positiveInt)
    .option('--cpus <n>', 'CPU limit, e.g. 0.5', positiveNumber)
    .option('--pids <n>', 'process limit', positiveInt)
    .option('--label <k=v>', 'label (repeatable)', keyValue)
    .option('--env <K=V>', 'environment variable for every exec (repeatable)', keyValue)
    .option('--cwd <dir>', 'working directory for execs', undefined)
    .option('--non-persistent', 'discard the sandbox when it stops')
    .option('--allow-host <pattern>', 'egress through the proxy to this host (repeatable): host, *.suffix, IP, CIDR, optional :port', (v: string, prev: string[] = []) => [...prev, v])
    .option('--network <mode>', 'none (default), allowlist, or learn (allow and record all)')
    .option('--profile <name>', 'defaults and policy from a published profile')
    .option('-v, --volume <name:/path[:rw]>', 'mount a managed (unlocked) volume whenever it runs; read-only unless :rw (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--snapshot <sandbox@name>', 'restore: start from a snapshot\'s files (and its image)')
    .option('--persist <path>', 'only this directory survives stop and recycle (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--json', 'print the sandbox as JSON')
    .action(async (flags: CreateFlags & { nonPersistent?: boolean }) => {
      const client = await connect();
      if (!flags.snapshot && !flags.profile) {
        const bar = progressBar(`building image ${flags.image ?? 'python'}`, !flags.json);
        await client.images.ensure(flags.image ?? 'python', bar.onProgress);
        bar.done();
      }
      const req: CreateSandboxRequest = {
        ...(flags.name ? { name: flags.name } : {}),
        ...(flags.image && !flags.snapshot ? { image: flags.image } : {}),
        ...(flags.snapshot ? { snapshot: flags.snapshot } : {}),
        ...(flags.persist ? { persist: flags.persist } : {}),
        ...(flags.allowHost ? { allowHosts: flags.allowHost } : {}),
        ...(flags.profile ? { profile: flags.profile } : {}),
        ...(flags.volume ? { volumes: flags.volume.map(parseVolumeFlag) } : {}),
        ...(flags.network ? { network: flags.network } : {}),
        ...(flags.ttl ? { ttlMs: flags.ttl } : {}),
        ...(flags.memoryMib ? { memoryMiB: flags.memoryMib } : {}),
        ...(flags.cpus ? { cpus: flags.cpus } : {}),
        ...(flags.pids ? { pids: flags.pids } : {}),
        ...(flags.label ? { labels: flags.label } : {}),
        ...(flags.env ? { env: flags.env } : {}),
        ...(flags.cwd ? { cwd: flags.cwd } : {}),
        ...(flags.nonPersistent ? { persistent: false } : {}),
      };
      const sandbox = await client.sandboxes.create(req);
      if (flags.json) printJson(sandbox.data);
      else {
        process.stdout.write(`${sandbox.name}\n`);
        for (const note of sandbox.data.adjusted) process.stderr.write(`nook: ${note}\n`);
      }
    });

  program
    .command('ls')
    .alias('list')
    .description('list sandboxes')
    .option('--label <k=v>', 'only sandboxes with this label (repeatable)', keyValue)
    .option('--state <state>', 'only sandboxes in this state (running, paused, ...)')
    .option('--json', 'print JSON')
    .action(async (flags: { label?: Record<string, string>; state?: 'running'; json?: boolean }) => {
      const client = await connect();
      const list = await client.sandboxes.list({ ...(flags.label ? { labels: flags.label } : {}), ...(flags.state ? { state: flags.state } : {}) });
      if (flags.json) printJson({ sandboxes: list.map((s) => s.data) });
      else process.stdout.write(sandboxRows(list.map((s) => s.data)));
    });

  program
    .command('inspect <sandbox>')
    .description('show everything about one sandbox')
    .option('--json', 'print JSON (the default for inspect)')
    .action(async (ref: string) => {
      const client = await connect();
      printJson((await client.sandboxes.get(ref)).data);
    });

  /** stop and resume share one shape: act on each named sandbox, report each. */
  const each = <T>(name: string, description: string, act: (s: Sandbox) => Promise<T>, say: (r: T) => string): void => {
    program.command(`${name} <sandbox...>`).description(description).option('--json', 'print JSON').action(async (refs: string[], flags: { json?: boolean }) => {
      const client = await connect();
      const out: T[] = [];
      for (const ref of refs) {
        const r = await act(await client.sandboxes.get(ref));
        out.push(r);
        if (!flags.json) process.stdout.write(`${say(r)}\n`);
      }
      if (flags.json) printJson(out.length === 1 ? out[0] : out);
    });
  };

  each(
    'stop',
    'stop compute; files are kept (non-persistent sandboxes are destroyed)',
    async (s) => (await s.stop()).data,
    (d) => `${d.name} ${d.state === 'paused' ? 'paused' : 'destroyed'}`,
  );
  each('resume', 'start compute again on the kept files', async (s) => (await s.resume()).data, (d) => `${d.name} ${d.state}`);
  program
    .command('destroy <sandbox...>')
    .alias('rm')
    .description('destroy sandboxes and their files; their snapshots are kept unless --with-snapshots')
    .option('--with-snapshots', 'delete their snapshots too')
    .option('--json', 'print JSON')
    .action(async (refs: string[], flags: { withSnapshots?: boolean; json?: boolean }) => {
      const client = await connect();
      const out = [];
      for (const ref of refs) {
        const r = await (await client.sandboxes.get(ref)).destroy({ withSnapshots: flags.withSnapshots ?? false });
        out.push(r);
        if (flags.json) continue;
        const kept = r.snapshotsKept.length ? ` (${r.snapshotsKept.length} snapshot(s) kept: ${r.snapshotsKept.join(', ')}; delete them with --with-snapshots or nook snapshot rm)` : '';
        const deleted = r.snapshotsDeleted.length ? ` with ${r.snapshotsDeleted.length} snapshot(s)` : '';
        process.stdout.write(`${r.name} destroyed${deleted}${kept}\n`);
      }
      if (flags.json) printJson(out.length === 1 ? out[0] : out);
    });
}
