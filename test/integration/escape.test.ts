/**
 * The escape suite: a static probe, built here and copied into a sandbox, tries what
 * container escapes go through (mount APIs, namespaces, keyrings, bpf, io_uring, perf,
 * modules, kexec, ptrace, device nodes, raw sockets, /proc and /sys writes, the chroot
 * trick). Every attempt must be refused, and nothing outside the sandbox may change. Run
 * on crun and, when runsc is installed, on gVisor.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { run, which } from '../../src/util/proc.js';
import { REPO_ROOT, startDaemon, type TestDaemon } from '../helpers/daemon.js';

const ATTEMPTS = [
  'mount', 'umount2', 'unshare-user', 'unshare-mount', 'unshare-net', 'setns', 'add_key', 'keyctl', 'bpf', 'io_uring_setup',
  'perf_event_open', 'open_by_handle_at', 'init_module', 'kexec_load', 'reboot', 'swapon', 'ptrace-init', 'mknod-char',
  'mknod-block', 'raw-socket', 'packet-socket', 'clock_settime', 'sysrq-trigger', 'sys-write', 'userfaultfd',
];

/**
 * gVisor's sentry is a kernel of its own: these run there and never reach the host kernel
 * (namespaces it emulates; sockets of its own network stack, which has only loopback under
 * --network=none). The suite checks they stay inside: the host and the bystander untouched.
 */
const CONTAINED_BY_GVISOR = new Set(['unshare-user', 'unshare-mount', 'unshare-net', 'raw-socket', 'packet-socket']);
const RUNTIMES = (await which('runsc')) ? (['crun', 'gvisor'] as const) : (['crun'] as const);

for (const runtime of RUNTIMES) describe(`escape suite (${runtime})`, async () => {
  const gcc = await which('gcc');
  let d: TestDaemon;
  let attacker: Sandbox;
  let bystander: Sandbox;
  let work: string;
  let lines: string[] = [];

  before(async () => {
    if (!gcc) return;
    work = mkdtempSync('/tmp/nook-escape-');
    await run(['gcc', '-static', '-O1', '-o', join(work, 'probe'), join(REPO_ROOT, 'test', 'fixtures', 'escape-probe.c')]);
    writeFileSync(join(work, 'host-marker'), 'untouched');
    d = await startDaemon();
    attacker = await d.client.sandboxes.create({ name: 'attacker', image: 'minimal', runtime });
    bystander = await d.client.sandboxes.create({ name: 'bystander', image: 'minimal', runtime });
    await bystander.exec(['sh', '-c', 'echo mine > /work/data']);
    await attacker.files.write('/work/probe', readFileSync(join(work, 'probe')), { mode: 0o755 });
    const r = await attacker.exec(['/work/probe'], { timeoutMs: 30_000 });
    assert.equal(r.exitCode, 0, r.stderr);
    lines = r.stdout.trim().split('\n');
  });
  after(async () => {
    if (!gcc) return;
    await d.teardown();
    rmSync(work, { recursive: true, force: true });
  });

  for (const attempt of ATTEMPTS) {
    it(`refuses ${attempt}`, { skip: gcc ? false : 'gcc is not installed (apt-get install build-essential)' }, () => {
      const line = lines.find((l) => l.startsWith(`${attempt} `));
      assert.ok(line, `the probe reported on ${attempt}`);
      if (runtime === 'gvisor' && CONTAINED_BY_GVISOR.has(attempt)) assert.match(line, / (ALLOWED|refused E[A-Z]+)$/, line);
      else assert.match(line, / refused E[A-Z]+$/, line);
    });
  }

  it('keeps the chroot trick inside the sandbox', { skip: gcc ? false : 'gcc is not installed' }, () => {
    assert.ok(lines.includes('after-chroot-trick root-has-nook=1'), lines.join('\n'));
  });

  it('leaves the host and the other sandbox untouched', { skip: gcc ? false : 'gcc is not installed' }, async () => {
    assert.equal(readFileSync(join(work, 'host-marker'), 'utf8'), 'untouched');
    assert.equal((await bystander.exec(['cat', '/work/data'])).stdout, 'mine\n');
    assert.equal((await attacker.exec(['echo', 'still-works'])).stdout, 'still-works\n');
    assert.equal((await run(['sh', '-c', 'grep -c " /mnt tmpfs" /proc/mounts || true'])).stdout.trim(), '0');
  });
});
