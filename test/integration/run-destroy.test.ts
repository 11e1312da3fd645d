/**
 * A one-shot run answers as soon as its command's result is known and its sandbox is
 * destroyed after the answer (core/detached-destroys.ts). Proved without timing: from the
 * answer on, the sandbox is `destroying` or gone and refused by every call; the audit chain
 * shows the destroy opened before the run's record and closed after it; a burst never has
 * more than DETACHED_DESTROYS_MAX destroys pending; a daemon killed after the answer leaves
 * nothing once restarted (reconcile); every run's sandbox leaves no container, cgroup or file.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditRecord, Sandbox } from '../../src/api/schemas.js';
import { DETACHED_DESTROYS_MAX } from '../../src/core/detached-destroys.js';
import { resolvePaths } from '../../src/core/paths.js';
import { NookError } from '../../src/api/errors.js';
import { run } from '../../src/util/proc.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

const IMAGE = 'minimal';

describe('one-shot run: destroy after the answer', () => {
  let d: TestDaemon;

  /** Whatever the host holds for a sandbox id: container, cgroup dirs, files. */
  const traces = async (id: string): Promise<string[]> => {
    const paths = resolvePaths({ NOOK_STATE_DIR: d.stateDir });
    const containers = (await run(['crun', '--root', paths.runtimeStateDir, 'list', '-q'], { allowFail: true })).stdout.split('\n');
    const found = await run(['find', '/sys/fs/cgroup', paths.storageDir, '-name', id], { allowFail: true });
    return [...(containers.includes(id) ? [`container ${id}`] : []), ...found.stdout.split('\n').filter(Boolean)];
  };
  const gone = (ids: string[]): Promise<void> =>
    waitFor(async () => (await Promise.all(ids.map(traces))).every((t) => t.length === 0), 60_000, `nothing left of ${ids.join(', ')}`);
  /** What get, ls and exec say about a sandbox: each must be `destroying` or not found. */
  const seenAs = async (id: string): Promise<string[]> => {
    const code = (e: unknown): string => (e instanceof NookError ? e.code : String(e));
    const [got, listed, exec] = await Promise.all([
      d.client.sandboxes.get(id).then((s) => s.data.state as string, code),
      d.client.sandboxes.list().then((l) => l.find((s) => s.id === id)?.data.state ?? 'SANDBOX_NOT_FOUND', code),
      d.client.sandboxes.get(id).then((s) => s.exec(['true']).then(() => 'ran', code), code),
    ]);
    return [got, listed, exec];
  };
  const runTrue = async (argv: string[] = ['sh', '-c', 'echo hi; (sleep 1000 &)']): Promise<{ id: string; stdout: string }> => {
    let sb: Sandbox | undefined;
    const r = await d.client.run(argv, { image: IMAGE, onSandbox: (s) => (sb = s) });
    assert.ok(sb, 'the stream named its sandbox');
    return { id: sb.id, stdout: r.stdout };
  };
  const records = async (): Promise<AuditRecord[]> => {
    const out: AuditRecord[] = [];
    for await (const r of d.client.audit.export()) out.push(r);
    return out;
  };

  before(async () => {
    d = await startDaemon();
    await d.client.images.build({ preset: IMAGE });
  });
  after(async () => {
    await d.teardown();
  });

  for (const pooled of [false, true]) {
    it(`${pooled ? 'pooled' : 'unpooled'}: answers before the destroy ends; from the answer on the sandbox is destroying or gone everywhere; nothing left`, async () => {
      if (pooled) {
        await d.client.setPoolSize(IMAGE, 1);
        await waitFor(async () => (await d.client.pools()).find((p) => p.image === IMAGE)?.ready === 1, 60_000, 'a pool member');
      }
      const takes = (await d.client.pools()).find((p) => p.image === IMAGE)?.takes ?? 0;
      const { id, stdout } = await runTrue();
      const seen = await seenAs(id);
      assert.equal(stdout, 'hi\n');
      assert.equal(((await d.client.pools()).find((p) => p.image === IMAGE)?.takes ?? 0) - takes, pooled ? 1 : 0);
      for (const s of seen) assert.ok(['destroying', 'SANDBOX_NOT_FOUND', 'INVALID_STATE'].includes(s), `right after the answer: ${seen.join(', ')}`);
      assert.notEqual(seen[2], 'ran', 'nothing runs in it after the answer');
      await gone([id]);
      await waitFor(async () => (await seenAs(id)).every((s) => s === 'SANDBOX_NOT_FOUND'), 10_000, 'the sandbox is not found');
      // The audit chain: destroy opened (before the answer), then the run's record, then the destroy's outcome.
      const all = await records();
      const runRec = all.find((r) => r.action === 'run' && r.sandboxId === id && r.outcome === 'ok');
      const opened = all.find((r) => r.action === 'destroySandbox' && r.sandboxId === id && r.outcome === 'started');
      const closed = all.find((r) => r.action === 'destroySandbox' && r.sandboxId === id && r.outcome === 'ok');
      assert.ok(runRec && opened && closed, 'the run and its destroy are both on record');
      assert.ok(opened.seq < runRec.seq && runRec.seq < closed.seq, `destroy opened ${opened.seq}, run ${runRec.seq}, destroy closed ${closed.seq}`);
      assert.equal(closed.inputs.run, runRec.id, 'the destroy names the run it ended');
      if (pooled) await d.client.setPoolSize(IMAGE, 0);
    });
  }

  it(`attack: a burst of runs never has more than ${DETACHED_DESTROYS_MAX} destroys pending, and every sandbox goes`, async () => {
    const burst = 14;
    let maxDestroying = 0;
    let done = false;
    const watcher = (async () => {
      while (!done) {
        const n = (await d.client.sandboxes.list()).filter((s) => s.data.state === 'destroying').length;
        maxDestroying = Math.max(maxDestroying, n);
      }
    })();
    const ids = await Promise.all(Array.from({ length: burst }, () => runTrue(['true']).then((r) => r.id)));
    done = true;
    await watcher;
    assert.equal(new Set(ids).size, burst);
    assert.ok(maxDestroying > 0, 'destroys were seen pending');
    assert.ok(maxDestroying <= DETACHED_DESTROYS_MAX, `at most ${DETACHED_DESTROYS_MAX} pending, saw ${maxDestroying}`);
    await gone(ids);
    assert.deepEqual(await d.client.sandboxes.list(), []);
  });

  it('crash: a daemon killed after the answer, before the destroy ends, leaves nothing once restarted', async () => {
    const { id } = await runTrue();
    await d.kill9();
    const logFrom = d.log.length;
    await d.start();
    assert.match(d.log.slice(logFrom), new RegExp(`reconcile: removed interrupted sandbox.*${id}.*destroying`), 'the row was destroying when the daemon died');
    await gone([id]);
    await assert.rejects(d.client.sandboxes.get(id), (e: unknown) => e instanceof NookError && e.code === 'SANDBOX_NOT_FOUND');
    const destroy = (await records()).filter((r) => r.action === 'destroySandbox' && r.sandboxId === id);
    assert.deepEqual(destroy.map((r) => r.outcome), ['started', 'ok'], 'the destroy opened before the crash, closed by the reconcile');
    assert.equal(destroy[1]?.result.completedBy, 'startup reconcile');
    assert.equal(destroy[1]?.id, destroy[0]?.id.replace(/\.start$/, ''), 'one operation: the outcome carries the opening record\'s receipt');
    assert.equal((await d.client.audit.verify()).ok, true, 'the hash chain is whole');
  });
});
