/**
 * Listing a layer's tar members, the input of every check made before a layer is applied
 * (device nodes, escaping paths, whiteouts). bsdtar does the parsing, the same libarchive
 * that extracts the layer afterwards (so the checks see the names extraction will use),
 * from a finished file or from the bytes of a download as they arrive: a pull's listing
 * (a whole decompression) is done by the time the layer's digest is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { NookError } from '../api/errors.js';
import { run } from '../util/proc.js';

export interface Member {
  /** ls-style type letter: d, -, l, h, c, b, p... */
  type: string;
  /** Path without a leading ./ or /. */
  path: string;
}

/** A verified layer file and what it holds, ready to apply. */
export interface ListedLayer {
  file: string;
  members: Member[];
}

/** -P: names as the archive has them (extraction uses -P inside a chroot), never rewritten. */
const LIST_ARGV = ['bsdtar', '-P', '-tv', '--numeric-owner', '-f'];
/** Names in UTF-8 as they are; in the C locale bsdtar refuses them. */
const LIST_ENV = { ...process.env, LC_ALL: 'C.UTF-8' };

const unreadable = (stderr: string): NookError =>
  new NookError('INVALID_ARGUMENT', `a layer is not a readable tar archive: ${stderr.trim().split('\n')[0] ?? ''}`);

/** Undoes bsdtar's escaping of names (backslash, C escapes, octal bytes). */
function unescapeName(name: string): string {
  const C: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11 };
  if (!name.includes('\\')) return name;
  const bytes: number[] = [];
  const raw = Buffer.from(name, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] ?? 0;
    const next = String.fromCharCode(raw[i + 1] ?? 0);
    if (c !== 0x5c) bytes.push(c);
    else if (next === '\\') (bytes.push(0x5c), i++);
    else if (C[next] !== undefined) (bytes.push(C[next] ?? 0), i++);
    else if (/^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) (bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8)), (i += 3));
    else bytes.push(c);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Parses `bsdtar -tv --numeric-owner` output (C.UTF-8 locale). */
export function parseListing(stdout: string): Member[] {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      // "drwxr-xr-x  0 0      0           0 Nov 30 08:03 a/b/": mode, links, uid, gid, size (or
      // major,minor), three date fields, one space, the name. Links add " -> target" / " link to target".
      const m = /^(\S)\S*\s+\d+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+ (.*)$/.exec(line);
      const type = m?.[1] ?? '?';
      let name = m?.[2] ?? '';
      const cut = type === 'l' ? name.indexOf(' -> ') : type === 'h' ? name.indexOf(' link to ') : -1;
      if (cut >= 0) name = name.slice(0, cut);
      return { type, path: unescapeName(name).replace(/^(\.\/)+/, '').replace(/^\/+/, '') };
    });
}

/** Members of a layer file already on disk. */
export async function listLayerFile(blob: string): Promise<Member[]> {
  const r = await run([...LIST_ARGV, blob], { allowFail: true, env: LIST_ENV });
  if (r.code !== 0) throw unreadable(r.stderr);
  return parseListing(r.stdout);
}

/**
 * Lists a layer from its bytes as a download delivers them, in order (bsdtar sniffs the
 * compression, as extraction does). Feeding waits for tar to keep up (bounded memory);
 * once tar has stopped (end of archive, or an error) further bytes are dropped, and the
 * verdict comes from `finish()`, which callers ask only after the digest matched.
 */
export class StreamLister {
  private child: ChildProcess | null = null;
  private closed = false;
  private stdout = '';
  private stderr = '';
  private exit: Promise<number> | null = null;

  async write(chunk: Buffer): Promise<void> {
    if (!this.child) this.start();
    await this.feed(chunk);
  }

  /** The members, once every byte was written; throws when tar could not read the layer. */
  async finish(): Promise<Member[]> {
    if (!this.child) this.start();
    this.child?.stdin?.end();
    const code = await this.exit;
    if (code !== 0) throw unreadable(this.stderr);
    return parseListing(this.stdout);
  }

  /** Stops tar (the download failed or the pull was given up). */
  abort(): void {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
    this.closed = true;
  }

  private start(): void {
    const [cmd = 'bsdtar', ...args] = LIST_ARGV;
    const child = spawn(cmd, [...args, '-'], { stdio: ['pipe', 'pipe', 'pipe'], env: LIST_ENV });
    this.child = child;
    child.stdout?.on('data', (b: Buffer) => (this.stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (this.stderr += b.toString()));
    // tar stops reading at the end of the archive; writes after that are not an error of ours.
    child.stdin?.on('error', () => undefined);
    child.stdin?.on('close', () => (this.closed = true));
    this.exit = new Promise((resolve) => {
      child.on('error', (e) => {
        this.stderr += e.message;
        resolve(1);
      });
      child.on('close', (code) => resolve(code ?? 1));
    });
  }

  private async feed(chunk: Buffer): Promise<void> {
    const stdin = this.child?.stdin;
    if (!stdin || this.closed || chunk.length === 0) return;
    if (stdin.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        stdin.off('drain', done);
        stdin.off('close', done);
        resolve();
      };
      stdin.on('drain', done);
      stdin.on('close', done);
    });
  }
}
