import { resolve } from 'node:path';
import type { Command } from 'commander';
import { NookError } from '../../api/errors.js';
import { PRESETS } from '../../api/constants.js';
import type { CreateSandboxRequest, PullPolicy, RuntimeName, Sandbox as SandboxInfo } from '../../api/schemas.js';
import type { Sandbox } from '../../sdk/client.js';
import { connect } from '../connect.js';
import { durationMs, imageWork, keyValue, positiveInt, positiveNumber, pullPolicy, runtimeName } from '../parse.js';
import { progressBar } from '../progress.js';
import { printJson, sandboxRows } from '../render.js';

interface CreateFlags {
  name?: string;
  image?: string;
  template?: string;
  pull?: PullPolicy;
  ttl?: number;
  memoryMib?: number;
  diskMib?: number;
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
  addDir?: string[];
  network?: 'none' | 'allowlist' | 'learn';
  runtime?: RuntimeName;
  json?: boolean;
}

type Attach = { kind: 'disk' | 'bundle' | 'dir'; source: string; guest: string; rw: boolean };

/**
 * `-v SOURCE:/guest[:ro|:rw]`: a bare name is a managed volume, a path ending in
 * .ext4/.img a raw disk, in .tar/.tar.gz/.tgz a bundle. Host directories need --add-dir.
 */
function parseVolumeFlag(v: string): { volume?: { volume: string; guest: string; rw: boolean }; attach?: Attach } {
  const m = /^(.+?):(\/[^:]*)(?::(ro|rw))?$/.exec(v);
  if (!m) throw new NookError('INVALID_ARGUMENT', `-v ${v}: expected SOURCE:/PATH[:ro|:rw]`, { hint: 'e.g. -v data:/data:rw, -v ./disk.ext4:/disk, -v ./ctx.tar:/ctx:ro' });
  const [, source = '', guest = '', mode] = m;
  const rw = mode === 'rw';
  if (/^[a-z0-9][a-z0-9-]{0,62}$/.test(source)) return { volume: { volume: source, guest, rw } };
  if (/\.(ext4|img)$/.test(source)) return { attach: { kind: 'disk', source: resolve(source), guest, rw } };
  if (/\.(tar|tar\.gz|tgz)$/.test(source)) return { attach: { kind: 'bundle', source: resolve(source), guest, rw: false } };
  throw new NookError('INVALID_ARGUMENT', `-v ${v}: ${source} is neither a volume name, a .ext4/.img disk nor a .tar/.tgz bundle`, {
    hint: 'host directories go through --add-dir HOST:GUEST[:ro] (package one as a tar for a sealed copy)',
  });
}

function parseAddDir(v: string): Attach {
  const m = /^(.+?):(\/[^:]*)(?::(ro|rw))?$/.exec(v);
  if (!m) throw new NookError('INVALID_ARGUMENT', `--add-dir ${v}: expected HOST_DIR:/GUEST[:ro|:rw]`);
  return { kind: 'dir', source: resolve(m[1] ?? ''), guest: m[2] ?? '', rw: m[3] === 'rw' };
}

function volumeFlags(vs: string[], dirs: string[]): Pick<CreateSandboxRequest, 'volumes' | 'attach'> {
  const parsed = vs.map(parseVolumeFlag);
  const volumes = parsed.flatMap((p) => (p.volume ? [p.volume] : []));
  const attach = [...parsed.flatMap((p) => (p.attach ? [p.attach] : [])), ...dirs.map(parseAddDir)];
  return { ...(volumes.length ? { volumes } : {}), ...(attach.length ? { attach } : {}) };
}

export function registerSandboxCommands(program: Command): void {
  program
    .command('create')
    .description('create a sandbox and start it (persistent unless --non-persistent)')
    .option('--name <name>', 'unique name (default: generated)')
    .option('--image <image>', 'image to start from (default: python): a local name, or a registry reference (HOST[:PORT]/REPO[:TAG]) pulled as --pull says')
    .option('--pull <policy>', 'missing (default): pull a registry image unless pulled before; always; never', pullPolicy)
    .option('--template <name>', `a named template: ${PRESETS.join(', ')} (image and defaults; see nook template ls)`)
    .option('--ttl <duration>', 'stop (persistent) or destroy (non-persistent) after this long, e.g. 1h', durationMs)
    .option('--memory-mib <MiB>', 'memory limit', positiveInt)
    .option('--disk-mib <MiB>', 'disk limit: what the sandbox may write, all its files together (btrfs storage; default 10 GiB, at most half the pool)', positiveInt)
    .option('--cpus <n>', 'CPU limit, e.g. 0.5', positiveNumber)
    .option('--pids <n>', 'process limit', positiveInt)
    .option('--label <k=v>', 'label (repeatable)', keyValue)
    .option('--env <K=V>', 'environment variable for every exec (repeatable)', keyValue)
    .option('--cwd <dir>', 'working directory for execs', undefined)
    .option('--non-persistent', 'discard the sandbox when it stops')
    .option('--allow-host <pattern>', 'egress through the proxy to this host (repeatable): host, *.suffix, IP, CIDR, optional :port', (v: string, prev: string[] = []) => [...prev, v])
    .option('--network <mode>', 'none (default), allowlist, or learn (allow and record all)')
    .option('--profile <name>', 'defaults and policy from a published profile')
    .option('-v, --volume <src:/path[:rw]>', 'mount at every start: a managed volume (name), a raw disk (.ext4/.img) or a tar bundle (.tar/.tgz, read-only); read-only unless :rw (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--add-dir <host:/path[:ro|:rw]>', 'bind a host directory, read-only (rw needs a profile with --allow-rw-dirs and the host setting) (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--runtime <runtime>', 'crun (default: namespaces, fastest) or gvisor (a user-space kernel: stronger isolation, process memory kept by stop/snapshot --memory)', runtimeName)
    .option('--snapshot <sandbox@name>', 'restore: start from a snapshot\'s files (and its image)')
    .option('--persist <path>', 'only this directory survives stop and recycle (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--json', 'print the sandbox as JSON')
    .action(async (flags: CreateFlags & { nonPersistent?: boolean }) => {
      const client = await connect();
      if (!flags.snapshot && !flags.profile) {
        const image = flags.image ?? flags.template ?? 'python';
        const bar = progressBar(imageWork(image), !flags.json);
        await client.images.ensure(image, bar.onProgress, flags.pull);
        bar.done();
      }
      // Made ready just now: the create itself never asks the registry again.
      const pull = flags.pull === 'always' ? 'missing' : flags.pull;
      const req: CreateSandboxRequest = {
        ...(flags.name ? { name: flags.name } : {}),
        ...(flags.image && !flags.snapshot ? { image: flags.image } : {}),
        ...(pull && !flags.snapshot ? { pull } : {}),
        // The schema (zod) is loaded only when a template is asked for.
        ...(flags.template ? { template: (await import('../../api/schemas.js')).TemplateName.parse(flags.template) } : {}),
        ...(flags.snapshot ? { snapshot: flags.snapshot } : {}),
        ...(flags.persist ? { persist: flags.persist } : {}),
        ...(flags.allowHost ? { allowHosts: flags.allowHost } : {}),
        ...(flags.profile ? { profile: flags.profile } : {}),
        ...volumeFlags(flags.volume ?? [], flags.addDir ?? []),
        ...(flags.network ? { network: flags.network } : {}),
        ...(flags.ttl ? { ttlMs: flags.ttl } : {}),
        ...(flags.memoryMib ? { memoryMiB: flags.memoryMib } : {}),
        ...(flags.diskMib ? { diskMiB: flags.diskMib } : {}),
        ...(flags.cpus ? { cpus: flags.cpus } : {}),
        ...(flags.pids ? { pids: flags.pids } : {}),
        ...(flags.label ? { labels: flags.label } : {}),
        ...(flags.env ? { env: flags.env } : {}),
        ...(flags.cwd ? { cwd: flags.cwd } : {}),
        ...(flags.nonPersistent ? { persistent: false } : {}),
        ...(flags.runtime ? { runtime: flags.runtime } : {}),
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

  program
    .command('stop <sandbox...>')
    .description('stop compute; files are kept (non-persistent sandboxes are destroyed)')
    .option('--memory', 'cold stop: keep process memory too (gVisor sandboxes); resume continues the processes')
    .option('--json', 'print JSON')
    .action(async (refs: string[], flags: { memory?: boolean; json?: boolean }) => {
      const client = await connect();
      const out: SandboxInfo[] = [];
      for (const ref of refs) {
        const d = (await (await client.sandboxes.get(ref)).stop(flags.memory ? { memory: true } : {})).data;
        out.push(d);
        if (!flags.json) process.stdout.write(`${d.name} ${d.state === 'paused' ? (d.memory ? `paused with ${d.memory.sizeBytes} bytes of process memory` : 'paused') : 'destroyed'}\n`);
      }
      if (flags.json) printJson(out.length === 1 ? out[0] : out);
    });
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
