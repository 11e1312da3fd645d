import { NookError } from '../api/errors.js';
import { run, which } from '../util/proc.js';
import { CgroupV1 } from './cgroups.js';
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

/** crun when installed (fast), else runc; NOOK_RUNTIME=runc|crun forces one. */
export async function chooseRuntime(dirs: RuntimeDirs, wanted = process.env.NOOK_RUNTIME): Promise<RuntimeDriver> {
  const mode = CgroupV1.detect();
  if (mode === 'v2') {
    throw new NookError('NOT_SUPPORTED', 'this host uses cgroup v2 only; nook currently drives cgroup v1 (and hybrid) hosts', {
      hint: 'boot with systemd.unified_cgroup_hierarchy=0, or follow the cgroup v2 issue',
    });
  }
  const order: ('crun' | 'runc')[] = wanted === 'runc' ? ['runc'] : wanted === 'crun' ? ['crun'] : ['crun', 'runc'];
  for (const binary of order) {
    const path = await which(binary);
    if (!path) continue;
    const v = await run([path, '--version'], { allowFail: true });
    const version = /version\s+(\S+)/.exec(v.stdout)?.[1] ?? 'unknown';
    return new OciRuntimeDriver({
      binary,
      path,
      version,
      stateRoot: dirs.stateRoot,
      bundlesDir: dirs.bundlesDir,
      initDir: dirs.initDir,
      cgroups: new CgroupV1(`/nook-${dirs.instance}`),
      hideUnifiedCgroup: binary === 'crun' && mode === 'v1-hybrid',
    });
  }
  throw new NookError('NOT_SUPPORTED', 'no OCI runtime found', { hint: 'apt-get install crun (or runc)' });
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
  if (runsc) {
    const v = await run([runsc, '--version'], { allowFail: true });
    const version = /runsc version\s+(\S+)/.exec(v.stdout)?.[1] ?? 'unknown';
    backends.set('gvisor', new RunscDriver({
      path: runsc,
      version,
      stateRoot: `${dirs.stateRoot}-runsc`,
      bundlesDir: `${dirs.bundlesDir}-gvisor`,
      initDir: dirs.initDir,
      cgroups: new CgroupV1(`/nook-${dirs.instance}`),
    }));
  }
  const wanted = env.NOOK_DEFAULT_RUNTIME || 'crun';
  if (wanted !== 'crun' && wanted !== 'gvisor') {
    throw new NookError('INVALID_ARGUMENT', `NOOK_DEFAULT_RUNTIME=${wanted} is not a runtime`, { hint: 'crun or gvisor' });
  }
  if (!backends.has(wanted)) {
    throw new NookError('NOT_SUPPORTED', 'NOOK_DEFAULT_RUNTIME=gvisor, but runsc is not installed', { hint: 'apt-get install runsc, or unset NOOK_DEFAULT_RUNTIME' });
  }
  return new MultiDriver(backends, wanted, `${dirs.stateRoot}-kinds`);
}
