import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { AuditRecord } from '../../src/api/schemas.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

describe('audit log', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => d.teardown());

  it('returns a receipt from every mutating call and records what happened', async () => {
    const sb = await d.client.sandboxes.create({ name: 'agent', image: 'minimal', env: { API_KEY: 'sk-live-very-secret' } });
    assert.match(sb.data.receipt ?? '', /^rcpt_/);
    const r = await sb.exec(['sh', '-c', 'echo out; exit 2'], { env: { TOKEN: 'another-secret' }, stdin: 'stdin-secret' });
    assert.match(r.receipt ?? '', /^rcpt_/);
    const snap = await sb.snapshots.create({ name: 's1' });
    assert.match(snap.receipt ?? '', /^rcpt_/);
    const stopped = await sb.stop();
    assert.match(stopped.data.receipt ?? '', /^rcpt_/);
    const cli = JSON.parse((await d.cli(['exec', 'agent', '--json', '--', 'true'])).stdout) as { receipt: string };
    assert.match(cli.receipt, /^rcpt_/);
    const destroyed = await sb.destroy({ withSnapshots: true });
    assert.match(destroyed.receipt ?? '', /^rcpt_/);

    const records = await d.client.audit.list({ sandbox: 'agent' });
    assert.deepEqual(
      records.map((x) => x.action),
      ['createSandbox', 'exec', 'createSnapshot', 'stopSandbox', 'exec', 'destroySandbox'],
    );
    const exec = await d.client.audit.get(r.receipt ?? '');
    assert.equal(exec.action, 'exec');
    assert.equal(exec.sandbox, 'agent');
    assert.match(exec.actor, /^unix:.+@.+/);
    assert.equal(exec.result.exitCode, 2);
    assert.deepEqual(exec.result.stdout, { sha256: createHash('sha256').update('out\n').digest('hex'), bytes: 4 });
    assert.equal((exec.inputs.argv as { command: string }).command, 'sh');
    assert.match((exec.inputs.env as Record<string, string>).TOKEN ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.equal((exec.inputs.stdin as { bytes: number }).bytes, 'stdin-secret'.length);
    const failed = await d.client.sandboxes.create({ name: 'Bad Name' }).catch((e: Error & { code?: string }) => e);
    assert.equal((failed as { code?: string }).code, 'INVALID_NAME');
    const last = (await d.client.audit.list()).at(-1) as AuditRecord;
    assert.deepEqual([last.action, last.outcome, last.errorCode], ['createSandbox', 'error', 'INVALID_NAME']);
  });

  it('never stores secret values', async () => {
    let exported = '';
    for await (const r of d.client.audit.export()) exported += JSON.stringify(r) + '\n';
    assert.ok(exported.length > 0);
    for (const secret of ['sk-live-very-secret', 'another-secret', 'stdin-secret']) assert.ok(!exported.includes(secret), `${secret} leaked into the audit log`);
  });

  it('verifies an intact chain, and names the first edited, deleted or reordered record', async () => {
    let stored = 0;
    for await (const r of d.client.audit.export()) stored += r ? 1 : 0;
    assert.deepEqual(await d.client.audit.verify(), { ok: true, records: stored });
    const all = await d.client.audit.list({ limit: 10_000 });
    assert.ok(all.length >= 5);
    const dbPath = join(d.stateDir, 'nook.db');
    const tamper = (sql: string, ...args: unknown[]): void => {
      const db = new Database(dbPath);
      db.prepare(sql).run(...args);
      db.close();
    };
    const target = all[2] as AuditRecord;

    // An edit of a recorded outcome.
    tamper("UPDATE audit SET outcome = 'error' WHERE seq = ?", target.seq);
    let v = await d.client.audit.verify();
    assert.equal(v.ok, false);
    assert.deepEqual([v.firstBad?.seq, v.firstBad?.id], [target.seq, target.id]);
    assert.match(v.firstBad?.reason ?? '', /edited/);
    tamper("UPDATE audit SET outcome = 'ok' WHERE seq = ?", target.seq);
    assert.equal((await d.client.audit.verify()).ok, true);

    // Two records swapped (contents and hashes moved together).
    const db = new Database(dbPath);
    const a = db.prepare('SELECT * FROM audit WHERE seq = ?').get(target.seq) as Record<string, unknown>;
    const b = db.prepare('SELECT * FROM audit WHERE seq = ?').get(target.seq + 1) as Record<string, unknown>;
    const put = db.prepare('UPDATE audit SET id = ?, at = ?, action = ?, inputs_json = ?, result_json = ?, prev_hash = ?, hash = ? WHERE seq = ?');
    db.transaction(() => {
      put.run(`${String(b.id)}-tmp`, b.at, b.action, b.inputs_json, b.result_json, b.prev_hash, b.hash, target.seq);
      put.run(a.id, a.at, a.action, a.inputs_json, a.result_json, a.prev_hash, a.hash, target.seq + 1);
      db.prepare('UPDATE audit SET id = ? WHERE seq = ?').run(b.id, target.seq);
    })();
    db.close();
    v = await d.client.audit.verify();
    assert.deepEqual([v.ok, v.firstBad?.seq], [false, target.seq]);
    assert.match(v.firstBad?.reason ?? '', /reordered/);

    const cli = await d.cli(['audit', 'verify']);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, new RegExp(`broken at record ${target.seq}`));
  });

  it('detects a deleted record', async () => {
    const fresh = await startDaemon();
    try {
      const sb = await fresh.client.sandboxes.create({ name: 'x', image: 'minimal' });
      await sb.exec(['true']);
      await sb.stop();
      const records = await fresh.client.audit.list();
      const victim = records[1] as AuditRecord;
      const db = new Database(join(fresh.stateDir, 'nook.db'));
      db.prepare('DELETE FROM audit WHERE seq = ?').run(victim.seq);
      db.close();
      const v = await fresh.client.audit.verify();
      assert.deepEqual([v.ok, v.firstBad?.seq], [false, victim.seq + 1]);
      assert.match(v.firstBad?.reason ?? '', new RegExp(`record ${victim.seq} before it is missing`));
    } finally {
      await fresh.teardown();
    }
  });
});

describe('audit across a crash', () => {
  it('keeps an operation the daemon died in on the record, as started', async () => {
    const d = await startDaemon();
    try {
      const sb = await d.client.sandboxes.create({ name: 'crashy', image: 'minimal' });
      const pending = sb.exec(['sleep', '30'], { timeoutMs: 60_000 }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 500));
      await d.restart();
      await pending;
      const records = await d.client.audit.list({ sandbox: 'crashy' });
      assert.deepEqual(records.map((r) => [r.action, r.outcome]), [['createSandbox', 'ok'], ['exec', 'started']]);
      assert.deepEqual((await d.client.audit.verify()).ok, true);
      await sb.exec(['true']);
      assert.deepEqual((await d.client.audit.list({ sandbox: 'crashy' })).map((r) => r.outcome), ['ok', 'started', 'ok']);
    } finally {
      await d.teardown();
    }
  });
});
