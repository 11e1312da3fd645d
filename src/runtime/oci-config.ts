import { readFileSync } from 'node:fs';
import type { Limits } from '../api/schemas.js';
import { ID_MAP } from '../util/id-map.js';
import { defaultSeccompProfile } from './seccomp.js';

export const INIT_DIR_IN_SANDBOX = '/.nook';
export const INIT_PATH_IN_SANDBOX = `${INIT_DIR_IN_SANDBOX}/nook-init`;

export interface OciSpecInput {
  rootfs: string;
  hostname: string;
  env: Record<string, string>;
  limits: Limits;
  cgroupsPath: string;
  /** Swap accounting is optional in the kernel; setting swap without it makes crun fail. */
  swapLimit: boolean;
  /** Host directory holding nook-init, bind-mounted read-only at /.nook. */
  initDir: string;
  /** Host directories bind-mounted read-write (persisted paths). */
  mounts?: { source: string; destination: string }[];
}

/** Docker's default set without NET_RAW (raw sockets) and MKNOD: all only within the user namespace. */
export const CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_SETFCAP', 'CAP_AUDIT_WRITE',
];

const DEVICE_ALLOW: { type: string; major: number; minor?: number }[] = [
  { type: 'c', major: 1, minor: 3 }, // null
  { type: 'c', major: 1, minor: 5 }, // zero
  { type: 'c', major: 1, minor: 7 }, // full
  { type: 'c', major: 1, minor: 8 }, // random
  { type: 'c', major: 1, minor: 9 }, // urandom
  { type: 'c', major: 5, minor: 0 }, // tty
  { type: 'c', major: 5, minor: 2 }, // ptmx
  { type: 'c', major: 136 }, // pts (any minor)
];

const PERIOD_US = 100_000;

/** 65536 open files, but never above the daemon's own hard limit (raising it is refused). */
function nofileLimit(): { soft: number; hard: number } {
  let hostHard = 65_536;
  try {
    const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m?.[1] && m[1] !== 'unlimited') hostHard = Number(m[1]);
  } catch {
    // keep the default
  }
  const hard = Math.min(65_536, hostHard);
  return { soft: hard, hard };
}

export function buildOciSpec(input: OciSpecInput): Record<string, unknown> {
  const memoryBytes = input.limits.memoryMiB * 1024 * 1024;
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [INIT_PATH_IN_SANDBOX, 'init'],
      env: Object.entries(input.env).map(([k, v]) => `${k}=${v}`),
      cwd: '/',
      capabilities: { bounding: CAPABILITIES, effective: CAPABILITIES, permitted: CAPABILITIES, inheritable: [], ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', ...nofileLimit() }],
      noNewPrivileges: true,
    },
    root: { path: input.rootfs, readonly: false },
    hostname: input.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=262144k'] },
      { destination: INIT_DIR_IN_SANDBOX, type: 'bind', source: input.initDir, options: ['bind', 'ro', 'nosuid', 'nodev'] },
      ...(input.mounts ?? []).map((m) => ({ destination: m.destination, type: 'bind', source: m.source, options: ['rbind', 'rw', 'nosuid', 'nodev'] })),
    ],
    linux: {
      uidMappings: [{ containerID: 0, hostID: ID_MAP.hostId, size: ID_MAP.size }],
      gidMappings: [{ containerID: 0, hostID: ID_MAP.hostId, size: ID_MAP.size }],
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup', 'user'].map((type) => ({ type })),
      cgroupsPath: input.cgroupsPath,
      resources: {
        // swap is memory+swap in OCI terms: equal to the limit means no swap (crun writes
        // memory.memsw.limit_in_bytes on v1, memory.swap.max = 0 on v2).
        memory: input.swapLimit ? { limit: memoryBytes, swap: memoryBytes } : { limit: memoryBytes },
        cpu: { quota: Math.round(input.limits.cpus * PERIOD_US), period: PERIOD_US },
        pids: { limit: input.limits.pids },
        devices: [{ allow: false, access: 'rwm' }, ...DEVICE_ALLOW.map((d) => ({ allow: true, access: 'rwm', ...d }))],
      },
      seccomp: defaultSeccompProfile(),
      maskedPaths: [
        '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
        '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      rootfsPropagation: 'private',
    },
  };
}
