import type { Command } from 'commander';
import type { Snapshot } from '../../api/schemas.js';
import { connect } from '../connect.js';
import { positiveInt } from '../parse.js';
import { age, mib, printJson, table } from '../render.js';


function snapshotRows(list: Snapshot[]): string {
  return table(
    ['SANDBOX', 'NAME', 'ID', 'SIZE', 'CREATED', 'TOOK'],
    list.map((s) => [`${s.sandbox}${s.sandboxExists ? '' : ' (destroyed)'}`, s.name, s.id, mib(s.sizeBytes), `${age(s.createdAt)} ago`, `${s.durationMs.toFixed(1)}ms`]),
  );
}

export function registerSnapshotCommands(program: Command): void {
  const snapshot = program.command('snapshot').description('named, read-only checkpoints of a sandbox\'s files');

  snapshot
    .command('create <sandbox>')
    .description('take a snapshot (a running sandbox is frozen for the instant it takes)')
    .requiredOption('--name <name>', 'snapshot name, unique for the sandbox (spaces allowed)')
    .option('--memory', 'also save process memory (gVisor sandboxes): a restore continues the processes from this instant')
    .option('--json', 'print JSON')
    .action(async (ref: string, flags: { name: string; memory?: boolean; json?: boolean }) => {
      const client = await connect();
      const s = await (await client.sandboxes.get(ref)).snapshots.create({ name: flags.name, ...(flags.memory ? { memory: true } : {}) });
      if (flags.json) printJson(s);
      else process.stdout.write(`${s.sandbox}@${s.name} ${s.id} (${s.durationMs.toFixed(1)} ms)\n`);
    });

  snapshot
    .command('ls [sandbox]')
    .description("list snapshots (of one sandbox, also a destroyed one, or all)")
    .option('--json', 'print JSON')
    .action(async (ref: string | undefined, flags: { json?: boolean }) => {
      const client = await connect();
      const list = await client.snapshots.list(ref);
      if (flags.json) printJson({ snapshots: list });
      else process.stdout.write(snapshotRows(list));
    });

  snapshot
    .command('rm <sandbox> <name>')
    .description('delete a snapshot')
    .option('--json', 'print JSON')
    .action(async (ref: string, name: string, flags: { json?: boolean }) => {
      const client = await connect();
      const s = await client.snapshots.delete(ref, name);
      if (flags.json) printJson(s);
      else process.stdout.write(`${s.sandbox}@${s.name} deleted\n`);
    });

  program
    .command('fork <sandbox>')
    .description('new running sandboxes from this one\'s current files; it goes on running')
    .option('--name <name>', 'name of the fork (with --count: the prefix, -1, -2... appended)')
    .option('--count <n>', 'how many forks, all from one snapshot', positiveInt)
    .option('--no-memory', 'gVisor: start the forks\' processes afresh instead of continuing the source\'s')
    .option('--json', 'print JSON')
    .action(async (ref: string, flags: { name?: string; count?: number; memory?: boolean; json?: boolean }) => {
      const client = await connect();
      const forks = await (await client.sandboxes.get(ref)).fork({ ...(flags.name ? { name: flags.name } : {}), ...(flags.count ? { count: flags.count } : {}), ...(flags.memory === false ? { memory: false } : {}) });
      if (flags.json) printJson({ sandboxes: forks.map((f) => f.data) });
      else for (const f of forks) process.stdout.write(`${f.name}\n`);
    });

  program
    .command('commit <sandbox>')
    .description('a new image from a sandbox\'s files (running or paused)')
    .requiredOption('--image <name>', 'name of the new image')
    .option('--json', 'print JSON')
    .action(async (ref: string, flags: { image: string; json?: boolean }) => {
      const client = await connect();
      const img = await (await client.sandboxes.get(ref)).commit({ image: flags.image });
      if (flags.json) printJson(img);
      else process.stdout.write(`${img.name} ${img.id}\n`);
    });

  program
    .command('recycle <sandbox>')
    .description('new compute from the image plus the persisted paths (sandboxes created with --persist)')
    .option('--json', 'print JSON')
    .action(async (ref: string, flags: { json?: boolean }) => {
      const client = await connect();
      const s = await (await client.sandboxes.get(ref)).recycle();
      if (flags.json) printJson(s.data);
      else process.stdout.write(`${s.name} recycled, ${s.state}\n`);
    });
}
