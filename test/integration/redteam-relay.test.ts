/**
 * Red team, egress splice relay: a sandbox destroyed (not stopped) while its relays carry
 * endless downloads, an upload to a destination that never reads (the helper's pipes fill)
 * and a half-closed tunnel the destination holds open: the destroy finishes, no helper or
 * descriptor stays. And a tunnel stuck on back-pressure (nothing moves either way) still ends
 * at the idle timeout. Loopback destinations only (allowed.test maps to 127.0.0.1).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { TestDaemon, waitFor } from '../helpers/daemon.js';
import { relayHelpers, relaysOpen } from '../helpers/relay.js';

describe('red team: egress relay under destroy and back-pressure', () => {
  let d: TestDaemon;
  let http: HttpServer;
  let sink: Server;
  const held: Socket[] = [];
  let httpPort = 0;
  let sinkPort = 0;

  before(async () => {
    http = createHttpServer((req, res) => {
      if (req.url !== '/endless') return void res.end('ok\n');
      res.writeHead(200);
      const timer = setInterval(() => res.write(Buffer.alloc(65536, 99)), 20);
      res.on('close', () => clearInterval(timer));
    });
    // Accepts, never reads, never closes: an upload to it fills every buffer on the way.
    // allowHalfOpen: the client's end of sending leaves this side open (Node would otherwise
    // close a paused socket that reads EOF with nothing buffered, ending the tunnel cleanly).
    sink = createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.pause();
      held.push(s);
    });
    for (const srv of [http, sink]) await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    httpPort = (http.address() as { port: number }).port;
    sinkPort = (sink.address() as { port: number }).port;
    d = new TestDaemon(mkdtempSync('/tmp/nookt-'), { NOOK_PROXY_HOSTS: 'allowed.test=127.0.0.1', NOOK_PROXY_IDLE_TIMEOUT_MS: '6000' });
    await d.start();
  });
  after(async () => {
    await d.teardown();
    for (const s of held) s.destroy();
    http.close();
    sink.close();
  });

  const sh = (sb: Sandbox, script: string, timeoutMs = 60_000) => sb.exec(['sh', '-c', script], { timeoutMs });
  const create = (name: string) => d.client.sandboxes.create({ name, image: 'minimal', allowHosts: [`allowed.test:${httpPort}`, `allowed.test:${sinkPort}`] });

  it('attack: destroy mid-transfer (endless downloads, a blocked upload, a half-closed tunnel held open) finishes and leaves no helper', async () => {
    const sb = await create('destroyed');
    const script = [
      `for i in 1 2 3; do wget -q -O /dev/null http://allowed.test:${httpPort}/endless & done`,
      // An upload the destination never reads: the helper's pipe and both socket buffers fill.
      `(printf 'CONNECT allowed.test:${sinkPort} HTTP/1.1\\r\\n\\r\\n'; head -c 50000000 /dev/zero) | nc 127.0.0.1 3128 >/dev/null &`,
      // A tunnel whose client half-closes at once (stdin ends) while the destination keeps its side open.
      `printf 'CONNECT allowed.test:${sinkPort} HTTP/1.1\\r\\n\\r\\n' | nc 127.0.0.1 3128 >/dev/null &`,
      'wait',
    ].join('\n');
    void sh(sb, script).catch(() => undefined);
    // A sandbox left behind by a failure here would hold helpers the next test counts.
    await waitFor(() => relaysOpen(d.stateDir, sb.id) === 5, 10_000, 'the helper to carry five relays').catch(async (e: unknown) => {
      await sb.destroy().catch(() => undefined);
      throw e;
    });
    const t0 = Date.now();
    await sb.destroy();
    const ms = Date.now() - t0;
    console.log(`destroy with five live relays: ${ms} ms`);
    assert.ok(ms < 15_000, `the destroy finished (${ms} ms)`);
    assert.deepEqual(relayHelpers(d.stateDir, sb.id), [], 'no helper once destroy returns');
    const left = await d.client.sandboxes.list();
    assert.ok(!left.some((s) => s.id === sb.id), 'the sandbox is gone, not stuck destroying');
  });

  it('attack: a tunnel stuck on back-pressure (the destination never reads) ends at the idle timeout; the helper stays small', async () => {
    const sb = await create('pressed');
    const t0 = Date.now();
    const r = await sh(sb, `(printf 'CONNECT allowed.test:${sinkPort} HTTP/1.1\\r\\n\\r\\n'; head -c 200000000 /dev/zero; sleep 30) | nc 127.0.0.1 3128 >/dev/null; echo done`, 60_000);
    assert.match(r.stdout, /done/);
    const decision = (await sb.network.show()).decisions.find((x) => /idle timeout/.test(x.reason));
    assert.ok(decision, `the stuck tunnel is closed by the idle timeout and recorded (after ${Date.now() - t0} ms)`);
    assert.ok(decision.bytesUp < 20 * 1024 * 1024, `only what the buffers held moved (${decision.bytesUp} bytes)`);
    for (const pid of relayHelpers(d.stateDir, sb.id)) {
      const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      assert.ok(rss < 16 * 1024, `the helper's resident memory stays small (${rss} kB)`);
    }
    await sb.destroy();
    await waitFor(() => relayHelpers(d.stateDir).length === 0, 15_000, 'no helper of any sandbox');
  });
});
