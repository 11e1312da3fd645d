import { readFileSync } from 'node:fs';
import { NookError } from '../api/errors.js';
import { run, which } from '../util/proc.js';
import { CgroupV1, detectCgroupKind, type CgroupHost } from './cgroups.js';
import { CgroupV2 } from './cgroups-v2.js';
import { OciRuntimeDriver } from './crun.js';
import type { RuntimeDriver } from './driver.js';

export type { RuntimeDriver, RuntimeInfo, ExecSpec, ExecOutcome, StartSpec, ContainerStatus } from './driver.js';

export interface RuntimeDirs {
  stateRoot: string;
  bundlesDir: string;
  initDir: string;
  /** Unique per state dir; names the cgroup parent. */
  instance: string;
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
    const cgroups: CgroupHost = mode === 'v2' ? await CgroupV2.claim(dirs.instance) : new CgroupV1(`/nook-${dirs.instance}`, mode);
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
