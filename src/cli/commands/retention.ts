import type { Command } from 'commander';
import { NookError } from '../../api/errors.js';
import { HOST_SETTINGS } from '../../api/constants.js';
import type { HostConfig, RetainedItem, RuntimeName, Usage } from '../../api/schemas.js';
import { formatDurationMs } from '../../util/duration.js';
import { connect } from '../connect.js';
import { durationMs, positiveInt, positiveNumber, runtimeName } from '../parse.js';
import { mib, printJson, table } from '../render.js';


function retainedRows(items: RetainedItem[]): string {
  return table(['KIND', 'NAME', 'ID', 'SIZE', 'AGE', 'DETAIL'], items.map((i) => [i.kind, i.name, i.id, mib(i.sizeBytes), formatDurationMs(i.ageSeconds * 1000), i.detail]));
}

export function registerRetentionCommands(program: Command): void {
  program
    .command('done <sandbox>')
    .description('the end-of-job checklist: stop compute, remove exposures, lock volumes, list what remains and the receipts to keep')
    .option('--json', 'print JSON')
    .action(async (ref: string, flags: { json?: boolean }) => {
      const client = await connect();
      const r = await (await client.sandboxes.get(ref)).done();
      if (flags.json) printJson(r);
      else {
        const lines = [
          `${r.sandbox}: compute ${r.stopped ? 'stopped' : 'was not running'}`,
          `exposed ports removed: ${r.unexposed.length ? r.unexposed.join(', ') : 'none'}`,
          `managed volumes left unlocked: ${r.unlockedVolumes.length ? r.unlockedVolumes.join(', ') : 'none'}`,
          `snapshots to review (delete those with no recovery purpose): ${r.snapshots.length ? r.snapshots.map((s) => s.name).join(', ') : 'none'}`,
          `state that remains:`,
          retainedRows(r.remaining).trimEnd(),
          `receipts to store with the job (${r.receipts.length}):`,
          ...r.receipts,
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (!r.clean) process.exitCode = 1;
    });

  program
    .command('retained')
    .description('all state that still exists after compute stops: sandboxes, snapshots, images, logs')
    .option('--sandbox <name>', 'only this sandbox')
    .option('--json', 'print JSON')
    .action(async (flags: { sandbox?: string; json?: boolean }) => {
      const client = await connect();
      const items = await client.retained(flags.sandbox ? { sandbox: flags.sandbox } : {});
      if (flags.json) printJson({ items });
      else process.stdout.write(retainedRows(items));
    });

  program
    .command('gc')
    .description('delete state older than an age, by kind (paused sandboxes, snapshots, unused images, cached registry blobs)')
    .requiredOption('--older-than <age>', 'e.g. 7d, 12h', durationMs)
    .option('--kind <kind>', 'sandbox, snapshot, image, logs or blobs (repeatable; default all; volumes and the audit log are never collected)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--dry-run', 'only list what would be deleted')
    .option('--json', 'print JSON')
    .action(async (flags: { olderThan: number; kind?: string[]; dryRun?: boolean; json?: boolean }) => {
      const client = await connect();
      const r = await client.gc({ olderThanMs: flags.olderThan, ...(flags.kind ? { kinds: flags.kind as Parameters<typeof client.gc>[0]['kinds'] } : {}), dryRun: flags.dryRun ?? false });
      if (flags.json) printJson(r);
      else process.stdout.write(`${r.dryRun ? 'would delete' : 'deleted'} ${r.deleted.length}:\n${retainedRows(r.deleted)}`);
    });

  program
    .command('usage <sandbox>')
    .description('compute seconds and stored bytes (files, snapshots, logs)')
    .option('--json', 'print JSON')
    .action(async (ref: string, flags: { json?: boolean }) => {
      const client = await connect();
      const u = await (await client.sandboxes.get(ref)).usage();
      if (flags.json) printJson(u);
      else {
        const disk = u.disk.limitMiB === null ? 'no limit' : `${u.disk.usedBytes === null ? '?' : mib(u.disk.usedBytes)} of ${u.disk.limitMiB} MiB`;
        process.stdout.write(`${u.sandbox}: compute ${u.computeSeconds}s, files ${mib(u.storedBytes.files)}, snapshots ${mib(u.storedBytes.snapshots)}, logs ${mib(u.storedBytes.logs)}, disk ${disk}${live(u.live)}\n`);
      }
    });

  const profile = program.command('profile').description('named, versioned sandbox defaults (create --profile NAME uses the newest published version)');
  profile
    .command('create <name>')
    .description('create or replace the draft of a profile')
    .option('--persistent', 'sandboxes persist (default)')
    .option('--non-persistent', 'sandboxes are discarded on stop')
    .option('--allow-rw-dirs', 'allow writable host directories (also needs the host setting rwHostDirs.allowed)')
    .option('--network <mode>', 'none, allowlist or learn')
    .option('--allow-host <pattern>', 'egress allow-list entry (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--memory-mib <MiB>', 'memory limit', positiveInt)
    .option('--disk-mib <MiB>', 'disk limit (btrfs storage)', positiveInt)
    .option('--cpus <n>', 'CPU limit', positiveNumber)
    .option('--ttl <duration>', 'TTL', durationMs)
    .option('--image <image>', 'image')
    .option('--runtime <runtime>', 'crun or gvisor', runtimeName)
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        f: { persistent?: boolean; nonPersistent?: boolean; allowRwDirs?: boolean; network?: 'none'; allowHost?: string[]; memoryMib?: number; diskMib?: number; cpus?: number; ttl?: number; image?: string; runtime?: RuntimeName; json?: boolean },
      ) => {
        const client = await connect();
        const p = await client.profiles.save(name, {
          ...(f.persistent ? { persistent: true } : {}),
          ...(f.nonPersistent ? { persistent: false } : {}),
          ...(f.allowRwDirs ? { allowRwDirs: true } : {}),
          ...(f.network ? { network: f.network } : {}),
          ...(f.allowHost ? { allowHosts: f.allowHost } : {}),
          ...(f.memoryMib ? { memoryMiB: f.memoryMib } : {}),
          ...(f.diskMib ? { diskMiB: f.diskMib } : {}),
          ...(f.cpus ? { cpus: f.cpus } : {}),
          ...(f.ttl ? { ttlMs: f.ttl } : {}),
          ...(f.image ? { image: f.image } : {}),
          ...(f.runtime ? { runtime: f.runtime } : {}),
        });
        if (f.json) printJson(p);
        else process.stdout.write(`${p.name}: draft saved (publish it: nook profile publish ${p.name})\n`);
      },
    );
  profile
    .command('publish <name>')
    .description('publish the draft as the next version')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: { json?: boolean }) => {
      const client = await connect();
      const p = await client.profiles.publish(name);
      if (flags.json) printJson(p);
      else process.stdout.write(`${p.name}@${p.published.at(-1)?.version ?? '?'} published\n`);
    });
  profile
    .command('ls')
    .description('list profiles')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const client = await connect();
      const list = await client.profiles.list();
      if (flags.json) printJson({ profiles: list });
      else process.stdout.write(table(['NAME', 'PUBLISHED', 'DRAFT'], list.map((p) => [p.name, p.published.length ? `v${p.published.at(-1)?.version}` : '-', p.draft ? 'yes' : 'no'])));
    });

  const config = program
    .command('config')
    .description(`host settings that no profile or request can loosen (${HOST_SETTINGS.join(', ')}), and warm pool sizes (pool.IMAGE)`);
  /** Every key with its value: the settings, then the pools. */
  const entries = (c: HostConfig): [string, string][] => [
    ...Object.entries(c.settings).map(([k, v]): [string, string] => [k, String(v)]),
    ...Object.entries(c.pools ?? {}).map(([k, v]): [string, string] => [`pool.${k}`, String(v)]),
  ];
  const show = (c: HostConfig, flags: { json?: boolean }, only?: string): void => {
    if (flags.json) return printJson(c);
    const list = entries(c).filter(([k]) => only === undefined || k === only);
    // A pool never set is 0, not unknown.
    if (only !== undefined && list.length === 0 && only.startsWith('pool.')) list.push([only, '0']);
    if (only !== undefined && list.length === 0) throw new NookError('INVALID_ARGUMENT', `unknown setting ${only}`, { hint: `settings: ${HOST_SETTINGS.join(', ')}, pool.IMAGE` });
    process.stdout.write(list.map(([k, v]) => `${k} ${v}`).join('\n') + '\n');
  };
  config
    .command('get [key]')
    .description('one setting, or all of them')
    .option('--json', 'print JSON')
    .action(async (key: string | undefined, flags: { json?: boolean }) => show(await (await connect()).config(), flags, key));
  config
    .command('ls')
    .description('every setting and pool size')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => show(await (await connect()).config(), flags));
  config
    .command('set <key> <value>')
    .description('true/false for a setting; a size from 0 to 32 for pool.IMAGE (0 drains it)')
    .option('--json', 'print JSON')
    .action(async (key: string, value: string, flags: { json?: boolean }) => {
      const pool = key.startsWith('pool.');
      if (!pool && value !== 'true' && value !== 'false') throw new NookError('INVALID_ARGUMENT', `${key} takes true or false, not ${value}`);
      if (pool && !/^\d{1,6}$/.test(value)) throw new NookError('INVALID_ARGUMENT', `${key} takes a whole number from 0 to 32, not ${value}`, { hint: `e.g. nook config set ${key} 4` });
      const client = await connect();
      const c = await client.setConfig(key, pool ? Number(value) : value === 'true');
      show(c, flags, key);
    });
}

/** `, now: 12.3 MiB memory, 0.4 s CPU, 3 processes` for a running sandbox. */
function live(l: Usage['live']): string {
  if (!l) return '';
  const parts = [
    l.memoryBytes === null ? null : `${(l.memoryBytes / 1048576).toFixed(1)} MiB memory`,
    l.cpuSeconds === null ? null : `${l.cpuSeconds.toFixed(1)} s CPU`,
    l.pids === null ? null : `${l.pids} processes`,
  ].filter((p): p is string => p !== null);
  return parts.length > 0 ? `, now: ${parts.join(', ')}` : '';
}
