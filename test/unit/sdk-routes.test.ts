import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { Readable, type Duplex } from 'node:stream';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { routes, type RouteDef } from '../../src/api/routes.js';
import {
  Desktop,
  Audit,
  Builds,
  Exposures,
  Files,
  Images,
  InvalidArgumentError,
  Network,
  NookClient,
  NotFoundError,
  pathOf,
  Processes,
  ProcessHandle,
  Profiles,
  Sandbox,
  Sandboxes,
  SandboxSnapshots,
  SandboxVolumes,
  Snapshots,
  Templates,
  Terminals,
  Volumes,
} from '../../src/sdk/index.js';

describe('pathOf', () => {
  it('fills each {param} of the route, encoded', () => {
    assert.equal(pathOf(routes.getSandbox, { ref: 'agent' }), '/v1/sandboxes/agent');
    assert.equal(pathOf(routes.getProcess, { ref: 'a b', proc: 'x/../y' }), '/v1/sandboxes/a%20b/processes/x%2F..%2Fy');
    assert.equal(pathOf(routes.unexpose, { ref: 'sb_1', port: 8080 }), '/v1/sandboxes/sb_1/expose/8080');
    assert.equal(pathOf(routes.health, {}), '/v1/health');
  });
  it('refuses a missing or empty parameter rather than calling another endpoint', () => {
    assert.throws(() => pathOf(routes.getSandbox, { ref: '' }), InvalidArgumentError);
    // @ts-expect-error the route needs proc too: this must not compile
    assert.throws(() => pathOf(routes.getProcess, { ref: 'a' }), InvalidArgumentError);
  });
});

/** A real HTTP server on a unix socket that records what the SDK asks for and answers NOT_FOUND. */
class Recorder {
  readonly calls: { method: string; path: string }[] = [];
  private server: Server | undefined;

  constructor(readonly socket: string) {}

  private record(req: IncomingMessage): void {
    this.calls.push({ method: req.method ?? '', path: new URL(req.url ?? '/', 'http://x').pathname });
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.record(req);
      req.resume();
      req.on('end', () => {
        // create answers a sandbox, so the test has a Sandbox object to call through.
        if (req.method === 'POST' && req.url === '/v1/sandboxes') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'sb_1', name: 'rec', state: 'running' }));
          return;
        }
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'NOT_FOUND', message: 'recorded' }));
      });
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      this.record(req);
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"code":"NOT_FOUND","message":"recorded"}');
    });
    await new Promise<void>((resolve) => this.server?.listen(this.socket, resolve));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** The route of the table this request is for (same method, path matches the template). */
function routeFor(method: string, path: string): string | undefined {
  // Literal paths first: /v1/audit/verify is verifyAudit, not getAudit of receipt "verify".
  const byLiteralness = (Object.entries(routes) as [string, RouteDef][]).sort(([, a], [, b]) => Number(a.path.includes('{')) - Number(b.path.includes('{')));
  for (const [name, def] of byLiteralness) {
    const pattern = new RegExp(`^${def.path.replace(/\{\w+\}/g, '[^/]+')}$`);
    if (def.method.toUpperCase() === method && pattern.test(path)) return name;
  }
  return undefined;
}

async function drain(x: unknown): Promise<void> {
  if (x && typeof x === 'object' && Symbol.asyncIterator in x) {
    for await (const _ of x as AsyncIterable<unknown>) void _;
  } else await x;
}

describe('every SDK call goes to a route of the table, with its method', () => {
  let dir: string;
  let rec: Recorder;
  let client: NookClient;
  let sb: Sandbox;

  before(async () => {
    dir = mkdtempSync('/tmp/nook-sdk-routes-');
    rec = new Recorder(join(dir, 'rec.sock'));
    await rec.start();
    client = new NookClient({ socketPath: rec.socket });
    sb = await client.sandboxes.create({ name: 'rec' });
    writeFileSync(join(dir, 'file'), 'x');
    mkdirSync(join(dir, 'ctx'));
    writeFileSync(join(dir, 'ctx', 'nook.json'), '{}');
  });
  after(async () => {
    await rec.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('covers every public method of every SDK class, and each hits a route', async () => {
    const f = join(dir, 'file');
    const handle = new ProcessHandle(sb.processes, { id: 'p_1' } as ConstructorParameters<typeof ProcessHandle>[1]);
    // Each class's methods, by name: a method added without an entry here fails the test.
    const calls: [object, Record<string, () => unknown>][] = [
      [NookClient.prototype, {
        retained: () => client.retained(), gc: () => client.gc({ olderThanMs: 0 }), config: () => client.config(), setConfig: () => client.setConfig('network.allowed', true),
        setPoolSize: () => client.setPoolSize('python', 2), pools: () => client.pools(),
        health: () => client.health(), consoleLogin: () => client.consoleLogin(), run: () => client.run('true'), shutdown: () => client.shutdown(), events: () => client.events(), openapi: () => client.openapi(),
      }],
      [Sandboxes.prototype, { create: () => client.sandboxes.create(), get: () => client.sandboxes.get('x'), files: () => client.sandboxes.files('x').stat('/a'), list: () => client.sandboxes.list({ labels: { a: 'b' } }), exec: () => client.sandboxes.exec('x', ['true']) }],
      [Sandbox.prototype, {
        exec: () => sb.exec('true'), refresh: () => sb.refresh(), stop: () => sb.stop(), resume: () => sb.resume(), destroy: () => sb.destroy(), recycle: () => sb.recycle(),
        fork: () => sb.fork(), commit: () => sb.commit({ image: 'i' }), usage: () => sb.usage(), done: () => sb.done(), expose: () => sb.expose(80),
      }],
      [Files.prototype, {
        read: () => sb.files.read('/a'), write: () => sb.files.write('/a', 'x'), stat: () => sb.files.stat('/a'), list: () => sb.files.list('/'), mkdir: () => sb.files.mkdir('/d'),
        remove: () => sb.files.remove('/a'), writeTar: () => sb.files.writeTar('/d', Readable.from([Buffer.from('x')])), readTar: () => sb.files.readTar('/a'),
        uploadFile: () => sb.files.uploadFile(f, '/a'), downloadFile: () => sb.files.downloadFile('/a', join(dir, 'out')), uploadDir: () => sb.files.uploadDir(join(dir, 'ctx'), '/d'),
        download: () => sb.files.download('/a', join(dir, 'out2')), fastCopy: () => sb.files.fastCopy({ path: '/a', direction: 'in' }),
      }],
      [Processes.prototype, {
        start: () => sb.processes.start('true'), spawn: () => sb.processes.spawn('true'), handle: () => sb.processes.handle('p'), list: () => sb.processes.list(),
        get: () => sb.processes.get('p'), kill: () => sb.processes.kill('p'), logs: () => sb.processes.logs('p'),
      }],
      [ProcessHandle.prototype, { refresh: () => handle.refresh(), kill: () => handle.kill(), logs: () => handle.logs(), wait: () => handle.wait() }],
      [Network.prototype, { allow: () => sb.network.allow('a'), deny: () => sb.network.deny('a'), set: () => sb.network.set({ mode: 'none' }), show: () => sb.network.show(), suggest: () => sb.network.suggest() }],
      [Exposures.prototype, { add: () => sb.exposures.add(80), list: () => sb.exposures.list(), remove: () => sb.exposures.remove(80) }],
      [SandboxSnapshots.prototype, { create: () => sb.snapshots.create({ name: 's' }), list: () => sb.snapshots.list(), delete: () => sb.snapshots.delete('s') }],
      [SandboxVolumes.prototype, { mount: () => sb.volumes.mount('v', '/v'), unmount: () => sb.volumes.unmount('/v'), list: () => sb.volumes.list() }],
      [Desktop.prototype, {
        info: () => sb.desktop.info(), screenshot: () => sb.desktop.screenshot(), click: () => sb.desktop.click(1, 1), move: () => sb.desktop.move(1, 1),
        drag: () => sb.desktop.drag([1, 1], [2, 2]), scroll: () => sb.desktop.scroll('down'), type: () => sb.desktop.type('x'), key: () => sb.desktop.key('Return'),
        cursor: () => sb.desktop.cursor(), windows: () => sb.desktop.windows(), launch: () => sb.desktop.launch('xterm'), waitIdle: () => sb.desktop.waitIdle(),
        restart: () => sb.desktop.restart(), url: () => sb.desktop.url(),
      }],
      [Terminals.prototype, { create: () => sb.pty.create({ cols: 80, rows: 24, onData: () => undefined }) }],
      [Images.prototype, {
        list: () => client.images.list(), get: () => client.images.get('i'), build: () => client.images.build({ preset: 'minimal' }), pull: () => client.images.pull('127.0.0.1:1/a:b'),
        ensure: () => client.images.ensure('i'), export: () => client.images.export('i', join(dir, 'img.tar')), import: () => client.images.import(f, { name: 'i' }), remove: () => client.images.remove('i'),
      }],
      [Templates.prototype, { list: () => client.templates.list() }],
      [Builds.prototype, { run: () => client.builds.run(join(dir, 'ctx')) }],
      [Volumes.prototype, {
        create: () => client.volumes.create('v', { sizeMiB: 16 }), list: () => client.volumes.list(), get: () => client.volumes.get('v'), unlock: () => client.volumes.unlock('v'),
        lock: () => client.volumes.lock('v'), remove: () => client.volumes.remove('v'),
      }],
      [Profiles.prototype, { list: () => client.profiles.list(), get: () => client.profiles.get('p'), save: () => client.profiles.save('p', {}), publish: () => client.profiles.publish('p') }],
      [Audit.prototype, { list: () => client.audit.list(), get: () => client.audit.get('r'), verify: () => client.audit.verify(), export: () => client.audit.export() }],
      [Snapshots.prototype, { list: () => client.snapshots.list(), delete: () => client.snapshots.delete('a', 's') }],
    ];
    const used = new Set<string>();
    for (const [proto, methods] of calls) {
      const own = Object.getOwnPropertyNames(proto).filter((n) => n !== 'constructor' && typeof Object.getOwnPropertyDescriptor(proto, n)?.value === 'function');
      assert.deepEqual(Object.keys(methods).sort(), own.sort(), `${proto.constructor.name}: every public method is listed`);
      for (const [name, call] of Object.entries(methods)) {
        const before = rec.calls.length;
        try {
          await drain(call());
        } catch (e) {
          assert.ok(e instanceof NotFoundError, `${proto.constructor.name}.${name} got the recorder's NOT_FOUND, not ${String(e)}`);
        }
        const made = rec.calls.slice(before);
        assert.ok(made.length > 0, `${proto.constructor.name}.${name} made a request`);
        for (const c of made) {
          const route = routeFor(c.method, c.path);
          assert.ok(route, `${proto.constructor.name}.${name}: ${c.method} ${c.path} is not in the route table`);
          used.add(route);
        }
      }
    }
    // And the other way round: the SDK reaches every endpoint the daemon serves.
    const unreached = Object.keys(routes).filter((r) => !used.has(r));
    assert.deepEqual(unreached, [], 'routes the SDK cannot call');
  });
});
