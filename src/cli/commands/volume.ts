import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Volume } from '../../api/schemas.js';
import { connect } from '../connect.js';
import { positiveInt } from '../parse.js';
import { printJson, table } from '../render.js';

function rows(list: Volume[]): string {
  return table(
    ['NAME', 'STATE', 'SIZE', 'MOUNTED IN'],
    list.map((v) => [v.name, v.state, `${v.sizeMiB} MiB`, v.mountedIn ? `${v.mountedIn.sandbox}:${v.mountedIn.path} (${v.mountedIn.rw ? 'rw' : 'ro'})` : '-']),
  );
}

export function registerVolumeCommands(program: Command): void {
  const volume = program.command('volume').description('managed volumes: ext4, encrypted at rest (fscrypt), locked by default, single-attach');
  const say = (v: Volume, json: boolean | undefined, text: string): void => {
    if (json) printJson(v);
    else process.stdout.write(`${text}\n`);
  };

  volume
    .command('create <name>')
    .description('create a volume (locked)')
    .requiredOption('--size-mib <MiB>', 'size (sparse: space is used as data is written)', positiveInt)
    .option('--json', 'print JSON')
    .action(async (name: string, f: { sizeMib: number; json?: boolean }) => {
      const v = await (await connect()).volumes.create(name, { sizeMiB: f.sizeMib });
      say(v, f.json, `${v.name} created, locked`);
    });
  volume
    .command('ls [sandbox]')
    .description('all volumes, or the ones mounted in a sandbox')
    .option('--json', 'print JSON')
    .action(async (ref: string | undefined, f: { json?: boolean }) => {
      const client = await connect();
      const list = ref ? await (await client.sandboxes.get(ref)).volumes.list() : await client.volumes.list();
      if (f.json) printJson({ volumes: list });
      else process.stdout.write(rows(list));
    });
  volume
    .command('inspect <name>')
    .option('--json', 'print JSON (the default)')
    .action(async (name: string) => printJson(await (await connect()).volumes.get(name)));
  volume
    .command('unlock <name>')
    .description('put the key into the kernel: plaintext becomes reachable (treat it as sensitive)')
    .option('--json', 'print JSON')
    .action(async (name: string, f: { json?: boolean }) => say(await (await connect()).volumes.unlock(name), f.json, `${name} unlocked`));
  volume
    .command('lock <name>')
    .description('remove the key and unmount: only ciphertext remains')
    .option('--force', 'unmount it from its sandbox first, killing processes that still use it')
    .option('--json', 'print JSON')
    .action(async (name: string, f: { force?: boolean; json?: boolean }) => say(await (await connect()).volumes.lock(name, { force: f.force ?? false }), f.json, `${name} locked`));
  volume
    .command('mount <sandbox>')
    .description('mount an unlocked volume into a running sandbox (read-only unless --rw)')
    .requiredOption('--volume <name>', 'the volume')
    .requiredOption('--guest <path>', 'where, inside the sandbox')
    .option('--rw', 'writable')
    .option('--host <dir>', 'host-backed: bind this host directory (refused unless it is on encrypted storage)')
    .option('--json', 'print JSON')
    .action(async (ref: string, f: { volume: string; guest: string; rw?: boolean; host?: string; json?: boolean }) => {
      const v = await (await (await connect()).sandboxes.get(ref)).volumes.mount(f.volume, f.guest, { rw: f.rw ?? false, ...(f.host ? { host: resolve(f.host) } : {}) });
      say(v, f.json, `${f.volume} mounted at ${ref}:${f.guest} (${f.rw ? 'rw' : 'ro'})`);
    });
  volume
    .command('unmount <sandbox> <guest>')
    .description('unmount the volume at a guest path (refused while processes in the sandbox still use it)')
    .option('--force', 'kill the processes that still use it, then unmount')
    .option('--json', 'print JSON')
    .action(async (ref: string, guest: string, f: { force?: boolean; json?: boolean }) => {
      const v = await (await (await connect()).sandboxes.get(ref)).volumes.unmount(guest, { force: f.force ?? false });
      say(v, f.json, `${v.name} unmounted from ${ref}:${guest}`);
    });
  volume
    .command('rm <name>')
    .description('lock and delete a volume')
    .option('--json', 'print JSON')
    .action(async (name: string, f: { json?: boolean }) => say(await (await connect()).volumes.remove(name), f.json, `${name} removed`));
}
