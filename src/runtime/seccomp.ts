/**
 * The default seccomp profile. Allow by default and refuse what a sandbox never needs and
 * what most container escapes go through: mount APIs, namespace creation, kernel modules,
 * keyrings, bpf, io_uring, userfaultfd, perf, kexec. Listing the 32-bit ABIs matters: with
 * only x86_64 listed, `int 0x80` syscalls would bypass every rule.
 */
const EPERM = 1;
const ENOSYS = 38;

const DENIED = [
  'acct', 'add_key', 'bpf', 'clock_adjtime', 'clock_settime', 'create_module', 'delete_module',
  'finit_module', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'get_kernel_syms', 'init_module',
  'io_uring_enter', 'io_uring_register', 'io_uring_setup', 'ioperm', 'iopl', 'kcmp',
  'kexec_file_load', 'kexec_load', 'keyctl', 'lookup_dcookie', 'mount', 'mount_setattr',
  'move_mount', 'name_to_handle_at', 'nfsservctl', 'open_by_handle_at', 'open_tree',
  'perf_event_open', 'pivot_root', 'query_module', 'quotactl', 'quotactl_fd', 'reboot',
  'request_key', 'setns', 'settimeofday', 'stime', 'swapoff', 'swapon', 'sysfs', '_sysctl',
  'umount', 'umount2', 'unshare', 'uselib', 'userfaultfd', 'ustat', 'vm86', 'vm86old',
  'fanotify_init', 'lsm_set_self_attr', 'process_madvise',
];

/** clone flags that create namespaces; one rule each because rule arguments are ANDed. */
const CLONE_NAMESPACE_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080];

/**
 * btrfs ioctls a sandbox must not use on its own rootfs (which is a btrfs subvolume it owns):
 * making, snapshotting, deleting or flagging subvolumes (their names once steered the
 * daemon's clean-up, and they escape per-sandbox quota accounting), and quota control.
 * Numbers are the kernel's _IOW/_IOR/_IOWR('0x94', nr, size) from linux/btrfs.h.
 */
const BTRFS_IOCTLS = {
  SNAP_CREATE: 0x50009401,
  SUBVOL_CREATE: 0x5000940e,
  SNAP_DESTROY: 0x5000940f,
  DEFAULT_SUBVOL: 0x40089413,
  SNAP_CREATE_V2: 0x50009417,
  SUBVOL_CREATE_V2: 0x50009418,
  SUBVOL_SETFLAGS: 0x4008941a,
  SET_RECEIVED_SUBVOL: 0xc0c89425,
  QUOTA_CTL: 0xc0109428,
  QGROUP_ASSIGN: 0x40189429,
  QGROUP_CREATE: 0x4010942a,
  QGROUP_LIMIT: 0x8030942b,
  QUOTA_RESCAN: 0x4040942c,
  SNAP_DESTROY_V2: 0x5000943f,
} as const;

/**
 * Shared extents: a clone or dedupe adds pool metadata (a file of 4096 extents cloned: 420
 * MiB of metadata) that btrfs quotas never charge to the sandbox, so repeated clones grow the
 * pool without bound. Refused with EOPNOTSUPP, on which cp, Go, Rust and libuv copy the bytes
 * instead (charged like any write). copy_file_range clones on btrfs too: ENOSYS, the answer
 * every caller of it falls back on.
 */
const SHARED_EXTENT_IOCTLS = {
  FICLONE: 0x40049409,
  FICLONERANGE: 0x4020940d,
  FIDEDUPERANGE: 0xc0189436,
} as const;
const EOPNOTSUPP = 95;

/**
 * The kernel reads ioctl's command as a 32-bit unsigned int, but seccomp sees all 64 bits
 * of the register: compare under a 32-bit mask, or setting the upper bits (or musl's sign
 * extension of 0xc... commands) would slip past an equality test.
 */
const IOCTL_CMD_MASK = 0xffffffff;

export interface SeccompProfile {
  defaultAction: string;
  architectures: string[];
  syscalls: { names: string[]; action: string; errnoRet?: number; args?: { index: number; value: number; valueTwo?: number; op: string }[] }[];
}

type SeccompRule = SeccompProfile['syscalls'][number];

function ioctlRule(cmd: number, errnoRet: number): SeccompRule {
  return { names: ['ioctl'], action: 'SCMP_ACT_ERRNO', errnoRet, args: [{ index: 1, value: IOCTL_CMD_MASK, valueTwo: cmd, op: 'SCMP_CMP_MASKED_EQ' }] };
}

export function defaultSeccompProfile(): SeccompProfile {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [
      { names: DENIED, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      // glibc falls back to clone(2) on ENOSYS, where the flag rules below apply;
      // clone3 passes flags in memory, which seccomp cannot inspect.
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      ...Object.values(BTRFS_IOCTLS).map((cmd) => ioctlRule(cmd, EPERM)),
      ...Object.values(SHARED_EXTENT_IOCTLS).map((cmd) => ioctlRule(cmd, EOPNOTSUPP)),
      { names: ['copy_file_range'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      ...CLONE_NAMESPACE_FLAGS.map((flag) => ({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
    ],
  };
}
