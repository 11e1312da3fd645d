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

/**
 * Two listings of the same bytes: `-tv` for each member's type (the mode column), `-t` for
 * its exact name. `-tv` alone cannot be split back into name and link target when a name
 * holds " -> ". -P: names as the archive has them (extraction uses -P inside a chroot).
 */
const TYPES_ARGV = ['bsdtar', '-P', '-tv', '--numeric-owner', '-f'];
const NAMES_ARGV = ['bsdtar', '-P', '-t', '-f'];
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
    const octal = raw.subarray(i + 1, i + 4).toString('latin1');
    if (c !== 0x5c) bytes.push(c);
    else if (next === '\\') (bytes.push(0x5c), i++);
    else if (C[next] !== undefined) (bytes.push(C[next] ?? 0), i++);
    else if (/^[0-7]{3}$/.test(octal)) (bytes.push(parseInt(octal, 8)), (i += 3));
    else bytes.push(c);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** One line per member (names have their newlines escaped); the last newline ends the list. */
const lines = (out: string): string[] => {
  const all = out.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
};

/** Pairs `bsdtar -tv` output (types) with `bsdtar -t` output (names), member by member. */
export function parseListing(verbose: string, names: string): Member[] {
  const types = lines(verbose);
  const paths = lines(names);
  if (types.length !== paths.length) throw unreadable(`the two listings disagree (${types.length} and ${paths.length} members)`);
  return paths.map((name, i) => ({
    type: types[i]?.[0] ?? '?',
    path: unescapeName(name).replace(/^(\.\/)+/, '').replace(/^\/+/, ''),
  }));
}

/** Members of a layer file already on disk. */
export async function listLayerFile(blob: string): Promise<Member[]> {
  const [types, names] = await Promise.all([run([...TYPES_ARGV, blob], { allowFail: true, env: LIST_ENV }), run([...NAMES_ARGV, blob], { allowFail: true, env: LIST_ENV })]);
  if (types.code !== 0) throw unreadable(types.stderr);
  if (names.code !== 0) throw unreadable(names.stderr);
  return parseListing(types.stdout, names.stdout);
}

/** One bsdtar listing fed through its stdin. */
class Lister {
  private readonly child: ChildProcess;
  private closed = false;
  stdout = '';
  stderr = '';
  readonly exit: Promise<number>;

  constructor(argv: string[]) {
    const [cmd = 'bsdtar', ...args] = argv;
    const child = spawn(cmd, [...args, '-'], { stdio: ['pipe', 'pipe', 'pipe'], env: LIST_ENV });
    this.child = child;
    child.stdout?.on('data', (b: Buffer) => (this.stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (this.stderr += b.toString()));
    // bsdtar stops reading at the end of the archive; writes after that are not an error of ours.
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

  async feed(chunk: Buffer): Promise<void> {
    const stdin = this.child.stdin;
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

  end(): void {
    this.child.stdin?.end();
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    this.closed = true;
  }
}

/**
 * Lists a layer from its bytes as a download delivers them, in order (bsdtar sniffs the
 * compression, as extraction does). Feeding waits for the listings to keep up (bounded
 * memory); once one has stopped (end of archive, or an error) further bytes are dropped
 * for it, and the verdict comes from `finish()`, which callers ask only after the digest
 * matched. Nothing runs until the first byte.
 */
export class StreamLister {
  private pair: [Lister, Lister] | null = null;

  async write(chunk: Buffer): Promise<void> {
    const [types, names] = this.start();
    await Promise.all([types.feed(chunk), names.feed(chunk)]);
  }

  /** The members, once every byte was written; throws when bsdtar could not read the layer. */
  async finish(): Promise<Member[]> {
    const [types, names] = this.start();
    types.end();
    names.end();
    const [a, b] = await Promise.all([types.exit, names.exit]);
    if (a !== 0) throw unreadable(types.stderr);
    if (b !== 0) throw unreadable(names.stderr);
    return parseListing(types.stdout, names.stdout);
  }

  /** Stops both listings (the download failed or the pull was given up). */
  abort(): void {
    for (const l of this.pair ?? []) l.kill();
  }

  private start(): [Lister, Lister] {
    this.pair ??= [new Lister(TYPES_ARGV), new Lister(NAMES_ARGV)];
    return this.pair;
  }
}
