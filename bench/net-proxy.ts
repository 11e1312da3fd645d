/**
 * The egress path alone: per-request latency (connection setup through the proxy, plain HTTP
 * via busybox wget), a 100 MiB download, and the daemon's descriptors after 300 connections
 * that close before a whole request head. `node dist/bench/net-proxy.js` (root).
 */
import { createServer } from 'node:http';
import { readdirSync } from 'node:fs';
import { startDaemon } from '../test/helpers/daemon.js';
import { round, stat, timeIt } from './stats.js';

const chunk = Buffer.alloc(1024 * 1024, 97);
const server = createServer((req, res) => {
  if (req.url !== '/100m') return void res.end('ok\n');
  res.writeHead(200, { 'content-length': String(100 * chunk.length) });
  let sent = 0;
  const pump = (): void => {
    while (sent < 100 && res.write(chunk)) sent++;
    if (sent < 100) res.once('drain', pump);
    else res.end();
  };
  pump();
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
const port = (server.address() as { port: number }).port;
const d = await startDaemon({ NOOK_PROXY_HOSTS: 'bench.test=127.0.0.1' });
try {
  const sb = await d.client.sandboxes.create({ name: 'bench-net', image: 'minimal', allowHosts: [`bench.test:${port}`] });
  const wget = async (path: string, times: number): Promise<void> => {
    const r = await sb.exec(['sh', '-c', `i=0; while [ $i -lt ${times} ]; do wget -q -O /dev/null http://bench.test:${port}${path} || exit 1; i=$((i+1)); done`], { timeoutMs: 300_000 });
    if (r.exitCode !== 0) throw new Error(`through the proxy failed: ${r.stderr}`);
  };
  const per = 50;
  const small = stat('small request via proxy (per request)', (await timeIt(7, () => wget('/small', per))).map((x) => x / per));
  const big = stat('100 MiB download via proxy', await timeIt(3, () => wget('/100m', 1)));
  const fds = (): number => readdirSync(`/proc/${d.proc?.pid ?? 0}/fd`).length;
  const before = fds();
  await sb.exec(['sh', '-c', `for i in $(seq 300); do printf 'GET http://bench.test/' | nc -w 1 127.0.0.1 3128 >/dev/null 2>&1 & if [ $((i % 30)) = 0 ]; then wait; fi; done; wait`], { timeoutMs: 120_000 });
  await new Promise((r) => setTimeout(r, 2000));
  process.stdout.write(
    `${JSON.stringify({ smallRequestMs: { median: round(small.medianMs), p90: round(small.p90Ms) }, download100MiBMs: round(big.medianMs), throughputMiBs: round(100 / (big.medianMs / 1000)), daemonFds: { before, after300Aborted: fds() } })}\n`,
  );
  await sb.destroy();
} finally {
  await d.teardown();
  server.close();
}
