import { resolve } from 'node:path';
import type { Command } from 'commander';
import { NookError } from '../../api/errors.js';
import { PRESETS } from '../../api/constants.js';
import { connect } from '../connect.js';
import { readStdin } from '../stdin.js';
import { progressBar } from '../progress.js';
import { age, mib, printJson, table } from '../render.js';

export function registerTemplateCommands(program: Command): void {
  program
    .command('template')
    .description('named templates (nook create --template NAME)')
    .command('ls')
    .description('list templates')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const client = await connect();
      const templates = await client.templates.list();
      if (flags.json) printJson({ templates });
      else process.stdout.write(table(['NAME', 'IMAGE', 'MEMORY', 'PIDS', 'DESCRIPTION'], templates.map((t) => [t.name, t.image, `${t.memoryMiB} MiB`, String(t.pids), t.description])));
    });
}

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('manage images');

  image
    .command('build')
    .description(`build an image from a preset (${PRESETS.join(', ')})`)
    .requiredOption('--preset <preset>', `one of ${PRESETS.join(', ')}`)
    .option('--name <name>', 'image name (default: the preset name)')
    .option('--rebuild', 'replace an existing image of that name')
    .option('--json', 'print the image as JSON')
    .action(async (flags: { preset: string; name?: string; rebuild?: boolean; json?: boolean }) => {
      // The schema (zod) is loaded only here: other commands start without it.
      const { Preset } = await import('../../api/schemas.js');
      const preset = Preset.parse(flags.preset);
      const client = await connect();
      const bar = progressBar(`building ${flags.name ?? preset}`, !flags.json);
      const img = await client.images.build({ preset, ...(flags.name ? { name: flags.name } : {}), ...(flags.rebuild ? { rebuild: true } : {}), onProgress: bar.onProgress });
      bar.done();
      if (flags.json) printJson(img);
      else process.stdout.write(`${img.name} ${img.id} ${mib(img.sizeBytes)}\n`);
    });

  image
    .command('pull <reference>')
    .description('pull an image from an OCI registry (HOST[:PORT]/REPO[:TAG|@sha256:...])')
    .option('--name <name>', 'local name (default: the last part of the repository and the tag, e.g. python:3.12)')
    .option('--username <user>', 'registry user name (the password comes from --password-stdin)')
    .option('--password-stdin', 'read the registry password from standard input')
    .option('--replace', 'replace a local image of that name whose contents differ')
    .option('--json', 'print the image as JSON')
    .action(async (reference: string, flags: { name?: string; username?: string; passwordStdin?: boolean; replace?: boolean; json?: boolean }) => {
      let auth: { username: string; password: string } | undefined;
      if (flags.username) {
        const password = flags.passwordStdin ? (await readStdin(4096, 'a password is at most 4096 bytes')).toString('utf8').replace(/\r?\n$/, '') : '';
        auth = { username: flags.username, password };
      } else if (flags.passwordStdin) {
        throw new NookError('INVALID_ARGUMENT', '--password-stdin needs --username');
      }
      const client = await connect();
      const bar = progressBar(`pulling ${reference}`, !flags.json);
      const img = await client.images.pull(reference, { ...(flags.name ? { name: flags.name } : {}), ...(auth ? { auth } : {}), ...(flags.replace ? { replace: true } : {}), onProgress: bar.onProgress });
      bar.done();
      if (flags.json) printJson(img);
      else process.stdout.write(`${img.name} ${img.digest ?? img.id} ${mib(img.sizeBytes)}\n`);
    });

  image
    .command('inspect <image>')
    .description('one image: digest, size, layers, config, and which sandboxes use it')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: { json?: boolean }) => {
      const client = await connect();
      const img = await client.images.get(name);
      if (flags.json) {
        printJson(img);
        return;
      }
      const c = img.config;
      const lines = [
        `name:       ${img.name}`,
        `id:         ${img.id}`,
        `source:     ${img.source}`,
        `digest:     ${img.digest ?? '-'}`,
        `size:       ${mib(img.sizeBytes)}`,
        `created:    ${img.createdAt}`,
        `layers:     ${img.layers.length}`,
        ...img.layers.map((l) => `  ${l.digest} ${mib(l.sizeBytes)}`),
        `workdir:    ${c.cwd ?? '-'}`,
        `user:       ${c.user ?? '-'}`,
        `entrypoint: ${c.entrypoint.length ? JSON.stringify(c.entrypoint) : '-'}`,
        `cmd:        ${c.cmd.length ? JSON.stringify(c.cmd) : '-'}`,
        'env:',
        ...Object.entries(c.env).map(([k, v]) => `  ${k}=${v}`),
        `used by:    ${img.usedBy.join(', ') || '-'}`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });

  image
    .command('ls')
    .description('list images')
    .option('--all', 'include the build step cache')
    .option('--json', 'print JSON')
    .action(async (flags: { all?: boolean; json?: boolean }) => {
      const client = await connect();
      const images = await client.images.list({ all: flags.all ?? false });
      if (flags.json) printJson({ images });
      else
        process.stdout.write(
          table(
            ['NAME', 'ID', 'SOURCE', 'SIZE', 'CREATED', 'USED BY'],
            images.map((i) => [i.name, i.id, i.source, mib(i.sizeBytes), `${age(i.createdAt)} ago`, i.usedBy.join(',') || '-']),
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
    .description('a new image from an OCI image layout tar or a docker save archive')
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
