/**
 * The egress splice relay (nook-init relay, issue 17) under attack: once the proxy has decided
 * a connection, its sockets leave the daemon for a helper process. Every bound the proxy kept
 * in Node must hold there too: the connection cap, the idle timeout, the byte counts of the
 * decision record, no byte lost at the hand-over, and no helper or descriptor left when the
 * sandbox stops mid-transfer or the daemon dies. Destinations are loopback servers this test
 * starts; allowed.test maps to 127.0.0.1 through NOOK_PROXY_HOSTS.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Sandbox } from '../../src/sdk/client.js';
import { TestDaemon, waitFor } from '../helpers/daemon.js';
import { relayHelpers, relaysOpen } from '../helpers/relay.js';

const BIG_BYTES = 48 * 1024 * 1024;
const MAX_CONNECTIONS = 12;

const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

describe('egress splice relay (loopback only)', () => {
  let d: TestDaemon;
  let http: HttpServer;
  let banner: Server;
  let httpPort = 0;
  let bannerPort = 0;

  before(async () => {
    // /big: a known size; /endless: 64 KiB every 20 ms until the client goes; POST: the body's length.
    http = createHttpServer((req, res) => {
      if (req.method === 'POST') {
        let n = 0;
        req.on('data', (b: Buffer) => (n += b.length));
        req.on('end', () => res.end(`got ${n}\n`));
        return;
      }
      if (req.url === '/big') return void res.end(Buffer.alloc(BIG_BYTES, 98));
      if (req.url !== '/endless') return void res.end('ok\n');
      res.writeHead(200);
      const timer = setInterval(() => res.write(Buffer.alloc(65536, 99)), 20);
      res.on('close', () => clearInterval(timer));
    });
    // A server-first protocol: a banner on connect, then an echo of each line.
    banner = createServer((s) => {
      s.on('error', () => undefined);
      s.write('HELLO\n');
      s.pipe(s);
    });
    for (const srv of [http, banner]) await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    httpPort = (http.address() as { port: number }).port;
    bannerPort = (banner.address() as { port: number }).port;
    d = new TestDaemon(mkdtempSync('/tmp/nookt-'), {
      NOOK_PROXY_HOSTS: 'allowed.test=127.0.0.1',
      NOOK_PROXY_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
      NOOK_PROXY_IDLE_TIMEOUT_MS: '3000',
    });
    await d.start();
  });
  after(async () => {
    await d.teardown();
    http.close();
    banner.close();
  });

  const daemonPid = (): number => d.proc?.pid ?? 0;
  const sh = (sb: Sandbox, script: string, timeoutMs = 60_000) => sb.exec(['sh', '-c', script], { timeoutMs });
  const create = (name: string) => d.client.sandboxes.create({ name, image: 'minimal', allowHosts: [`allowed.test:${httpPort}`, `allowed.test:${bannerPort}`] });

  it('moves every byte and counts it: a download, an upload, and bytes sent before the tunnel is answered', async () => {
    const sb = await create('bytes');
    const got = await sh(sb, `wget -q -O - http://allowed.test:${httpPort}/big | wc -c`);
    assert.equal(got.stdout.trim(), String(BIG_BYTES));
    const posted = await sh(sb, `(printf 'POST http://allowed.test:${httpPort}/up HTTP/1.1\\r\\nContent-Length: 3000000\\r\\n\\r\\n'; head -c 3000000 /dev/zero; sleep 1) | nc 127.0.0.1 3128`);
    assert.match(posted.stdout, /got 3000000\n$/);
    // The client does not wait for the 200: its bytes arrive while the daemon connects and
    // hands over (a socket read in the daemon after the hand-over would lose them).
    for (const pause of ['0', '0.01', '0.05', '0.2']) {
      const r = await sh(sb, `(printf 'CONNECT allowed.test:${bannerPort} HTTP/1.1\\r\\n\\r\\n'; sleep ${pause}; printf 'early-${pause}\\n'; sleep 0.5) | nc 127.0.0.1 3128`, 15_000);
      assert.match(r.stdout, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHELLO\n/, `the banner arrives (pause ${pause})`);
      assert.match(r.stdout, new RegExp(`early-${pause.replace('.', '\\.')}\\n`), `nothing sent ${pause} s after the head is lost`);
    }
    const shown = await sb.network.show();
    const download = shown.decisions.find((x) => x.method === 'HTTP' && x.bytesDown > BIG_BYTES);
    assert.ok(download, 'the download is recorded with its bytes');
    assert.ok((download?.bytesDown ?? 0) < BIG_BYTES + 1024, `only the body and a response head (${download?.bytesDown})`);
    assert.ok(shown.decisions.some((x) => x.method === 'HTTP' && x.bytesUp === 3_000_000), 'the upload body is counted exactly');
    await sb.destroy();
  });

  it('attack: held tunnels past the cap are refused while relayed; a silent tunnel ends at the idle timeout', async () => {
    const sb = await create('holder');
    const baseline = openFds(daemonPid());
    // 2 x the cap of tunnels that stay open (the banner server never closes, the client keeps stdin open).
    const held = sh(sb, `for i in $(seq ${2 * MAX_CONNECTIONS}); do (printf 'CONNECT allowed.test:${bannerPort} HTTP/1.1\\r\\n\\r\\n'; sleep 2) | nc 127.0.0.1 3128 > /tmp/c.$i 2>&1 & done; sleep 1; grep -l '503 Service' /tmp/c.* | wc -l; grep -l HELLO /tmp/c.* | wc -l; wait`, 30_000);
    const [refused = 0, relayed = 0] = (await held).stdout.trim().split('\n').map(Number);
    assert.ok(relayed <= MAX_CONNECTIONS, `at most the cap is relayed (${relayed})`);
    assert.ok(refused >= MAX_CONNECTIONS, `the rest is refused with 503 (${refused})`);
    const helpers = relayHelpers(d.stateDir, sb.id);
    assert.ok(helpers.length <= 1, 'one helper per sandbox at most');
    // A tunnel nobody speaks on (busybox nc stays until its stdin ends, so the exec is not
    // awaited): the helper closes it after the idle timeout (3 s here) and says so.
    void sh(sb, `(printf 'CONNECT allowed.test:${httpPort} HTTP/1.1\\r\\n\\r\\n'; sleep 12) | nc 127.0.0.1 3128`, 20_000).catch(() => undefined);
    const idleEnd = async () => (await sb.network.show()).decisions.find((x) => /idle timeout/.test(x.reason));
    await waitFor(async () => (await idleEnd()) !== undefined, 10_000, 'the idle tunnel to be closed and recorded');
    const idle = await idleEnd();
    assert.ok((idle?.durationMs ?? 0) >= 2900 && (idle?.durationMs ?? 0) < 8000, `closed by the idle timeout (${idle?.durationMs} ms)`);
    await waitFor(() => openFds(daemonPid()) <= baseline + 3, 10_000, `the daemon to hold no relayed socket (fds ${openFds(daemonPid())}, baseline ${baseline})`);
    await sb.destroy();
  });

  it('attack: a sandbox stopped mid-transfer leaves no helper process and no descriptor', async () => {
    const sb = await create('stopper');
    await sh(sb, `wget -q -O - http://allowed.test:${httpPort}/small`);
    const baseline = openFds(daemonPid());
    // Not awaited: the downloads run as long as the exec does, until the stop.
    const running = sh(sb, `for i in 1 2 3 4; do wget -q -O /dev/null http://allowed.test:${httpPort}/endless & done; wait`).catch(() => undefined);
    await waitFor(() => relaysOpen(d.stateDir, sb.id) === 4, 5000, 'the relay helper to carry the four downloads');
    assert.equal(relayHelpers(d.stateDir, sb.id).length, 1, 'one helper for the sandbox');
    await sb.stop();
    await running;
    assert.deepEqual(relayHelpers(d.stateDir, sb.id), [], 'the helper is gone when stop returns');
    await waitFor(() => openFds(daemonPid()) <= baseline + 2, 5000, `the daemon's descriptors to come back (${openFds(daemonPid())}, baseline ${baseline})`);
    const ended = (await sb.network.show()).decisions.filter((x) => x.method === 'HTTP' && x.bytesDown > 100_000);
    assert.equal(ended.length, 4, 'each interrupted download is recorded with the bytes it moved');
    await sb.destroy();
  });

  it('attack: a daemon killed mid-transfer takes its relay helper with it', async () => {
    const sb = await create('crasher');
    const running = sh(sb, `wget -q -O /dev/null http://allowed.test:${httpPort}/endless`).catch(() => undefined);
    await waitFor(() => relayHelpers(d.stateDir, sb.id).length === 1, 5000, 'the relay helper');
    await d.restart();
    await running;
    await waitFor(() => relayHelpers(d.stateDir, sb.id).length === 0, 5000, 'the helper to die with the daemon');
    // Egress still works through the new daemon.
    assert.equal((await sh(sb, `wget -q -O - http://allowed.test:${httpPort}/small`)).stdout, 'ok\n');
    await sb.destroy();
  });
});
