import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

describe('copy in and out, file verbs', () => {
  let d: TestDaemon;
  let sb: Sandbox;
  let host: string;

  before(async () => {
    d = await startDaemon();
    sb = await d.client.sandboxes.create({ name: 'files', image: 'minimal' });
    host = mkdtempSync('/tmp/nook-files-');
  });
  after(async () => {
    await d.teardown();
    rmSync(host, { recursive: true, force: true });
  });

  it('copies a file in and out with the CLI, byte for byte, without setuid bits', async () => {
    const data = randomBytes(300_000);
    writeFileSync(join(host, 'task.bin'), data, { mode: 0o640 });
    const cin = await d.cli(['cp', join(host, 'task.bin'), 'files:/work/task.bin']);
    assert.equal(cin.code, 0, cin.stderr);
    const inside = await sb.exec(['sh', '-c', 'sha256sum /work/task.bin | cut -d" " -f1; stat -c "%a %u" /work/task.bin']);
    assert.equal(inside.stdout, `${createHash('sha256').update(data).digest('hex')}\n640 0\n`);
    await sb.exec(['sh', '-c', 'cp /work/task.bin /work/tool && chmod 4755 /work/tool']);
    const out = await d.cli(['cp', 'files:/work/tool', join(host, 'tool')]);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(readFileSync(join(host, 'tool')), data);
    assert.equal(statSync(join(host, 'tool')).mode & 0o7777, 0o755, 'setuid does not survive copy-out');
  });

  it('bounds what comes out and writes nothing past the bound', async () => {
    await sb.exec(['sh', '-c', 'head -c 2000000 /dev/zero > /work/big']);
    const r = await d.cli(['cp', '--max-bytes', '1000', 'files:/work/big', join(host, 'big')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /more than the limit of 1000 \[PAYLOAD_TOO_LARGE\]/);
    assert.ok(!existsSync(join(host, 'big')));
    await rejectsWith(sb.files.read('/work/big', { maxBytes: 1000 }), 'PAYLOAD_TOO_LARGE');
    assert.equal((await sb.files.read('/work/big', { maxBytes: 2_000_000 })).length, 2_000_000);
  });

  it('never follows a sandbox symlink to a host file, nor a host symlink at the destination', async () => {
    const secret = join(host, `host-secret-${Date.now()}`);
    writeFileSync(secret, 'host only');
    await sb.exec(['ln', '-s', secret, '/work/evil']);
    const r = await d.cli(['cp', 'files:/work/evil', join(host, 'stolen')]);
    assert.notEqual(r.code, 0, 'the link resolves inside the sandbox, where that path does not exist');
    assert.ok(!existsSync(join(host, 'stolen')));
    const link = await sb.files.stat('/work/evil');
    assert.deepEqual([link.type, link.target], ['symlink', secret]);

    const victim = join(host, 'victim');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, join(host, 'dest-link'));
    await sb.exec(['sh', '-c', 'echo payload > /work/payload']);
    assert.equal((await d.cli(['cp', 'files:/work/payload', join(host, 'dest-link')])).code, 0);
    assert.equal(readFileSync(victim, 'utf8'), 'untouched');
    assert.ok(!lstatSync(join(host, 'dest-link')).isSymbolicLink(), 'the link was replaced, not followed');
    assert.equal(readFileSync(join(host, 'dest-link'), 'utf8'), 'payload\n');
  });

  it('reads, writes, lists, makes and removes inside the sandbox', async () => {
    await sb.files.mkdir('/work/dir');
    const info = await sb.files.write('/work/dir/a.txt', 'hello', { mode: 0o600 });
    assert.deepEqual([info.type, info.size, info.mode, info.uid], ['file', 5, 0o600, 0]);
    assert.equal((await sb.files.read('/work/dir/a.txt')).toString(), 'hello');
    assert.deepEqual((await sb.files.list('/work/dir')).map((f) => f.name), ['a.txt']);
    await rejectsWith(sb.files.read('/work/nope'), 'FILE_NOT_FOUND');
    await rejectsWith(sb.files.read('/work/dir'), 'INVALID_ARGUMENT');
    await rejectsWith(sb.files.read('relative/path'), 'INVALID_ARGUMENT');
    await rejectsWith(sb.files.remove('/work/dir'), 'RUNTIME_ERROR');
    await sb.files.remove('/work/dir', { recursive: true });
    await rejectsWith(sb.files.stat('/work/dir'), 'FILE_NOT_FOUND');
    const ls = await d.cli(['fs', 'ls', 'files', '/work']);
    assert.match(ls.stdout, /^MODE\s+UID\s+GID\s+SIZE\s+NAME/);
    assert.match(ls.stdout, /evil -> /);
    const cat = await d.cli(['fs', 'cat', 'files', '/work/payload']);
    assert.equal(cat.stdout, 'payload\n');
    const w = await d.cli(['fs', 'write', 'files', '/work/from-stdin'], { input: 'piped' });
    assert.equal(w.code, 0, w.stderr);
    assert.equal((await sb.files.read('/work/from-stdin')).toString(), 'piped');
  });

  it('collects declared outputs when a one-shot run ends', async () => {
    const dir = join(host, 'outputs');
    const r = await d.cli(['run', '--image', 'minimal', '--output', '/work/result.json', '--output', '/work/missing', '--output-dir', host, '--', 'sh', '-c', 'echo \'{"ok":true}\' > /work/result.json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(host, 'result.json'), 'utf8'), '{"ok":true}\n');
    assert.match(r.stderr, /output \/work\/missing not collected/);
    assert.ok(!existsSync(dir));
    const sdk = await d.client.run('echo data > /work/o.txt', { image: 'minimal', outputs: ['/work/o.txt'] });
    assert.equal(Buffer.from(sdk.outputs?.[0]?.data ?? '', 'base64').toString(), 'data\n');
  });

  it('works on a paused sandbox (resumed first) and records transfers in the audit log', async () => {
    await sb.stop();
    await sb.files.write('/work/while-paused', 'x');
    assert.equal((await sb.refresh()).state, 'running');
    const rec = (await d.client.audit.list({ action: 'writeFile' })).at(-1);
    assert.deepEqual(rec?.result.file, { path: '/work/while-paused', bytes: 1, sha256: createHash('sha256').update('x').digest('hex'), direction: 'in' });
  });
});
