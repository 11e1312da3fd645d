import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/util/proc.js';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

describe('managed encrypted volumes (real ext4, real fscrypt, real mounts)', () => {
  let d: TestDaemon;
  let keyDir: string;
  const marker = `PLAINTEXT-MARKER-${Date.now()}`;

  before(async () => {
    keyDir = mkdtempSync('/tmp/nook-masterkey-');
    d = await startDaemon({ NOOK_MASTER_KEY_FILE: join(keyDir, 'master.key') });
  });
  after(async () => {
    await d.teardown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  const image = (id: string): string => join(d.stateDir, 'volumes', `${id}.ext4`);
  const imageHas = (id: string, text: string): Promise<boolean> => run(['grep', '-c', text, image(id)], { allowFail: true }).then((r) => r.stdout.trim() !== '0' && r.code === 0);

  it('creates a locked volume, with its key wrapped by a master key outside the state dir', async () => {
    const v = await d.client.volumes.create('agent-cache', { sizeMiB: 64 });
    assert.deepEqual([v.state, v.sizeMiB, v.mountedIn], ['locked', 64, null]);
    assert.equal(statSync(join(keyDir, 'master.key')).mode & 0o777, 0o600);
    await rejectsWith(d.client.volumes.create('agent-cache', { sizeMiB: 64 }), 'NAME_TAKEN');
    await rejectsWith(d.client.volumes.create('a/b', { sizeMiB: 64 }), 'INVALID_NAME');
    await rejectsWith(d.client.volumes.create('zero', { sizeMiB: 0 }), 'INVALID_ARGUMENT');
    await rejectsWith(d.client.volumes.create('huge', { sizeMiB: 16 * 1024 * 1024 }), 'NO_SPACE');
  });

  it('mounts only when unlocked, into a running sandbox, owned by its root; single-attach', async () => {
    const sb = await d.client.sandboxes.create({ name: 'holder', image: 'minimal' });
    const e = await rejectsWith(sb.volumes.mount('agent-cache', '/cache', { rw: true }), 'VOLUME_LOCKED');
    assert.match(e.hint ?? '', /nook volume unlock agent-cache/);
    assert.equal((await d.client.volumes.unlock('agent-cache')).state, 'unlocked');
    const m = await sb.volumes.mount('agent-cache', '/cache', { rw: true });
    assert.deepEqual(m.mountedIn, { sandbox: 'holder', path: '/cache', rw: true });
    const r = await sb.exec(['sh', '-c', `echo ${marker} > /cache/secret.txt && stat -c "%u %g" /cache/secret.txt && sync`]);
    assert.equal(r.stdout, '0 0\n', r.stderr);
    const other = await d.client.sandboxes.create({ name: 'other', image: 'minimal' });
    const busy = await rejectsWith(other.volumes.mount('agent-cache', '/c'), 'VOLUME_IN_USE');
    assert.match(busy.message, /holder/);
    await rejectsWith(d.client.volumes.lock('agent-cache'), 'VOLUME_IN_USE');
    const ro = await d.client.volumes.create('ro-vol', { sizeMiB: 32 });
    await d.client.volumes.unlock(ro.name);
    await other.volumes.mount('ro-vol', '/ro');
    assert.notEqual((await other.exec(['sh', '-c', 'echo x > /ro/f'])).exitCode, 0, 'read-only unless rw');
    await d.client.volumes.lock('ro-vol', { force: true });
    await other.destroy();
  });

  it('lock removes the key: the image holds only ciphertext; unlock brings the data back', async () => {
    const v = await d.client.volumes.get('agent-cache');
    const sb = await d.client.sandboxes.get('holder');
    await sb.volumes.unmount('/cache');
    assert.equal((await d.client.volumes.lock('agent-cache')).state, 'locked');
    assert.equal(await imageHas(v.id, marker), false, 'no plaintext in the image when locked');
    await d.client.volumes.unlock('agent-cache');
    await sb.volumes.mount('agent-cache', '/cache');
    assert.equal((await sb.exec(['cat', '/cache/secret.txt'])).stdout, `${marker}\n`);
  });

  it('a holder that stops releases the volume; destroy releases it with data kept', async () => {
    const sb = await d.client.sandboxes.get('holder');
    await sb.stop();
    assert.equal((await d.client.volumes.get('agent-cache')).mountedIn, null);
    const next = await d.client.sandboxes.create({ name: 'next', image: 'minimal' });
    await next.volumes.mount('agent-cache', '/data', { rw: true });
    assert.equal((await next.exec(['cat', '/data/secret.txt'])).stdout, `${marker}\n`);
    await next.destroy();
    assert.equal((await d.client.volumes.get('agent-cache')).mountedIn, null);
  });

  it('mounts declared volumes (-v) whenever compute starts, and refuses a locked one without leaving anything', async () => {
    const cli = await d.cli(['create', '--name', 'declared', '--image', 'minimal', '-v', 'agent-cache:/vol:rw']);
    assert.equal(cli.code, 0, cli.stderr);
    const sb = await d.client.sandboxes.get('declared');
    assert.equal((await sb.exec(['cat', '/vol/secret.txt'])).stdout, `${marker}\n`);
    await sb.stop();
    await sb.resume();
    assert.equal((await sb.exec(['cat', '/vol/secret.txt'])).stdout, `${marker}\n`, 'mounted again on resume');
    await sb.destroy();
    await d.client.volumes.create('locked-one', { sizeMiB: 32 });
    await rejectsWith(d.client.sandboxes.create({ name: 'needs-locked', image: 'minimal', volumes: [{ volume: 'locked-one', guest: '/x' }] }), 'VOLUME_LOCKED');
    assert.ok(!(await d.client.sandboxes.list()).some((s) => s.name === 'needs-locked'), 'a failed create leaves no sandbox');
    await d.client.volumes.remove('locked-one');
  });

  it('refuses to unlock with the wrong master key, and host directories that are not encrypted', async () => {
    const v = await d.client.volumes.create('keyed', { sizeMiB: 32 });
    const keyFile = join(keyDir, 'master.key');
    const real = readFileSync(keyFile);
    writeFileSync(keyFile, Buffer.alloc(32, 7));
    const e = await rejectsWith(d.client.volumes.unlock('keyed'), 'INVALID_ARGUMENT');
    assert.match(e.message, /does not unwrap/);
    writeFileSync(keyFile, real);
    assert.equal((await d.client.volumes.get(v.name)).state, 'locked');
    await d.client.volumes.remove('keyed');

    const sb = await d.client.sandboxes.create({ name: 'hostdir', image: 'minimal' });
    const plain = mkdtempSync('/tmp/nook-plain-');
    try {
      await rejectsWith(sb.volumes.mount('project-data', '/data', { host: plain }), 'NOT_ENCRYPTED');
      // An fscrypt-encrypted host directory (on its own ext4 image) is accepted.
      const img = join(plain, 'enc.img');
      const mnt = join(plain, 'mnt');
      mkdirSync(mnt);
      await run(['truncate', '-s', '32M', img]);
      await run(['mkfs.ext4', '-q', '-O', 'encrypt', img]);
      await run(['mount', '-o', 'loop', img, mnt]);
      try {
        const helper = join(d.stateDir, 'bin', 'nook-init');
        const id = (await run([helper, 'fscrypt', 'add-key', mnt], { input: Buffer.alloc(64, 3) })).stdout.trim();
        mkdirSync(join(mnt, 'data'));
        await run([helper, 'fscrypt', 'set-policy', join(mnt, 'data'), id]);
        writeFileSync(join(mnt, 'data', 'proj.txt'), 'project');
        await sb.volumes.mount('project-data', '/data', { host: join(mnt, 'data') });
        assert.equal((await sb.exec(['cat', '/data/proj.txt'])).stdout, 'project');
        await sb.destroy();
        await run([helper, 'fscrypt', 'remove-key', mnt, id], { allowFail: true });
      } finally {
        await run(['umount', '-l', mnt], { allowFail: true });
      }
    } finally {
      rmSync(plain, { recursive: true, force: true });
    }
  });

  it('done unmounts and locks the sandbox\'s volumes; a crash never leaves a volume unlocked and unrecorded', async () => {
    const sb = await d.client.sandboxes.create({ name: 'job', image: 'minimal' });
    await sb.volumes.mount('agent-cache', '/cache', { rw: true });
    await d.restart();
    assert.equal((await d.client.volumes.get('agent-cache')).state, 'unlocked', 'as the database says');
    assert.equal((await sb.exec(['cat', '/cache/secret.txt'])).stdout, `${marker}\n`);
    const report = await sb.done();
    assert.deepEqual(report.volumesLocked, ['agent-cache']);
    assert.deepEqual(report.unlockedVolumes, []);
    assert.equal(report.clean, true);
    assert.equal((await d.client.volumes.get('agent-cache')).state, 'locked');
    const v = await d.client.volumes.get('agent-cache');
    assert.equal(await imageHas(v.id, marker), false);
    const removed = await d.client.volumes.remove('agent-cache');
    assert.equal(removed.name, 'agent-cache');
    assert.ok(!existsSync(image(v.id)));
    await d.client.volumes.remove('ro-vol');
  });
});
