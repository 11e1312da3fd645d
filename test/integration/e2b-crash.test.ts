/**
 * The daemon dies (SIGKILL) under a command streaming through E2B's SDK: the SDK's stream
 * ends with an error within a bound (no hang), and after a restart the sandbox is still
 * there: listed by Sandbox.list, connectable, and running new commands.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from 'e2b';
import type { TestDaemon } from '../helpers/daemon.js';
import { startE2bDaemon } from '../helpers/e2b.js';

/** How long the SDK may take to notice its daemon is gone. */
const STREAM_END_WITHIN_MS = 15_000;

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

describe('E2B front: the daemon crashes mid-stream', () => {
  let d: TestDaemon;
  let opts: { apiUrl: string; sandboxUrl: string; apiKey: string };
  let sbx: Sandbox;

  before(async () => {
    ({ d, opts } = await startE2bDaemon());
    sbx = await Sandbox.create({ ...opts, timeoutMs: 600_000, metadata: { suite: 'e2b-crash' } });
  });
  after(async () => {
    await d.teardown();
  });

  it('the SDK stream ends with an error, and the sandbox survives the restart (listed, runs a new command)', async () => {
    const seen: string[] = [];
    let first: () => void = () => undefined;
    const flowing = new Promise<void>((r) => (first = r));
    const handle = await sbx.commands.run('i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.1; done', {
      background: true,
      timeoutMs: 0,
      onStdout: (s) => {
        seen.push(s);
        first();
      },
    });
    await within(flowing, 10_000, 'the first output');
    await d.kill9();
    const killedAt = Date.now();
    const outcome = await within(
      handle.wait().then(
        () => 'resolved',
        (e: unknown) => e,
      ),
      STREAM_END_WITHIN_MS,
      'the SDK stream after SIGKILL',
    );
    assert.ok(outcome instanceof Error, `the stream ended without an error: ${String(outcome)}`);
    process.stdout.write(`# stream ended ${Date.now() - killedAt} ms after SIGKILL with ${outcome.name}: ${outcome.message.slice(0, 120)}\n`);
    assert.ok(seen.join('').includes('tick 1'));

    await d.start();
    const listed = await Sandbox.list({ ...opts, query: { metadata: { suite: 'e2b-crash' } } }).nextItems();
    assert.deepEqual(
      listed.map((s) => [s.sandboxId, s.state]),
      [[sbx.sandboxId, 'running']],
    );
    const again = await Sandbox.connect(sbx.sandboxId, { ...opts });
    const r = await again.commands.run('echo "$(id -un) after the crash"');
    assert.equal(r.stdout, 'user after the crash\n');
    assert.equal((await sbx.commands.run('echo same handle')).stdout, 'same handle\n');
  });
});
