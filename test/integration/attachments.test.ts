import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/util/proc.js';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

describe('raw disks, tar bundles and host directories at create', () => {
  let d: TestDaemon;
  let host: string;

  before(async () => {
    d = await startDaemon();
    host = mkdtempSync('/tmp/nook-attach-');
  });
  after(async () => {
    await d.teardown();
    rmSync(host, { recursive: true, force: true });
  });

  it('mounts a raw ext4 disk the user owns, read-only unless :rw, and its writes land on the disk', async () => {
    const disk = join(host, 'disk.ext4');
    await run(['truncate', '-s', '32M', disk]);
    await run(['mkfs.ext4', '-q', '-E', 'root_owner=0:0', disk]);
    const r = await d.cli(['create', '--name', 'with-disk', '--image', 'minimal', '-v', `${disk}:/disk:rw`]);
    assert.equal(r.code, 0, r.stderr);
    const sb = await d.client.sandboxes.get('with-disk');
    assert.equal((await sb.exec(['sh', '-c', 'echo on-disk > /disk/f && stat -c %u /disk/f'])).stdout, '0\n');
    await sb.destroy();
    const mnt = join(host, 'check');
    mkdirSync(mnt);
    await run(['mount', '-o', 'loop,ro', disk, mnt]);
    try {
      assert.equal((await run(['cat', join(mnt, 'f')])).stdout, 'on-disk\n');
    } finally {
      await run(['umount', mnt]);
    }
  });

  it('turns a tar bundle into a fresh read-only disk at each start', async () => {
    const src = join(host, 'ctx');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'sub', 'task.json'), '{"task":1}');
    await run(['tar', '-C', src, '-cf', join(host, 'ctx.tar'), '.']);
    await d.client.sandboxes.create({ name: 'with-bundle', image: 'minimal', attach: [{ kind: 'bundle', source: join(host, 'ctx.tar'), guest: '/ctx' }] });
    const sb = await d.client.sandboxes.get('with-bundle');
    assert.equal((await sb.exec(['cat', '/ctx/sub/task.json'])).stdout, '{"task":1}');
    assert.notEqual((await sb.exec(['sh', '-c', 'echo x > /ctx/new'])).exitCode, 0, 'read-only');
    await sb.stop();
    await sb.resume();
    assert.equal((await sb.exec(['cat', '/ctx/sub/task.json'])).stdout, '{"task":1}');
    await sb.destroy();

    // A bundle with an escaping path or a device node is refused, leaving no sandbox.
    await run(['tar', '-C', src, '-cf', join(host, 'evil.tar'), '--transform', 's,^,../,', 'sub']);
    await rejectsWith(d.client.sandboxes.create({ name: 'evil', image: 'minimal', attach: [{ kind: 'bundle', source: join(host, 'evil.tar'), guest: '/x' }] }), 'INVALID_ARGUMENT');
    await run(['mknod', join(src, 'null'), 'c', '1', '3']);
    await run(['tar', '-C', src, '-cf', join(host, 'dev.tar'), 'null']);
    await rejectsWith(d.client.sandboxes.create({ name: 'evil', image: 'minimal', attach: [{ kind: 'bundle', source: join(host, 'dev.tar'), guest: '/x' }] }), 'INVALID_ARGUMENT');
    assert.ok(!(await d.client.sandboxes.list()).some((s) => s.name === 'evil'));
  });

  it('binds host directories read-only; rw needs a profile and the host; a strict host refuses them', async () => {
    const dir = join(host, 'fixtures');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.txt'), 'fixture');
    const r = await d.cli(['create', '--name', 'with-dir', '--image', 'minimal', '--add-dir', `${dir}:/fx:ro`]);
    assert.equal(r.code, 0, r.stderr);
    const sb = await d.client.sandboxes.get('with-dir');
    assert.equal((await sb.exec(['cat', '/fx/a.txt'])).stdout, 'fixture');
    assert.notEqual((await sb.exec(['sh', '-c', 'echo x > /fx/b'])).exitCode, 0);
    await sb.destroy();
    await rejectsWith(d.client.sandboxes.create({ name: 'rw-dir', image: 'minimal', attach: [{ kind: 'dir', source: dir, guest: '/fx', rw: true }] }), 'POLICY_DENIED');
    await d.client.profiles.save('trusted', { allowRwDirs: true });
    await d.client.profiles.publish('trusted');
    await d.client.setConfig('rwHostDirs.allowed', true);
    const rw = await d.client.sandboxes.create({ name: 'rw-dir', image: 'minimal', profile: 'trusted', attach: [{ kind: 'dir', source: dir, guest: '/fx', rw: true }] });
    assert.equal((await rw.exec(['sh', '-c', 'echo written > /fx/b'])).exitCode, 0);
    await rw.destroy();
    await d.client.setConfig('hostDirs.allowed', false);
    const strict = await rejectsWith(d.client.sandboxes.create({ name: 'strict', image: 'minimal', attach: [{ kind: 'dir', source: dir, guest: '/fx' }] }), 'POLICY_DENIED');
    assert.match(strict.hint ?? '', /tar bundle|nook cp/);
    await d.client.setConfig('hostDirs.allowed', true);
    await d.client.setConfig('rwHostDirs.allowed', false);
  });
});
