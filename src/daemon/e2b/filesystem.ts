/**
 * envd's filesystem.Filesystem service over core's file manager (every path resolved inside
 * the sandbox by nook-init) and, for the changes E2B makes as the calling user (mkdir, move,
 * remove), over core's exec, so ownership and permissions come out as E2B's would. WatchDir
 * polls the directory (nook has no inotify channel out of a sandbox) and reports the changes.
 */
import { posix } from 'node:path';
import type { Context } from 'hono';
import type { FileInfo } from '../../api/schemas.js';
import type { Nook } from '../../core/nook.js';
import { ConnectError, MAX_MESSAGE_BYTES, parseEnvelopedRequest, parseUnary, readBounded, str, timeoutOf, uint, unaryError, unaryResponse } from './connect.js';
import { identity, userOf, type E2bSandbox } from './sandboxes.js';
import { keepaliveMs, ServerStream } from './stream.js';

/** Entries one ListDir (or one watch poll) returns at most. */
const MAX_ENTRIES = 10_000;
const MAX_DEPTH = 16;
const WATCH_POLL_MS = 300;

const TYPES: Record<FileInfo['type'], string> = { file: 'FILE_TYPE_FILE', dir: 'FILE_TYPE_DIRECTORY', symlink: 'FILE_TYPE_SYMLINK', other: 'FILE_TYPE_UNSPECIFIED' };
const OWNERS: Record<number, string> = { 0: 'root', 1000: 'user' };

function permissions(mode: number, type: FileInfo['type']): string {
  const bits = 'rwxrwxrwx'.split('').map((ch, i) => (mode & (1 << (8 - i)) ? ch : '-')).join('');
  return `${type === 'dir' ? 'd' : type === 'symlink' ? 'L' : '-'}${bits}`;
}

export function entryInfo(f: FileInfo, path: string): object {
  return {
    name: f.name || posix.basename(path),
    type: TYPES[f.type],
    path,
    size: String(f.size),
    mode: f.mode & 0o7777,
    permissions: permissions(f.mode, f.type),
    owner: OWNERS[f.uid] ?? String(f.uid),
    group: OWNERS[f.gid] ?? String(f.gid),
    modifiedTime: new Date(f.mtimeMs).toISOString(),
    ...(f.target !== undefined ? { symlinkTarget: f.target } : {}),
  };
}

export class FilesystemService {
  constructor(private readonly nook: Nook) {}

  /** E2B paths may be relative to the user's home. */
  static resolve(path: string, home: string): string {
    if (!path) throw new ConnectError('invalid_argument', 'path is required');
    if (path.includes('\0') || path.length > 4096) throw new ConnectError('invalid_argument', 'path must be at most 4096 bytes, without NUL');
    const abs = posix.normalize(path.startsWith('/') ? path : posix.join(home, path.replace(/^~(\/|$)/, '')));
    return abs.length > 1 ? abs.replace(/\/$/, '') : abs;
  }

  /** Runs a command as the caller (mkdir, mv, rm); a non-zero exit is the error, by its stderr. */
  private async asUser(sb: E2bSandbox, user: string | undefined, argv: string[]): Promise<void> {
    const r = await this.nook.commands.exec(sb.record.id, { argv, timeoutMs: 60_000, ...(user ? { user } : {}), env: { LC_ALL: 'C' } });
    if (r.exitCode === 0) return;
    const msg = r.stderr.trim() || `${argv[0]} exited ${r.exitCode}`;
    if (/No such file/.test(msg)) throw new ConnectError('not_found', msg);
    if (/Permission denied/.test(msg)) throw new ConnectError('permission_denied', msg);
    throw new ConnectError('internal', msg);
  }

  private async stat(sb: E2bSandbox, path: string): Promise<FileInfo> {
    return this.nook.files.stat(sb.record.id, path);
  }

  private async exists(sb: E2bSandbox, path: string): Promise<boolean> {
    return this.stat(sb, path).then(
      () => true,
      (e: { code?: string }) => {
        if (e.code === 'FILE_NOT_FOUND') return false;
        throw e;
      },
    );
  }

  private async listDir(sb: E2bSandbox, root: string, depth: number): Promise<object[]> {
    const out: object[] = [];
    let level = [root];
    for (let d = 1; d <= depth && level.length > 0; d++) {
      const next: string[] = [];
      for (const dir of level) {
        for (const f of await this.nook.files.list(sb.record.id, dir)) {
          const path = posix.join(dir, f.name);
          out.push(entryInfo(f, path));
          if (out.length > MAX_ENTRIES) throw new ConnectError('resource_exhausted', `more than ${MAX_ENTRIES} entries: list a smaller tree or a lower depth`);
          if (f.type === 'dir') next.push(path);
        }
      }
      level = next;
    }
    return out;
  }

  async handle(c: Context, sb: E2bSandbox, method: string): Promise<Response> {
    const who = identity(sb, userOf(c.req.header('authorization')));
    if (method === 'WatchDir') {
      try {
        const msg = parseEnvelopedRequest(await readBounded(c.req.raw.body, MAX_MESSAGE_BYTES + 5));
        return await this.watch(c, sb, FilesystemService.resolve(str(msg, 'path'), who.home), msg.recursive === true);
      } catch (e) {
        return unaryError(e);
      }
    }
    try {
      const msg = parseUnary(await readBounded(c.req.raw.body, MAX_MESSAGE_BYTES));
      switch (method) {
        case 'Stat': {
          const path = FilesystemService.resolve(str(msg, 'path'), who.home);
          return unaryResponse({ entry: entryInfo(await this.stat(sb, path), path) });
        }
        case 'ListDir': {
          const path = FilesystemService.resolve(str(msg, 'path'), who.home);
          const depth = uint(msg, 'depth') || 1;
          if (depth > MAX_DEPTH) throw new ConnectError('invalid_argument', `depth is at most ${MAX_DEPTH}`);
          const info = await this.stat(sb, path);
          if (info.type !== 'dir') throw new ConnectError('invalid_argument', `${path} is not a directory`);
          return unaryResponse({ entries: await this.listDir(sb, path, depth) });
        }
        case 'MakeDir': {
          const path = FilesystemService.resolve(str(msg, 'path'), who.home);
          if (await this.exists(sb, path)) throw new ConnectError('already_exists', `${path} already exists`);
          await this.asUser(sb, who.user, ['mkdir', '-p', '--', path]);
          return unaryResponse({ entry: entryInfo(await this.stat(sb, path), path) });
        }
        case 'Move': {
          const from = FilesystemService.resolve(str(msg, 'source'), who.home);
          const to = FilesystemService.resolve(str(msg, 'destination'), who.home);
          await this.stat(sb, from);
          await this.asUser(sb, who.user, ['mv', '-T', '--', from, to]);
          return unaryResponse({ entry: entryInfo(await this.stat(sb, to), to) });
        }
        case 'Remove': {
          const path = FilesystemService.resolve(str(msg, 'path'), who.home);
          if (path === '/') throw new ConnectError('invalid_argument', 'refusing to remove /');
          await this.stat(sb, path);
          await this.asUser(sb, who.user, ['rm', '-rf', '--', path]);
          return unaryResponse({});
        }
        default:
          throw new ConnectError('unimplemented', `filesystem.Filesystem/${method.slice(0, 64)} is not supported by nook (use WatchDir)`);
      }
    } catch (e) {
      return unaryError(e);
    }
  }

  /** Polls the directory and sends create, write and remove events until the client leaves or the deadline. */
  private async watch(c: Context, sb: E2bSandbox, path: string, recursive: boolean): Promise<Response> {
    const info = await this.stat(sb, path);
    if (info.type !== 'dir') throw new ConnectError('invalid_argument', `${path} is not a directory`);
    const snapshot = async (): Promise<Map<string, string>> => {
      const entries = (await this.listDir(sb, path, recursive ? MAX_DEPTH : 1)) as { path: string; size: string; modifiedTime: string }[];
      return new Map(entries.map((e) => [e.path, `${e.size}:${e.modifiedTime}`]));
    };
    let before = await snapshot();
    const stream = new ServerStream(c.req.raw.signal, { keepalive: {} }, keepaliveMs(c.req.header('keepalive-ping-interval')));
    stream.send({ start: {} });
    const deadlineMs = timeoutOf(c.req.header('connect-timeout-ms'));
    const until = deadlineMs ? Date.now() + deadlineMs : Infinity;
    const event = (p: string, type: string): object => ({ filesystem: { name: posix.relative(path, p), type } });
    void (async () => {
      while (stream.open) {
        await new Promise((r) => setTimeout(r, WATCH_POLL_MS));
        if (!stream.open) return;
        if (Date.now() >= until) return stream.end(new ConnectError('deadline_exceeded', `the watch reached its ${deadlineMs} ms deadline`));
        let now: Map<string, string>;
        try {
          now = await snapshot();
        } catch (e) {
          const err = e instanceof ConnectError ? e : new ConnectError(this.nook.sandboxes.find(sb.record.id)?.state === 'running' ? 'not_found' : 'unavailable', (e as Error).message);
          return stream.end(err);
        }
        for (const [p, sig] of now) {
          if (!before.has(p)) stream.send(event(p, 'EVENT_TYPE_CREATE'));
          else if (before.get(p) !== sig) stream.send(event(p, 'EVENT_TYPE_WRITE'));
        }
        for (const p of before.keys()) if (!now.has(p)) stream.send(event(p, 'EVENT_TYPE_REMOVE'));
        before = now;
      }
    })();
    return stream.response;
  }
}
