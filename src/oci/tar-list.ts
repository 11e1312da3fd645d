/**
 * Listing a layer's tar members, the input of every check made before a layer is applied
 * (device nodes, escaping paths, whiteouts). bsdtar does the parsing, the same libarchive
 * that extracts the layer afterwards (so the checks see the names extraction will use;
 * GNU tar listed them before, a second parser an archive could play against the first),
 * from a finished file or from the bytes of a download as they arrive: a pull's listing
 * (a whole decompression) is done by the time the layer's digest is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { NookError } from '../api/errors.js';
import { createReadStream } from 'node:fs';

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
const NOBODY = 65534;
/** Bytes a listing may have queued before the download waits for it. */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/**
 * Bounds of one listing, so a few KiB of gzip cannot cost the daemon GiBs (a pax path can be
 * ~1 MiB, and empty members compress to almost nothing). A longer line can hold no name the
 * kernel would create (PATH_MAX 4096 for the name and a link's target, escaped up to 4 bytes a byte); real layers hold far
 * fewer members (a large node_modules layer: ~300,000). The sizes members declare are summed
 * as each header is listed, before its data is read: a 32 MiB zstd stream of RLE blocks holds
 * a 1 TiB file of zeros, which extraction would write until the pool is full.
 */
export const LISTING_LIMITS = { maxLineBytes: 40_000, maxMembers: 1_000_000, maxBytes: 256 * 1024 * 1024, maxContentBytes: 64 * 1024 ** 3 };
/** The size field of a listing line (a device's "major,minor" is not one). */
const SIZE_FIELD = /^\S+\s+\d+\s+\S+\s+\S+\s+(\d+)\s/;
/** Names in UTF-8 as they are; in the C locale bsdtar refuses them. */
const LIST_ENV = { ...process.env, LC_ALL: 'C.UTF-8' };

const unreadable = (stderr: string): NookError =>
  new NookError('INVALID_ARGUMENT', `a layer is not a readable tar archive: ${stderr.trim().split('\n')[0] ?? ''}`);

const noBsdtar = (): NookError => new NookError('NOT_SUPPORTED', 'reading image layers needs bsdtar on the host', { hint: 'apt-get install libarchive-tools' });

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

/**
 * Parses `bsdtar -tv --numeric-owner` output, one line per member (names have their
 * newlines escaped): "drwxr-xr-x  0 0  0  0 Nov 30 08:03 a/b/" is mode, links, uid, gid,
 * size (or major,minor), three date fields, one space, the name. Links add " -> target" or
 * " link to target": a link whose name or target holds that separator again cannot be split
 * back into the two, so it is refused rather than guessed (its name could hide a `..`).
 */
export function parseListing(stdout: string): Member[] {
  const lines = stdout.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map(parseLine);
}

function parseLine(line: string): Member {
  const m = /^(\S)\S*\s+\d+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+ (.*)$/.exec(line);
  if (!m) throw unreadable(`unexpected listing line ${JSON.stringify(line.slice(0, 80))}`);
  const type = m[1] ?? '?';
  let name = m[2] ?? '';
  const sep = type === 'l' ? ' -> ' : type === 'h' ? ' link to ' : null;
  if (sep) {
    const parts = name.split(sep);
    if (parts.length !== 2) {
      throw new NookError('INVALID_ARGUMENT', `a layer holds a link whose name or target contains "${sep.trim()}" (${name.slice(0, 80)}): refused`, {
        hint: 'rename the link in the image; nook cannot tell its name from its target',
      });
    }
    name = parts[0] ?? '';
  }
  return { type, path: unescapeName(name).replace(/^(\.\/)+/, '').replace(/^\/+/, '') };
}

const tooBig = (what: string): NookError =>
  new NookError('INVALID_ARGUMENT', `a layer's listing is too large (${what}): refused`, {
    hint: `a layer may hold at most ${LISTING_LIMITS.maxMembers} members and ${LISTING_LIMITS.maxContentBytes / 1024 ** 3} GiB, names of at most 4096 bytes, ${LISTING_LIMITS.maxBytes / 1024 ** 2} MiB of listing; split the image's files over more layers`,
  });

/** Members of a layer file already on disk. */
export async function listLayerFile(blob: string): Promise<Member[]> {
  // Through the same bounded streaming listing as a download (a cached blob is as untrusted).
  const l = new StreamLister();
  try {
    for await (const chunk of createReadStream(blob) as AsyncIterable<Buffer>) await l.write(chunk);
    return await l.finish();
  } finally {
    l.abort();
  }
}

/** One bsdtar listing fed through its stdin. */
class Lister {
  private readonly child: ChildProcess;
  private closed = false;
  /** bsdtar is not installed. */
  missing = false;
  readonly members: Member[] = [];
  /** Set when the listing passed a bound (bsdtar is killed then). */
  failure: NookError | null = null;
  private partial = '';
  private listedBytes = 0;
  private contentBytes = 0;
  stderr = '';
  readonly exit: Promise<number>;

  constructor(argv: string[]) {
    const [cmd = 'bsdtar', ...args] = argv;
    // These bytes are not verified yet (the digest is known only at their end): parse them
    // as nobody, not as the daemon's root. The listing only reads stdin and writes stdout.
    const asNobody = process.getuid?.() === 0 ? { uid: NOBODY, gid: NOBODY } : {};
    const child = spawn(cmd, [...args, '-'], { stdio: ['pipe', 'pipe', 'pipe'], env: LIST_ENV, cwd: '/', ...asNobody });
    this.child = child;
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (text: string) => this.take(text));
    child.stderr?.on('data', (b: Buffer) => {
      if (this.stderr.length < 64 * 1024) this.stderr += b.toString();
    });
    // bsdtar stops reading at the end of the archive; writes after that are not an error of ours.
    child.stdin?.on('error', () => undefined);
    child.stdin?.on('close', () => (this.closed = true));
    this.exit = new Promise((resolve) => {
      child.on('error', (e: NodeJS.ErrnoException) => {
        this.missing = e.code === 'ENOENT';
        this.stderr += e.message;
        resolve(1);
      });
      child.on('close', (code) => resolve(code ?? 1));
    });
  }

  /** Parses whole lines as they come (never the listing whole in memory); stops at a bound. */
  private take(text: string): void {
    if (this.failure) return;
    this.listedBytes += text.length;
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    try {
      if (this.partial.length > LISTING_LIMITS.maxLineBytes) throw tooBig('a name longer than 4096 bytes');
      if (this.listedBytes > LISTING_LIMITS.maxBytes) throw tooBig(`more than ${LISTING_LIMITS.maxBytes / 1024 ** 2} MiB`);
      for (const line of lines) {
        if (line.length > LISTING_LIMITS.maxLineBytes) throw tooBig('a name longer than 4096 bytes');
        this.members.push(parseLine(line));
        this.contentBytes += Number(SIZE_FIELD.exec(line)?.[1] ?? 0);
      }
      if (this.members.length > LISTING_LIMITS.maxMembers) throw tooBig(`more than ${LISTING_LIMITS.maxMembers} members`);
      // bsdtar writes (and flushes) a member's line before skipping its data, the newline after:
      // a member too large is refused on its header, not once its bytes were decompressed.
      if (this.contentBytes + Number(SIZE_FIELD.exec(this.partial)?.[1] ?? 0) > LISTING_LIMITS.maxContentBytes) {
        throw tooBig(`members of more than ${LISTING_LIMITS.maxContentBytes / 1024 ** 3} GiB`);
      }
    } catch (e) {
      this.failure = e as NookError;
      this.members.length = 0;
      this.kill();
    }
  }

  /** What is left after bsdtar ended: a last line without its newline. */
  flush(): void {
    if (this.partial !== '') this.take('\n');
  }

  async feed(chunk: Buffer): Promise<void> {
    const stdin = this.child.stdin;
    if (!stdin || this.closed || chunk.length === 0) return;
    stdin.write(chunk);
    // Waiting for every drain (a socket's mark is 16 KiB) stalls the download on each chunk;
    // a few MiB queued keeps it flowing while still bounding memory.
    if (stdin.writableLength <= MAX_QUEUED_BYTES) return;
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
 * compression, as extraction does). Feeding waits for the listing to keep up (bounded
 * memory); once it has stopped (end of archive, or an error) further bytes are dropped,
 * and the verdict comes from `finish()`, which callers ask only after the digest matched.
 * Nothing runs until the first byte.
 */
export class StreamLister {
  private lister: Lister | null = null;

  async write(chunk: Buffer): Promise<void> {
    const l = this.start();
    await l.feed(chunk);
    // Past a bound: the download stops here too (the rest would only be dropped).
    if (l.failure) throw l.failure;
  }

  /** The members, once every byte was written; throws when bsdtar could not read the layer. */
  async finish(): Promise<Member[]> {
    const l = this.start();
    l.end();
    const code = await l.exit;
    if (l.failure) throw l.failure;
    if (code !== 0) throw l.missing ? noBsdtar() : unreadable(l.stderr);
    l.flush();
    if (l.failure) throw l.failure;
    return l.members;
  }

  /** Stops the listing (the download failed or the pull was given up). */
  abort(): void {
    this.lister?.kill();
  }

  private start(): Lister {
    this.lister ??= new Lister(LIST_ARGV);
    return this.lister;
  }
}
