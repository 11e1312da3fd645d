import { promises as fsp } from 'node:fs';
import type { Command } from 'commander';
import { NookError } from '../../api/errors.js';
import type { FileInfo } from '../../api/schemas.js';
import { connect } from '../connect.js';
import { positiveInt } from '../parse.js';
import { printJson, table } from '../render.js';

const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_DIR_BYTES = 1024 ** 3;

/** `sandbox:/path` -> [sandbox, /path]; a host path -> null. */
function sandboxSide(spec: string): [string, string] | null {
  const m = /^([a-z0-9][a-z0-9-]{0,62}|sb_[a-z2-7]+):(\/.*)$/.exec(spec);
  return m ? [m[1] ?? '', m[2] ?? ''] : null;
}

function fileRows(list: FileInfo[]): string {
  return table(
    ['MODE', 'UID', 'GID', 'SIZE', 'NAME'],
    list.map((f) => [`${f.type[0] ?? '?'}${f.mode.toString(8).padStart(4, '0')}`, String(f.uid), String(f.gid), String(f.size), f.target ? `${f.name} -> ${f.target}` : f.name]),
  );
}

export function registerFileCommands(program: Command): void {
  program
    .command('cp <src> <dst>')
    .description(
      'copy a file or directory into (host -> SANDBOX:/path) or out of (SANDBOX:/path -> host) a sandbox; a directory copies its contents; what comes out is bounded and untrusted',
    )
    .option('--max-bytes <n>', `refuse more than this out (default ${DEFAULT_MAX_BYTES} for a file, ${DEFAULT_MAX_DIR_BYTES} for a directory)`, positiveInt)
    .option('--json', 'print JSON')
    .action(async (src: string, dst: string, flags: { maxBytes?: number; json?: boolean }) => {
      const from = sandboxSide(src);
      const to = sandboxSide(dst);
      if (!!from === !!to) throw new NookError('INVALID_ARGUMENT', 'exactly one side of cp is a sandbox path', { hint: 'nook cp ./task.json agent:/work/task.json, or nook cp agent:/work/out.json ./out.json' });
      const client = await connect();
      if (to) {
        const st = await fsp.stat(src);
        if (st.isDirectory()) {
          const { fastCopyDirIn } = await import('../fast-copy-dir.js');
          const files = client.sandboxes.files(to[0]);
          const r = (await fastCopyDirIn(client, files, src, to[1])) ?? (await (await client.sandboxes.get(to[0])).files.uploadDir(src, to[1]));
          if (flags.json) printJson(r);
          else process.stdout.write(`${src}/ -> ${dst} (${r.bytes} bytes as tar)\n`);
          return;
        }
        if (!st.isFile()) throw new NookError('INVALID_ARGUMENT', `${src} is neither a regular file nor a directory`);
        const { fastCopyIn } = await import('../fast-copy.js');
        const files = client.sandboxes.files(to[0]);
        const info = (await fastCopyIn(client, files, src, to[1], st.mode)) ?? (await files.uploadFile(src, to[1], { mode: st.mode & 0o777 }));
        if (flags.json) printJson(info);
        else process.stdout.write(`${src} -> ${dst} (${info.size} bytes)\n`);
      } else if (from) {
        // By name, no fetch first: one round trip fewer (a missing sandbox fails the same).
        const files = client.sandboxes.files(from[0]);
        const info = await files.stat(from[1]);
        if (info.type === 'dir') {
          const maxBytes = flags.maxBytes ?? DEFAULT_MAX_DIR_BYTES;
          const { fastCopyDirOut } = await import('../fast-copy-dir.js');
          const r = (await fastCopyDirOut(client, files, from[1], dst, maxBytes)) ?? (await files.download(from[1], dst, { maxBytes }));
          if (flags.json) printJson(r);
          else process.stdout.write(`${src} -> ${r.path} (${r.entries} entries, ${r.bytes} bytes${r.skipped.length ? `; skipped ${r.skipped.length}: ${r.skipped.slice(0, 3).join(', ')}` : ''})\n`);
          return;
        }
        if (info.type !== 'file') throw new NookError('INVALID_ARGUMENT', `${src} is a ${info.type}, not a regular file`);
        const maxBytes = flags.maxBytes ?? DEFAULT_MAX_BYTES;
        if (info.size > maxBytes) throw new NookError('PAYLOAD_TOO_LARGE', `${from[1]} is ${info.size} bytes, more than the limit of ${maxBytes}`, { hint: 'raise --max-bytes, or copy a smaller file' });
        const { fastCopyOut } = await import('../fast-copy.js');
        const saved = (await fastCopyOut(client, files, from[1], dst, info.mode, maxBytes)) ?? (await files.downloadFile(from[1], dst, { maxBytes }));
        if (flags.json) printJson(saved);
        else process.stdout.write(`${src} -> ${saved.path} (${saved.bytes} bytes)\n`);
      }
    });

  const fs = program.command('fs').description('single files inside a sandbox: ls, stat, cat, write, mkdir, rm');
  const one = (verb: string, description: string, act: (sb: string, path: string, f: { json?: boolean; recursive?: boolean; maxBytes?: number }) => Promise<void>): Command =>
    fs
      .command(`${verb} <sandbox> <path>`)
      .description(description)
      .option('--json', 'print JSON')
      .action((sb: string, path: string, f: { json?: boolean }) => act(sb, path, f));
  one('ls', 'list a directory', async (ref, path, f) => {
    const list = await (await (await connect()).sandboxes.get(ref)).files.list(path);
    if (f.json) printJson({ files: list });
    else process.stdout.write(fileRows(list));
  });
  one('stat', 'type, mode, owner, size of a path (symlinks are not followed)', async (ref, path) => {
    printJson(await (await (await connect()).sandboxes.get(ref)).files.stat(path));
  });
  one('cat', 'print a file (bounded by --max-bytes)', async (ref, path, f) => {
    process.stdout.write(await (await (await connect()).sandboxes.get(ref)).files.read(path, { maxBytes: f.maxBytes ?? DEFAULT_MAX_BYTES }));
  }).option('--max-bytes <n>', 'refuse a larger file', positiveInt);
  one('write', 'write standard input to a file', async (ref, path, f) => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
    const info = await (await (await connect()).sandboxes.get(ref)).files.write(path, Buffer.concat(chunks));
    if (f.json) printJson(info);
    else process.stdout.write(`${path} (${info.size} bytes)\n`);
  });
  one('mkdir', 'make a directory', async (ref, path, f) => {
    const info = await (await (await connect()).sandboxes.get(ref)).files.mkdir(path);
    if (f.json) printJson(info);
  });
  one('rm', 'remove a file (or a directory tree with -r)', async (ref, path, f) => {
    await (await (await connect()).sandboxes.get(ref)).files.remove(path, { recursive: f.recursive ?? false });
    if (f.json) printJson({ path, removed: true });
  }).option('-r, --recursive', 'remove a directory and everything in it');
}
