import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Preset } from '../../api/schemas.js';
import { connect } from '../connect.js';
import { progressBar } from '../progress.js';
import { age, mib, printJson, table } from '../render.js';


export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('manage images');

  image
    .command('build')
    .description(`build an image from a preset (${Preset.options.join(', ')})`)
    .requiredOption('--preset <preset>', `one of ${Preset.options.join(', ')}`)
    .option('--name <name>', 'image name (default: the preset name)')
    .option('--rebuild', 'replace an existing image of that name')
    .option('--json', 'print the image as JSON')
    .action(async (flags: { preset: string; name?: string; rebuild?: boolean; json?: boolean }) => {
      const preset = Preset.parse(flags.preset);
      const client = await connect();
      const bar = progressBar(`building ${flags.name ?? preset}`, !flags.json);
      const img = await client.images.build({ preset, ...(flags.name ? { name: flags.name } : {}), ...(flags.rebuild ? { rebuild: true } : {}), onProgress: bar.onProgress });
      bar.done();
      if (flags.json) printJson(img);
      else process.stdout.write(`${img.name} ${img.id} ${mib(img.sizeBytes)}\n`);
    });

  image
    .command('ls')
    .description('list images')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const client = await connect();
      const images = await client.images.list();
      if (flags.json) printJson({ images });
      else
        process.stdout.write(
          table(
            ['NAME', 'ID', 'PRESET', 'SIZE', 'CREATED', 'USED BY'],
            images.map((i) => [i.name, i.id, i.preset ?? '-', mib(i.sizeBytes), `${age(i.createdAt)} ago`, i.usedBy.join(',') || '-']),
          ),
        );
    });

  image
    .command('export <image>')
    .description('write an image as an OCI image layout tar')
    .requiredOption('-o, --output <file>', 'where to write the tar')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: { output: string; json?: boolean }) => {
      const client = await connect();
      const r = await client.images.export(name, resolve(flags.output));
      if (flags.json) printJson(r);
      else process.stdout.write(`${r.file} ${mib(r.sizeBytes)}\n`);
    });

  image
    .command('import <file>')
    .description('a new image from an OCI image layout tar')
    .requiredOption('--name <name>', 'name of the new image')
    .option('--json', 'print JSON')
    .action(async (file: string, flags: { name: string; json?: boolean }) => {
      const client = await connect();
      const img = await client.images.import(resolve(file), { name: flags.name });
      if (flags.json) printJson(img);
      else process.stdout.write(`${img.name} ${img.id} ${mib(img.sizeBytes)}\n`);
    });

  image
    .command('rm <image...>')
    .description('remove images (refused while a sandbox or snapshot uses one)')
    .option('--json', 'print JSON')
    .action(async (names: string[], flags: { json?: boolean }) => {
      const client = await connect();
      const removed = [];
      for (const name of names) {
        const img = await client.images.remove(name);
        removed.push(img);
        if (!flags.json) process.stdout.write(`${img.name} removed\n`);
      }
      if (flags.json) printJson(removed.length === 1 ? removed[0] : removed);
    });
}
