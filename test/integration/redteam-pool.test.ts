/**
 * Red team, warm pool: the image of a pool removed (refused) or rebuilt while members are
 * ready (the old members must go, not run on unlisted and uncounted), a daemon SIGKILLed
 * while a member is being started (its container, cgroups and subvolume go at the restart), and `nook daemon stop` in the
 * middle of a flood of one-shot runs with a pool filling (the graceful stop gives up after
 * 3 s): nothing of any run or member is left once the next daemon has started.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { resolvePaths } from '../../src/core/paths.js';
import { run } from '../../src/util/proc.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

const IMAGE = 'minimal';

describe('red team: warm pool', () => {
  let d: TestDaemon;
  let crunRoot: string;
  let storageDir: string;

  const containers = async (): Promise<string[]> => (await run(['crun', '--root', crunRoot, 'list', '-q'], { allowFail: true })).stdout.split('\n').filter(Boolean);
  /** Containers nobody lists: pool members. */
  const members = async (): Promise<string[]> => {
    const listed = new Set((await d.client.sandboxes.list()).map((s) => s.id));
    return (await containers()).filter((id) => !listed.has(id));
  };
  /** Whatever the host holds for a sandbox id: container, cgroup dirs, files. */
  const traces = async (id: string): Promise<string[]> => {
    const found = await run(['find', '/sys/fs/cgroup', storageDir, '-name', id], { allowFail: true });
    return [...((await containers()).includes(id) ? [`container ${id}`] : []), ...found.stdout.split('\n').filter(Boolean)];
  };
  /** Sandbox ids with anything on the host (files under the storage dir). */
  const idsOnDisk = async (): Promise<string[]> => {
    const found = await run(['find', storageDir, '-maxdepth', '4', '-name', 'sb_*'], { allowFail: true });
    return [...new Set(found.stdout.split('\n').filter(Boolean).map((p) => /sb_[A-Za-z0-9]+/.exec(p)?.[0] ?? ''))].filter(Boolean);
  };

  before(async () => {
    d = await startDaemon();
    const paths = resolvePaths({ NOOK_STATE_DIR: d.stateDir });
    crunRoot = paths.runtimeStateDir;
    storageDir = paths.storageDir;
    await d.client.images.build({ preset: IMAGE });
  });
  after(async () => {
    await d.teardown();
  });

  it('attack: a pool\'s image is not removed under it (the pool would start it again); a rebuild drops the old members at once (no container, cgroup or files of them stay)', async () => {
    await d.client.setConfig(`pool.${IMAGE}`, 2);
    await waitFor(async () => (await members()).length === 2, 60_000, 'two ready members');
    const old = await members();
    const rm = await d.cli(['image', 'rm', IMAGE, '--json']);
    assert.notEqual(rm.code, 0, 'refused');
    assert.match(rm.stdout + rm.stderr, /IMAGE_IN_USE/);
    assert.match(rm.stdout + rm.stderr, new RegExp(`nook config set pool\\.${IMAGE} 0`), 'the hint names the fix');
    const image = (await d.client.images.list()).find((i) => i.name === IMAGE);
    assert.ok(image, 'the image is still there');
    const rebuilt = await d.client.images.build({ preset: IMAGE, rebuild: true });
    assert.notEqual(rebuilt.id, image.id);
    await waitFor(async () => (await Promise.all(old.map(traces))).every((t) => t.length === 0), 15_000, `the members of the replaced image to go (left: ${old.join(', ')})`);
    await waitFor(async () => {
      const now = await members();
      return now.length === 2 && !now.some((id) => old.includes(id));
    }, 60_000, 'the pool to refill on the rebuilt image');
    await d.client.setConfig(`pool.${IMAGE}`, 0);
    assert.deepEqual(await members(), []);
    await d.client.images.remove(IMAGE);
  });

  it('crash: a daemon SIGKILLed while a member is starting leaves nothing of it after the restart', async () => {
    await d.client.images.build({ preset: IMAGE });
    const before = new Set(await idsOnDisk());
    await d.client.setConfig(`pool.${IMAGE}`, 1);
    // Kill as soon as the member's files exist (its container is being started, or not yet).
    let starting: string | undefined;
    await waitFor(async () => (starting = (await idsOnDisk()).find((id) => !before.has(id))) !== undefined, 30_000, 'a member being started');
    const readyYet = (await containers()).includes(starting ?? '');
    await d.kill9();
    await d.start();
    await d.client.setConfig(`pool.${IMAGE}`, 0);
    console.log(`killed with member ${starting} ${readyYet ? 'already in crun' : 'not yet in crun'}`);
    assert.deepEqual(await traces(starting ?? ''), [], 'nothing of the half-started member');
    assert.deepEqual(await members(), [], 'no member after size 0');
    assert.deepEqual(await idsOnDisk(), [], 'no sandbox files at all');
  });

  it('crash: `nook daemon stop` in the middle of a flood of runs while the pool fills leaves nothing after the restart', async () => {
    await d.client.setConfig(`pool.${IMAGE}`, 3);
    const ids = new Set<string>();
    const one = (): Promise<unknown> => d.client.run(['sh', '-c', 'echo hi; (sleep 1000 &)'], { image: IMAGE, onSandbox: (sb) => void ids.add(sb.id) }).catch(() => undefined);
    const flood = Promise.all(Array.from({ length: 16 }, one));
    await waitFor(() => ids.size >= 4, 30_000, 'runs under way');
    const proc = d.proc;
    const exited = new Promise((r) => proc?.once('exit', r));
    const stop = await d.cli(['daemon', 'stop', '--json']);
    assert.equal(stop.code, 0, stop.stderr);
    await exited;
    await flood;
    const onDisk = await idsOnDisk();
    console.log(`daemon stopped with ${ids.size} runs started; ${onDisk.length} sandbox ids still on disk`);
    await d.start();
    await d.client.setConfig(`pool.${IMAGE}`, 0);
    const all = [...new Set([...ids, ...onDisk])];
    await waitFor(async () => (await Promise.all(all.map(traces))).every((t) => t.length === 0), 60_000, 'nothing of any run or member');
    assert.deepEqual(await d.client.sandboxes.list(), [], 'no sandbox listed (none stuck destroying)');
    assert.deepEqual(await containers(), [], 'no container');
    assert.deepEqual(await idsOnDisk(), [], 'no sandbox files');
  });
});
