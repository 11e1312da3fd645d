import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BuildSpec } from '../../src/api/schemas.js';
import { rejectsWith } from '../helpers/assert.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

describe('build specs: init, build (cached by content), up', () => {
  let d: TestDaemon;
  let work: string;
  let server: Server;
  let port: number;
  const dir = (): string => join(work, 'worker');
  const writeSpec = (spec: BuildSpec): void => writeFileSync(join(dir(), 'nook.json'), JSON.stringify(spec, null, 2));
  const readSpecFile = (): BuildSpec => JSON.parse(readFileSync(join(dir(), 'nook.json'), 'utf8')) as BuildSpec;

  before(async () => {
    work = mkdtempSync('/tmp/nook-build-');
    d = await startDaemon();
    // What a build step downloads, served on loopback and reached only through the allow-list.
    server = createServer((_req, res) => res.end('fetched-through-proxy\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await d.teardown();
    await new Promise((r) => server.close(r));
    rmSync(work, { recursive: true, force: true });
  });

  it('init writes a spec and a sample task that builds and runs', async () => {
    const r = await d.cli(['init', dir(), '--preset', 'minimal', '--name', 'worker', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const spec = readSpecFile();
    assert.equal(spec.base, 'minimal');
    assert.deepEqual(spec.cmd, ['sh', 'task.sh']);
    assert.equal((await d.cli(['init', dir(), '--preset', 'minimal'])).code, 1, 'an existing spec is not overwritten');
  });

  it('builds in a builder sandbox with egress only to the listed hosts; step cache is hidden from image ls', async () => {
    mkdirSync(join(dir(), 'data'), { recursive: true });
    writeFileSync(join(dir(), 'data', 'input.txt'), 'input\n');
    writeSpec({
      ...readSpecFile(),
      env: { GREETING: 'hi' },
      allowHosts: [`127.0.0.1:${port}`],
      run: ['sh -n task.sh', `wget -q -O /work/app/fetched.txt http://127.0.0.1:${port}/file`, 'echo "$GREETING" > /work/app/greeting'],
    });
    const logs: string[] = [];
    const r = await d.client.builds.run(dir(), { onLog: (e) => logs.push(e.text) });
    assert.equal(r.upToDate, false);
    assert.deepEqual(
      r.steps.map((s) => [s.kind, s.cached]),
      [['copy', false], ['run', false], ['run', false], ['run', false]],
    );
    assert.equal(r.image.name, 'worker');
    assert.deepEqual(r.image.config.cmd, ['sh', 'task.sh']);
    assert.equal(r.image.config.cwd, '/work/app');
    const sb = await d.client.sandboxes.create({ name: 'check', image: 'worker' });
    assert.equal((await sb.exec(['sh', '-c', 'cat fetched.txt greeting data/input.txt && sh task.sh'])).stdout.split('\n').slice(0, 3).join('\n'), 'fetched-through-proxy\nhi\ninput');
    await sb.destroy();
    assert.ok(!(await d.client.images.list()).some((i) => i.name.startsWith('build-cache-')), 'the step cache is not listed by default');
    assert.equal((await d.client.images.list({ all: true })).filter((i) => i.name.startsWith('build-cache-')).length, 4);
    assert.deepEqual((await d.client.sandboxes.list()).map((s) => s.name), [], 'no builder left behind');
  });

  it('an unchanged spec is up to date at once; a changed step reruns from there on', async () => {
    const same = await d.client.builds.run(dir());
    assert.equal(same.upToDate, true);
    const spec = readSpecFile();
    writeSpec({ ...spec, run: [...(spec.run ?? []).slice(0, 2), 'echo changed > /work/app/greeting'] });
    const changed = await d.client.builds.run(dir());
    assert.deepEqual(
      changed.steps.map((s) => s.cached),
      [true, true, true, false],
    );
    // A changed file in the context invalidates its copy step and everything after it.
    writeFileSync(join(dir(), 'data', 'input.txt'), 'input v2\n');
    const recopied = await d.client.builds.run(dir());
    assert.deepEqual(
      recopied.steps.map((s) => s.cached),
      [false, false, false, false],
    );
  });

  it('a failing step or a denied host fails the build with the step and its output; the old image stays', async () => {
    const before = await d.client.images.get('worker');
    const spec = readSpecFile();
    writeSpec({ ...spec, run: [...(spec.run ?? []), 'echo about to fail; exit 3'] });
    await rejectsWith(d.client.builds.run(dir()), 'IMAGE_BUILD_FAILED', /step 5 .*exited 3[\s\S]*about to fail/);
    writeSpec({ ...spec, run: [...(spec.run ?? []), `wget -q -O - http://127.0.0.2:${port}/`] });
    await rejectsWith(d.client.builds.run(dir()), 'IMAGE_BUILD_FAILED', /step 5/);
    assert.equal((await d.client.images.get('worker')).id, before.id);
    assert.deepEqual((await d.client.sandboxes.list()).map((s) => s.name), []);
    writeSpec(spec);
    writeSpec({ ...spec, base: 'no-such-image' });
    await rejectsWith(d.client.builds.run(dir()), 'IMAGE_NOT_FOUND');
    writeFileSync(join(dir(), 'nook.json'), '{"name": "worker", "base": ');
    await rejectsWith(d.client.builds.run(dir()), 'INVALID_ARGUMENT', /nook.json/);
    writeSpec({ ...spec, copy: [{ from: '../../etc', to: '/x' }] });
    await rejectsWith(d.client.builds.run(dir()), 'INVALID_ARGUMENT', /outside|not in the build context/);
    writeSpec(spec);
  });

  it('up builds if needed, starts the spec\'s cmd as main, and is idempotent', async () => {
    const up = await d.cli(['up', dir(), '--name', 'worker-1', '--json', '-q']);
    assert.equal(up.code, 0, up.stderr);
    const out = JSON.parse(up.stdout) as { action: string; mainProcess: string };
    assert.equal(out.action, 'created');
    assert.ok(out.mainProcess);
    const sb = await d.client.sandboxes.get('worker-1');
    await waitFor(async () => (await sb.processes.get('main')).state === 'exited', 10_000, 'main to finish');
    assert.match((await d.cli(['logs', 'worker-1', 'main'])).stdout, /hello from a nook sandbox/);
    const again = await d.cli(['up', dir(), '--name', 'worker-1', '--json', '-q']);
    assert.equal((JSON.parse(again.stdout) as { action: string }).action, 'unchanged');
    writeFileSync(join(dir(), 'task.sh'), 'echo version two\n');
    const refused = await d.cli(['up', dir(), '--name', 'worker-1', '-q']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--replace/);
    const replaced = await d.cli(['up', dir(), '--name', 'worker-1', '--replace', '--json', '-q']);
    assert.equal((JSON.parse(replaced.stdout) as { action: string }).action, 'replaced');
    await waitFor(async () => (await (await d.client.sandboxes.get('worker-1')).processes.get('main')).state === 'exited', 10_000, 'main to finish');
    assert.match((await d.cli(['logs', 'worker-1', 'main'])).stdout, /version two/);
  });

  it('a daemon killed mid-build leaves no builder behind after restart', async () => {
    const spec = readSpecFile();
    writeSpec({ ...spec, run: [...(spec.run ?? []), 'sleep 60'] });
    const building = d.client.builds.run(dir()).catch((e: unknown) => e);
    await waitFor(async () => (await d.client.sandboxes.list()).some((s) => s.name.startsWith('build-')), 20_000, 'the builder');
    await new Promise((r) => setTimeout(r, 500));
    await d.restart();
    assert.ok((await building) instanceof Error);
    assert.ok(!(await d.client.sandboxes.list()).some((s) => s.name.startsWith('build-')), 'the interrupted builder is gone');
    writeSpec(spec);
  });
});
