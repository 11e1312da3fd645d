/**
 * Who still reaches a volume: processes with their cwd, root, an open file or a mapping on
 * its filesystem, or a mount namespace of their own that holds a copy of its mount. A
 * loop-backed ext4 has a device of its own, so "on the volume" is "on that device".
 * Everything is read from /proc without opening what a sandbox owns (stat and readlink
 * on the magic links only).
 */
import { promises as fsp } from 'node:fs';

/** A device as the kernel prints it in mountinfo: "major:minor" (decimal). */
export type DevId = string;

/** A process that keeps a mount busy, as users see it in VOLUME_BUSY. */
export interface Holder {
  /** The pid on the host, for the operator (core never acts on it). */
  pid: number;
  /** The pid as the sandbox sees it (innermost pid namespace). */
  nsPid: number;
  command: string;
  /** What ties it to the volume: "cwd", "root", "fd 3 /cache/log", "mmap /cache/lib.so", "mount namespace". */
  uses: string[];
}

const MAX_USES = 8;

/** glibc's dev_t encoding, as Node's stat hands it back. */
function devOf(dev: bigint): DevId {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

async function statDev(path: string): Promise<DevId | null> {
  try {
    return devOf((await fsp.stat(path, { bigint: true })).dev);
  } catch {
    return null; // the process or descriptor went away meanwhile
  }
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface MountEntry {
  dev: DevId;
  point: string;
}

/** The mounts a process sees, as paths under its own root. */
export async function mountsOf(pid: number | 'self'): Promise<MountEntry[]> {
  const text = await fsp.readFile(`/proc/${pid}/mountinfo`, 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length > 4)
    .map((f) => ({ dev: f[2] ?? '', point: unescape(f[4] ?? '') }));
}

/** Every host pid (for holders outside any sandbox). */
export async function allPids(): Promise<number[]> {
  return (await fsp.readdir('/proc')).filter((e) => /^\d+$/.test(e)).map(Number);
}

async function describe(pid: number): Promise<{ command: string; nsPid: number }> {
  const cmdline = await fsp.readFile(`/proc/${pid}/cmdline`).catch(() => Buffer.alloc(0));
  let command = cmdline.toString('utf8').split('\0').filter(Boolean).join(' ');
  if (!command) command = `[${(await fsp.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim()}]`;
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const nsPid = Number(/^NSpid:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).pop() ?? pid);
  return { command: command.slice(0, 200), nsPid: Number.isFinite(nsPid) ? nsPid : pid };
}

/** What of one process is on `dev`. */
async function usesOf(pid: number, dev: DevId, mntNs: string | null): Promise<string[]> {
  const uses: string[] = [];
  const base = `/proc/${pid}`;
  if ((await statDev(`${base}/cwd`)) === dev) uses.push('cwd');
  if ((await statDev(`${base}/root`)) === dev) uses.push('root');
  const fds = await fsp.readdir(`${base}/fd`).catch(() => [] as string[]);
  for (const fd of fds) {
    if ((await statDev(`${base}/fd/${fd}`)) !== dev) continue;
    uses.push(`fd ${fd} ${await fsp.readlink(`${base}/fd/${fd}`).catch(() => '?')}`);
  }
  // maps prints the device in hex ("fd:01"); a mapped file keeps the filesystem busy too.
  const maps = await fsp.readFile(`${base}/maps`, 'utf8').catch(() => '');
  const [major, minor] = dev.split(':').map(Number);
  const hexDev = `${(major ?? 0).toString(16).padStart(2, '0')}:${(minor ?? 0).toString(16).padStart(2, '0')}`;
  const mapped = new Set<string>();
  for (const line of maps.split('\n')) {
    const f = line.split(/\s+/);
    if (f[3] === hexDev && f[4] !== '0') mapped.add(f.slice(5).join(' '));
  }
  for (const p of mapped) uses.push(`mmap ${p}`);
  // A mount namespace of its own (unshare -m) keeps a copy of the mount alive after ours goes.
  if (mntNs !== null) {
    const own = await fsp.readlink(`${base}/ns/mnt`).catch(() => mntNs);
    if (own !== mntNs && (await mountsOf(pid).catch(() => [])).some((m) => m.dev === dev)) uses.push('mount namespace');
  }
  return uses;
}

/**
 * Processes among `pids` that reach `dev`. `mntNs` is the sandbox's own mount namespace
 * (readlink of /proc/<init>/ns/mnt): processes in another one are checked for a mount copy.
 */
export async function findHolders(pids: number[], dev: DevId, mntNs: string | null): Promise<Holder[]> {
  const out: Holder[] = [];
  for (const pid of pids) {
    if (pid === process.pid) continue;
    const uses = await usesOf(pid, dev, mntNs);
    if (uses.length === 0) continue;
    out.push({ pid, ...(await describe(pid)), uses: uses.slice(0, MAX_USES) });
  }
  return out;
}

/** One line per holder, for messages: "pid 12 (host 4567) `sh -c ...`: cwd, fd 3 /cache/log". */
export function holderLines(holders: Holder[]): string {
  return holders.map((h) => `pid ${h.nsPid} (host ${h.pid}) \`${h.command}\`: ${h.uses.join(', ')}`).join('; ');
}

/** Whether a process is past holding anything: gone, or a zombie (its files are closed). */
export async function isGone(pid: number): Promise<boolean> {
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
  return status === null || /^State:\s*[ZX]/m.test(status);
}
