import { promises as fsp, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NookError } from '../api/errors.js';
import type { Preset } from '../api/schemas.js';
import { exists } from '../util/fs.js';
import { run, which } from '../util/proc.js';
import { ID_MAP, shiftOwnership } from '../util/id-map.js';
import { DESKTOP_IMAGE } from './desktop-image.js';

export type ProgressFn = (phase: string, percent: number, message: string) => void;

export interface PresetContext {
  /** Empty, writable directory that becomes the image. */
  target: string;
  cacheDir: string;
  progress: ProgressFn;
}

/** Image config every preset shares: what a sandbox gets unless it says otherwise. */
export const PRESET_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
};

const BASE_FILES: Record<string, string> = {
  'etc/hosts': '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n',
};

async function writeBaseFiles(target: string): Promise<void> {
  for (const [rel, text] of Object.entries(BASE_FILES)) {
    await fsp.mkdir(dirname(join(target, rel)), { recursive: true });
    await fsp.writeFile(join(target, rel), text);
  }
  for (const d of ['work', 'root', 'tmp']) await fsp.mkdir(join(target, d), { recursive: true });
  await fsp.chmod(join(target, 'tmp'), 0o1777);
  await fsp.chmod(join(target, 'root'), 0o700);
}

/** minimal: Debian's busybox-static and its applets. Builds in well under a second. */
async function buildMinimal(ctx: PresetContext): Promise<void> {
  const busybox = (await which('busybox')) ?? '/bin/busybox';
  // Debian's busybox-static is the static build; the dynamic one would not run in an image without libc.
  const ldd = await run(['ldd', busybox], { allowFail: true }).catch(() => ({ code: 1, stdout: '', stderr: '' }));
  if (!(await exists(busybox)) || /=>/.test(ldd.stdout)) {
    throw new NookError('NOT_SUPPORTED', 'the minimal preset needs a static busybox on the host', { hint: 'apt-get install busybox-static' });
  }
  ctx.progress('copy', 10, 'copying busybox');
  const t = ctx.target;
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'var/tmp', 'home']) await fsp.mkdir(join(t, d), { recursive: true });
  await fsp.copyFile(busybox, join(t, 'bin/busybox'));
  await fsp.chmod(join(t, 'bin/busybox'), 0o755);
  const list = await run([busybox, '--list-full']);
  const applets = list.stdout.split('\n').filter((l) => l && l !== 'bin/busybox');
  ctx.progress('applets', 40, `linking ${applets.length} applets`);
  for (const rel of applets) {
    const dest = join(t, rel);
    await fsp.mkdir(dirname(dest), { recursive: true });
    await fsp.symlink('/bin/busybox', dest).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
  await fsp.writeFile(join(t, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await fsp.writeFile(join(t, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeBaseFiles(t);
  ctx.progress('ownership', 80, 'mapping ownership into the sandbox user range');
  await shiftOwnership(t, ID_MAP.hostId);
}

const DEBOOTSTRAP_STAGES: [RegExp, number, string][] = [
  [/^I: Retrieving/, 10, 'download'],
  [/^I: Validating/, 25, 'validate'],
  [/^I: Extracting/, 40, 'extract'],
  [/^I: Installing/, 55, 'install'],
  [/^I: Unpacking/, 65, 'unpack'],
  [/^I: Configuring/, 80, 'configure'],
];

/** The Debian mirror apt already uses on this host (so it is one the host can reach). */
function debianMirror(): string {
  if (process.env.NOOK_DEBIAN_MIRROR) return process.env.NOOK_DEBIAN_MIRROR;
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    try {
      const text = readFileSync(f, 'utf8');
      // The first plain .../debian URI (not debian-security), in either sources format.
      const m = /(https?:\/\/\S+\/debian)\/?(?=\s)/.exec(text);
      if (m?.[1]) return m[1];
    } catch {
      // try the next file
    }
  }
  return 'http://deb.debian.org/debian';
}

interface DebianPreset {
  /** Bumped when the package set or the files added change, so caches are rebuilt. */
  cacheVersion: string;
  packages: string[];
  /** A file whose presence says the cached rootfs is complete. */
  marker: string;
  /** Extra files (path -> [mode, text]) written into the rootfs. */
  files?: Record<string, [number, string]>;
  /** Last touches to the rootfs (before ownership is shifted into the sandbox range). */
  setup?: (root: string) => Promise<void>;
}

/** The E2B-style login: `user` (uid and gid 1000) with a home and password-less sudo. */
export const BASE_USER = { name: 'user', uid: 1000, home: '/home/user' };

async function addBaseUser(root: string): Promise<void> {
  const { name, uid, home } = BASE_USER;
  await fsp.appendFile(join(root, 'etc/passwd'), `${name}:x:${uid}:${uid}::${home}:/bin/bash\n`);
  await fsp.appendFile(join(root, 'etc/group'), `${name}:x:${uid}:\n`);
  await fsp.appendFile(join(root, 'etc/shadow'), `${name}:*:19000:0:99999:7:::\n`).catch(() => undefined);
  await fsp.mkdir(join(root, home), { recursive: true });
  for (const f of ['.bashrc', '.profile']) await fsp.copyFile(join(root, 'etc/skel', f), join(root, home, f)).catch(() => undefined);
  await run(['chown', '-R', `${uid}:${uid}`, join(root, home)]);
  await fsp.chmod(join(root, home), 0o755);
  await fsp.mkdir(join(root, 'etc/sudoers.d'), { recursive: true });
  await fsp.writeFile(join(root, 'etc/sudoers.d/user'), `${name} ALL=(ALL:ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
}

/**
 * A Debian bookworm minbase rootfs plus packages, through debootstrap (tens of seconds to a
 * few minutes on first use). The result, already shifted into the sandbox uid range, is
 * cached under the cache dir and copied on later builds, so a new state dir builds it in
 * seconds.
 */
async function buildDebian(ctx: PresetContext, preset: DebianPreset): Promise<void> {
  const cached = join(ctx.cacheDir, 'presets', preset.cacheVersion);
  if (!(await exists(join(cached, preset.marker)))) {
    if (!(await which('debootstrap'))) {
      throw new NookError('NOT_SUPPORTED', 'this preset needs debootstrap on the host', { hint: 'apt-get install debootstrap' });
    }
    const tmp = `${cached}.tmp-${process.pid}`;
    await fsp.rm(tmp, { recursive: true, force: true });
    await fsp.mkdir(dirname(tmp), { recursive: true, mode: 0o700 });
    ctx.progress('download', 2, `debootstrap: Debian bookworm minbase + ${preset.packages.join(', ')}`);
    try {
      await run(['debootstrap', '--variant=minbase', `--include=${preset.packages.join(',')}`, 'bookworm', tmp, debianMirror()], {
        onStdoutLine: (line) => {
          for (const [re, percent, phase] of DEBOOTSTRAP_STAGES) if (re.test(line)) ctx.progress(phase, percent, line.slice(3).trim());
        },
        timeoutMs: 30 * 60_000,
      });
    } catch (e) {
      // debootstrap's own log says what failed; its stdout only says how far it got.
      const detail = await fsp.readFile(join(tmp, 'debootstrap', 'debootstrap.log'), 'utf8').then(
        (t) => t.trim().split('\n').slice(-12).join('\n'),
        () => (e as Error).message.slice(-1500),
      );
      await fsp.rm(tmp, { recursive: true, force: true });
      throw new NookError('IMAGE_BUILD_FAILED', `debootstrap failed: ${detail}`, {
        hint: 'check that the Debian mirror is reachable (NOOK_DEBIAN_MIRROR overrides it)',
      });
    }
    await fsp.rm(join(tmp, 'var/cache/apt/archives'), { recursive: true, force: true });
    await fsp.mkdir(join(tmp, 'var/cache/apt/archives/partial'), { recursive: true });
    await fsp.rm(join(tmp, 'var/lib/apt/lists'), { recursive: true, force: true });
    await fsp.mkdir(join(tmp, 'var/lib/apt/lists/partial'), { recursive: true });
    await writeBaseFiles(tmp);
    for (const [rel, [mode, text]] of Object.entries(preset.files ?? {})) {
      await fsp.mkdir(dirname(join(tmp, rel)), { recursive: true });
      await fsp.writeFile(join(tmp, rel), text, { mode });
      await fsp.chmod(join(tmp, rel), mode);
    }
    await preset.setup?.(tmp);
    ctx.progress('ownership', 88, 'mapping ownership into the sandbox user range');
    await shiftOwnership(tmp, ID_MAP.hostId);
    await fsp.rm(cached, { recursive: true, force: true });
    await fsp.rename(tmp, cached);
  }
  ctx.progress('copy', 92, 'copying the cached rootfs into the pool');
  await run(['cp', '-a', '--reflink=auto', `${cached}/.`, ctx.target]);
}

/**
 * Chromium refuses to run as root with its own sandbox, and its sandbox needs user
 * namespaces the seccomp profile denies; the nook sandbox is the boundary, so the launcher
 * turns Chromium's off, runs headless, and sends page loads through nook's egress proxy
 * (the network allow-list) when one is set.
 */
const CHROMIUM_HEADLESS = `#!/bin/sh
# nook: headless Chromium inside a sandbox. Pages are reached only through the allow-list proxy.
proxy=""
# <-loopback> drops Chromium's implicit direct route to loopback: every page goes via the proxy.
if [ -n "$HTTPS_PROXY" ]; then proxy="--proxy-server=$HTTPS_PROXY --proxy-bypass-list=<-loopback>"
elif [ -n "$HTTP_PROXY" ]; then proxy="--proxy-server=$HTTP_PROXY --proxy-bypass-list=<-loopback>"; fi
exec /usr/bin/chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --log-level=3 \
  --no-default-browser-check --disable-background-networking --disable-component-update \
  --user-data-dir="\${NOOK_BROWSER_PROFILE:-/tmp/chromium-profile}" $proxy "$@"
`;

/** The desktop preset: the browser preset's Chromium plus an X desktop (src/oci/desktop-image.ts). */
const DESKTOP_PRESET: DebianPreset = {
  cacheVersion: DESKTOP_IMAGE.cacheVersion,
  packages: [...DESKTOP_IMAGE.packages],
  marker: DESKTOP_IMAGE.marker,
  files: { ...DESKTOP_IMAGE.files, 'usr/local/bin/chromium-headless': [0o755, CHROMIUM_HEADLESS] },
};

const DEBIAN_PRESETS: Record<Exclude<Preset, 'minimal'>, DebianPreset> = {
  desktop: DESKTOP_PRESET,
  python: { cacheVersion: 'python-bookworm-1', packages: ['python3'], marker: 'usr/bin/python3' },
  // E2B's default template: bash, python3, sudo and the `user` login (src/daemon/e2b/).
  base: { cacheVersion: 'base-bookworm-1', packages: ['python3', 'sudo', 'procps'], marker: 'home/user/.nook-base', setup: addBaseUser, files: { 'home/user/.nook-base': [0o644, ''] } },
  node: { cacheVersion: 'node-bookworm-1', packages: ['nodejs', 'ca-certificates'], marker: 'usr/bin/node' },
  browser: {
    cacheVersion: 'browser-bookworm-3',
    // dbus-x11 provides the session bus dconf-service needs; debootstrap does not pick alternatives.
    packages: ['chromium', 'fonts-dejavu-core', 'python3', 'dbus-x11'],
    marker: 'usr/local/bin/chromium-headless',
    files: { 'usr/local/bin/chromium-headless': [0o755, CHROMIUM_HEADLESS] },
  },
};

export const PRESETS: Record<Preset, (ctx: PresetContext) => Promise<void>> = {
  minimal: buildMinimal,
  python: (ctx) => buildDebian(ctx, DEBIAN_PRESETS.python),
  base: (ctx) => buildDebian(ctx, DEBIAN_PRESETS.base),
  node: (ctx) => buildDebian(ctx, DEBIAN_PRESETS.node),
  browser: (ctx) => buildDebian(ctx, DEBIAN_PRESETS.browser),
  desktop: (ctx) => buildDebian(ctx, DEBIAN_PRESETS.desktop),
};
