import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

describe('retention, usage, redaction, profiles and host policy', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('redacts env values and credential patterns from output, with a count', async () => {
    const sb = await d.client.sandboxes.create({ name: 'red', image: 'minimal', env: { API_KEY: 'live-key-123456' } });
    const cmd = 'echo key=$API_KEY tok=$TOK; echo AKIAABCDEFGHIJKLMNOP; echo "password=hunter22" >&2';
    const plain = await sb.exec(['sh', '-c', cmd], { env: { TOK: 'tok-abcdef' } });
    assert.match(plain.stdout, /live-key-123456/);
    const r = await sb.exec(['sh', '-c', cmd], { env: { TOK: 'tok-abcdef' }, redact: true });
    assert.equal(r.stdout, 'key=[REDACTED] tok=[REDACTED]\n[REDACTED]\n');
    assert.equal(r.stderr, 'password=[REDACTED]\n');
    assert.equal(r.redactions, 4);
    const cli = await d.cli(['exec', 'red', '--redact', '--', 'sh', '-c', 'echo $API_KEY']);
    assert.equal(cli.stdout, '[REDACTED]\n');
  });

  it('accounts compute seconds and stored bytes', async () => {
    const sb = await d.client.sandboxes.create({ name: 'meter', image: 'minimal' });
    await sb.exec(['sh', '-c', 'head -c 3000000 /dev/urandom > /work/data; sleep 1']);
    await sb.snapshots.create({ name: 'm' });
    await sb.stop();
    const u = await sb.usage();
    assert.ok(u.computeSeconds >= 1 && u.computeSeconds < 30, `compute ${u.computeSeconds}s`);
    assert.ok(u.storedBytes.files >= 3_000_000, `files ${u.storedBytes.files}`);
    await new Promise((r) => setTimeout(r, 1500)); // the snapshot's size is measured shortly after
    assert.ok((await sb.usage()).storedBytes.snapshots >= 3_000_000);
    const paused = (await sb.usage()).computeSeconds;
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal((await sb.usage()).computeSeconds, paused, 'the clock stops while paused');
  });

  it('lists retained state and runs the done checklist', async () => {
    const sb = await d.client.sandboxes.get('meter');
    await sb.resume();
    await sb.expose(8000);
    await d.client.volumes.create('kept', { sizeMiB: 32 });
    const items = await d.client.retained();
    const kinds = new Set(items.map((i) => `${i.kind} ${i.name}`));
    for (const k of ['sandbox meter', 'sandbox red', 'snapshot meter@m', 'image minimal', 'volume kept', 'audit audit log']) assert.ok(kinds.has(k), `retained lists ${k}`);
    const vol = items.find((i) => i.kind === 'volume');
    assert.ok((vol?.sizeBytes ?? 0) > 0 && /32 MiB, not mounted/.test(vol?.detail ?? ''), JSON.stringify(vol));
    assert.match(items.find((i) => i.kind === 'audit')?.detail ?? '', /^\d+ record\(s\)/);
    // gc never takes volumes or the audit log: they are not its kinds.
    await rejectsWith(d.client.gc({ olderThanMs: 0, kinds: ['volume' as 'image'] }), 'INVALID_ARGUMENT');
    const wouldGo = await d.client.gc({ olderThanMs: 0, dryRun: true });
    assert.ok(!wouldGo.deleted.some((i) => i.kind === 'volume' || i.kind === 'audit'), JSON.stringify(wouldGo.deleted));
    await d.client.volumes.remove('kept');
    const report = await sb.done();
    assert.equal(report.stopped, true);
    assert.deepEqual(report.unexposed, [8000]);
    assert.deepEqual(report.snapshots.map((s) => s.name), ['m']);
    assert.ok(report.receipts.length >= 4 && report.receipts.every((r) => r.startsWith('rcpt_')));
    assert.ok(report.remaining.some((i) => i.kind === 'sandbox') && report.remaining.some((i) => i.kind === 'snapshot'));
    assert.equal(report.clean, true);
    assert.equal((await sb.refresh()).state, 'paused');
    const cli = await d.cli(['done', 'meter']);
    assert.equal(cli.code, 0);
    assert.match(cli.stdout, /receipts to store with the job \(\d+\):\nrcpt_/);
  });

  it('gc deletes old state by kind, and a dry run only lists it', async () => {
    const dry = await d.client.gc({ olderThanMs: 0, kinds: ['snapshot', 'sandbox'], dryRun: true });
    assert.ok(dry.deleted.some((i) => i.name === 'meter@m'));
    assert.ok(dry.deleted.some((i) => i.name === 'meter'), 'paused sandboxes are collected');
    assert.ok(!dry.deleted.some((i) => i.name === 'red'), 'running sandboxes are kept');
    assert.equal((await d.client.snapshots.list('meter')).length, 1, 'a dry run deletes nothing');
    const real = await d.client.gc({ olderThanMs: 0, kinds: ['snapshot'] });
    assert.deepEqual(real.deleted.map((i) => i.name), ['meter@m']);
    assert.equal((await d.client.snapshots.list('meter')).length, 0);
    // Every kind but the registry blob cache, which is shared by every state dir on the host
    // and may hold blobs an earlier run pulled more than an hour ago.
    const ownKinds = ['sandbox', 'snapshot', 'image', 'logs'] as const;
    assert.equal((await d.client.gc({ olderThanMs: 3_600_000, kinds: [...ownKinds] })).deleted.length, 0, 'nothing is an hour old');
  });

  it('profiles have drafts and immutable published versions; a sandbox records the version', async () => {
    await d.client.profiles.save('dev', { persistent: false, memoryMiB: 256, allowHosts: ['pypi.org'] });
    await rejectsWith(d.client.sandboxes.create({ name: 'p0', image: 'minimal', profile: 'dev' }), 'INVALID_STATE');
    const v1 = await d.client.profiles.publish('dev');
    assert.deepEqual(v1.published.map((p) => p.version), [1]);
    assert.equal(v1.draft, null);
    await d.client.profiles.save('dev', { persistent: true, memoryMiB: 512 });
    const p1 = await d.client.sandboxes.create({ name: 'p1', image: 'minimal', profile: 'dev' });
    assert.deepEqual([p1.data.profile, p1.data.persistent, p1.data.limits.memoryMiB, p1.data.network.allow], ['dev@1', false, 256, ['pypi.org']]);
    await d.client.profiles.publish('dev');
    const p2 = await d.client.sandboxes.create({ name: 'p2', image: 'minimal', profile: 'dev', memoryMiB: 300 });
    assert.deepEqual([p2.data.profile, p2.data.persistent, p2.data.limits.memoryMiB], ['dev@2', true, 300], 'the request wins over the profile');
    assert.deepEqual((await d.client.profiles.get('dev')).published.map((p) => p.spec.memoryMiB), [256, 512]);
  });

  it('host settings cannot be loosened: persistence off makes sandboxes non-persistent and says so', async () => {
    await d.client.setConfig('persistence.allowed', false);
    const sb = await d.client.sandboxes.create({ name: 'np', image: 'minimal', profile: 'dev' });
    assert.equal(sb.data.persistent, false);
    assert.deepEqual(sb.data.adjusted, ['created non-persistent: persistence.allowed is false on this host']);
    const cli = await d.cli(['create', '--name', 'np2', '--image', 'minimal']);
    assert.match(cli.stderr, /persistence\.allowed is false/);
    await d.client.setConfig('persistence.allowed', true);

    await d.client.setConfig('network.allowed', false);
    const closed = await d.client.sandboxes.create({ name: 'nonet', image: 'minimal', allowHosts: ['pypi.org'] });
    assert.deepEqual(closed.data.network, { mode: 'none', allow: [] });
    assert.match(closed.data.adjusted.join(), /network\.allowed is false/);
    await rejectsWith(closed.network.allow('pypi.org'), 'POLICY_DENIED');
    await d.client.setConfig('network.allowed', true);
    assert.deepEqual((await d.client.config()).settings, { 'persistence.allowed': true, 'network.allowed': true, 'hostDirs.allowed': true, 'rwHostDirs.allowed': false });
  });
});
