import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildOciSpec, CAPABILITIES } from '../../src/runtime/oci-config.js';
import { defaultSeccompProfile } from '../../src/runtime/seccomp.js';

describe('generated OCI config', () => {
  const spec = buildOciSpec({
    rootfs: '/pool/sb',
    hostname: 'agent',
    env: { PATH: '/bin' },
    limits: { memoryMiB: 256, cpus: 1.5, pids: 100 },
    cgroupsPath: '/nook-x/sb',
    swapLimit: true,
    initDir: '/state/bin',
  }) as {
    process: { noNewPrivileges: boolean; args: string[]; capabilities: { bounding: string[] } };
    linux: { namespaces: { type: string }[]; uidMappings: { hostID: number }[]; resources: { memory: { limit: number; swap?: number }; cpu: { quota: number; period: number }; pids: { limit: number } }; maskedPaths: string[]; readonlyPaths: string[] };
    mounts: { destination: string; options?: string[] }[];
  };

  it('creates every namespace, including user with a non-identity map', () => {
    assert.deepEqual(spec.linux.namespaces.map((n) => n.type).sort(), ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts']);
    assert.ok((spec.linux.uidMappings[0]?.hostID ?? 0) > 0);
  });
  it('translates limits into cgroup resources', () => {
    assert.equal(spec.linux.resources.memory.limit, 256 * 1024 * 1024);
    // memory+swap equal to memory: no swap (v1 memsw, v2 memory.swap.max = 0).
    assert.equal(spec.linux.resources.memory.swap, 256 * 1024 * 1024);
    assert.equal(spec.linux.resources.cpu.quota / spec.linux.resources.cpu.period, 1.5);
    assert.equal(spec.linux.resources.pids.limit, 100);
  });
  it('drops dangerous capabilities and sets no_new_privs', () => {
    assert.equal(spec.process.noNewPrivileges, true);
    for (const cap of ['CAP_SYS_ADMIN', 'CAP_NET_RAW', 'CAP_MKNOD', 'CAP_SYS_PTRACE', 'CAP_SYS_MODULE']) assert.ok(!CAPABILITIES.includes(cap), cap);
    assert.deepEqual(spec.process.capabilities.bounding, CAPABILITIES);
  });
  it('runs nook-init as PID 1 from a read-only mount', () => {
    assert.deepEqual(spec.process.args, ['/.nook/nook-init', 'init']);
    const m = spec.mounts.find((x) => x.destination === '/.nook');
    assert.ok(m?.options?.includes('ro'));
  });
  it('masks kernel interfaces', () => {
    assert.ok(spec.linux.maskedPaths.includes('/proc/kcore'));
    assert.ok(spec.linux.readonlyPaths.includes('/proc/sysrq-trigger'));
  });
});

describe('default seccomp profile', () => {
  const p = defaultSeccompProfile();
  it('covers the 32-bit ABIs so int 0x80 cannot bypass it', () => {
    assert.deepEqual(p.architectures.sort(), ['SCMP_ARCH_X32', 'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64']);
  });
  it('refuses mount, namespaces, keyrings, bpf and io_uring', () => {
    const denied = new Set(p.syscalls.filter((s) => !s.args).flatMap((s) => s.names));
    for (const name of ['mount', 'umount2', 'unshare', 'setns', 'keyctl', 'bpf', 'io_uring_setup', 'kexec_load', 'init_module', 'open_by_handle_at']) {
      assert.ok(denied.has(name), name);
    }
    const cloneRules = p.syscalls.filter((s) => s.names.includes('clone') && s.args);
    assert.ok(cloneRules.some((r) => r.args?.[0]?.value === 0x10000000), 'CLONE_NEWUSER refused');
  });
  it('refuses btrfs subvolume and quota ioctls, comparing the command under a 32-bit mask', () => {
    const rules = p.syscalls.filter((s) => s.names.includes('ioctl'));
    const cmds = rules.map((r) => r.args?.[0]?.valueTwo);
    for (const cmd of [0x5000940e, 0x50009418, 0x50009401, 0x50009417, 0x5000940f, 0x5000943f, 0xc0109428, 0x8030942b]) assert.ok(cmds.includes(cmd), cmd.toString(16));
    const shared = [0x40049409, 0x4020940d, 0xc0189436]; // FICLONE, FICLONERANGE, FIDEDUPERANGE: EOPNOTSUPP
    for (const r of rules) {
      const errno = shared.includes(r.args?.[0]?.valueTwo ?? 0) ? 95 : 1;
      assert.deepEqual([r.args?.[0]?.index, r.args?.[0]?.op, r.args?.[0]?.value, r.errnoRet], [1, 'SCMP_CMP_MASKED_EQ', 0xffffffff, errno]);
    }
    for (const cmd of shared) assert.ok(cmds.includes(cmd), cmd.toString(16));
    assert.ok(p.syscalls.some((s) => s.names.includes('copy_file_range') && s.errnoRet === 38), 'copy_file_range answers ENOSYS (it clones on btrfs)');
  });
});
