import { readFileSync } from 'node:fs';
import { NookError } from '../api/errors.js';
import { run, which } from '../util/proc.js';
import { CgroupV1, detectCgroupKind, type CgroupHost } from './cgroups.js';
import { CgroupV2 } from './cgroups-v2.js';
import { OciRuntimeDriver } from './crun.js';
import type { RuntimeDriver, RuntimeKind } from './driver.js';
import { MultiDriver } from './multi.js';
import { RunscDriver } from './runsc.js';

export type { RuntimeDriver, RuntimeInfo, RuntimeKind, ExecSpec, ExecOutcome, StartSpec, ContainerStatus } from './driver.js';

export interface RuntimeDirs {
  stateRoot: string;
  bundlesDir: string;
  initDir: string;
  /** Unique per state dir; names the cgroup parent. */
  instance: string;
}

const claimed = new Map<string, Promise<CgroupHost>>();

/** This daemon's cgroup subtree, of the host's kind; claimed once per instance, shared by every backend. */
function hostCgroups(instance: string): Promise<CgroupHost> {
  let c = claimed.get(instance);
  if (!c) {
    const mode = detectCgroupKind();
    c = mode === 'v2' ? CgroupV2.claim(instance) : Promise.resolve(new CgroupV1(`/nook-${instance}`, mode));
    claimed.set(instance, c);
  }
  return c;
}

/** crun when installed (fast), else runc; NOOK_RUNTIME=runc|crun forces one. */
export async function chooseRuntime(dirs: RuntimeDirs, wanted = process.env.NOOK_RUNTIME): Promise<RuntimeDriver> {
  requireUserNamespaces();
  const mode = detectCgroupKind();
  const order: ('crun' | 'runc')[] = wanted === 'runc' ? ['runc'] : wanted === 'crun' ? ['crun'] : ['crun', 'runc'];
  for (const binary of order) {
    const path = await which(binary);
    if (!path) continue;
    const v = await run([path, '--version'], { allowFail: true });
    const version = /version\s+(\S+)/.exec(v.stdout)?.[1] ?? 'unknown';
    // Claimed only once a runtime is found: a host without one is told that first.
    const cgroups = await hostCgroups(dirs.instance);
    return new OciRuntimeDriver({
      binary,
      path,
      version,
      stateRoot: dirs.stateRoot,
      bundlesDir: dirs.bundlesDir,
      initDir: dirs.initDir,
      cgroups,
      hideUnifiedCgroup: binary === 'crun' && mode === 'v1-hybrid',
    });
  }
  throw new NookError('NOT_SUPPORTED', 'no OCI runtime found', { hint: 'apt-get install crun (or runc)' });
}

/** Every sandbox has its own user namespace: a kernel that allows none cannot run any. */
function requireUserNamespaces(): void {
  let max = '';
  try {
    max = readFileSync('/proc/sys/user/max_user_namespaces', 'utf8').trim();
  } catch {
    throw new NookError('NOT_SUPPORTED', 'this kernel has no user namespaces (CONFIG_USER_NS)', { hint: 'use a kernel built with CONFIG_USER_NS=y (every stock distribution kernel is)' });
  }
  if (max === '0') {
    throw new NookError('NOT_SUPPORTED', 'user namespaces are disabled on this host (user.max_user_namespaces = 0)', {
      hint: 'sysctl -w user.max_user_namespaces=15000 (and set it in /etc/sysctl.d/ to keep it)',
    });
  }
}

/**
 * Every backend this host has, behind one dispatching driver: crun (or runc) always,
 * gVisor when runsc is installed (NOOK_RUNSC_PATH=none hides it; a path picks one).
 * NOOK_DEFAULT_RUNTIME=gvisor makes it the default for sandboxes that do not ask.
 */
export async function chooseBackends(dirs: RuntimeDirs, env: NodeJS.ProcessEnv = process.env): Promise<RuntimeDriver> {
  const crun = await chooseRuntime(dirs, env.NOOK_RUNTIME);
  const backends = new Map<RuntimeKind, RuntimeDriver>([['crun', crun]]);
  const runsc = env.NOOK_RUNSC_PATH === 'none' ? null : env.NOOK_RUNSC_PATH || (await which('runsc'));
  // Not offered where it is unverified: in the cgroup-v2 test guest runsc's conformance run
  // failed (a stopped container stayed listed), so gVisor answers NOT_SUPPORTED there.
  const unverified = (await hostCgroups(dirs.instance)).kind === 'v2';
  if (runsc && !unverified) {
    const v = await run([runsc, '--version'], { allowFail: true });
    const version = /runsc version\s+(\S+)/.exec(v.stdout)?.[1] ?? 'unknown';
    backends.set('gvisor', new RunscDriver({
      path: runsc,
      version,
      stateRoot: `${dirs.stateRoot}-runsc`,
      bundlesDir: `${dirs.bundlesDir}-gvisor`,
      initDir: dirs.initDir,
      // The same subtree as crun's: on v2 it is claimed (and the daemon moved) once.
      cgroups: await hostCgroups(dirs.instance),
    }));
  }
  const wanted = env.NOOK_DEFAULT_RUNTIME || 'crun';
  if (wanted !== 'crun' && wanted !== 'gvisor') {
    throw new NookError('INVALID_ARGUMENT', `NOOK_DEFAULT_RUNTIME=${wanted} is not a runtime`, { hint: 'crun or gvisor' });
  }
  if (!backends.has(wanted)) {
    throw new NookError('NOT_SUPPORTED', unverified && runsc ? 'NOOK_DEFAULT_RUNTIME=gvisor, but gVisor is not supported on cgroup v2 hosts yet' : 'NOOK_DEFAULT_RUNTIME=gvisor, but runsc is not installed', {
      hint: unverified && runsc ? 'use a cgroup v1/hybrid host for gVisor, or unset NOOK_DEFAULT_RUNTIME' : 'apt-get install runsc, or unset NOOK_DEFAULT_RUNTIME',
    });
  }
  return new MultiDriver(backends, wanted, `${dirs.stateRoot}-kinds`, unverified && !!runsc);
}
