/**
 * The egress path alone: per-request latency (connection setup through the proxy, plain HTTP
 * via busybox wget), a 256 MiB download against the host's direct download of the same file
 * (bench/egress.ts), and the daemon's descriptors after 300 connections that close before a
 * whole request head. `node dist/bench/net-proxy.js [rounds]` (root).
 */
import { createServer } from 'node:http';
import { readdirSync } from 'node:fs';
import { startDaemon } from '../test/helpers/daemon.js';
import { benchEgress } from './egress.js';
import { round, stat, timeIt } from './stats.js';

const rounds = Number(process.argv[2] ?? 7);
const server = createServer((_req, res) => res.end('ok\n'));
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
const port = (server.address() as { port: number }).port;
const d = await startDaemon({ NOOK_PROXY_HOSTS: 'bench.test=127.0.0.1' });
try {
  const egress = await benchEgress(d.client, rounds);
  const sb = await d.client.sandboxes.create({ name: 'bench-net', image: 'minimal', allowHosts: [`bench.test:${port}`] });
  const wget = async (times: number): Promise<void> => {
    const r = await sb.exec(['sh', '-c', `i=0; while [ $i -lt ${times} ]; do wget -q -O /dev/null http://bench.test:${port}/small || exit 1; i=$((i+1)); done`], { timeoutMs: 300_000 });
    if (r.exitCode !== 0) throw new Error(`through the proxy failed: ${r.stderr}`);
  };
  const per = 50;
  const small = stat('small request via proxy (per request)', (await timeIt(7, () => wget(per))).map((x) => x / per));
  const fds = (): number => readdirSync(`/proc/${d.proc?.pid ?? 0}/fd`).length;
  const before = fds();
  await sb.exec(['sh', '-c', `for i in $(seq 300); do printf 'GET http://bench.test/' | nc -w 1 127.0.0.1 3128 >/dev/null 2>&1 & if [ $((i % 30)) = 0 ]; then wait; fi; done; wait`], { timeoutMs: 120_000 });
  await new Promise((r) => setTimeout(r, 2000));
  for (const r of egress.rows) process.stdout.write(`${r.name}: median ${r.medianMs} ms, p90 ${r.p90Ms} ms (n=${r.n})\n`);
  process.stdout.write(
    `${JSON.stringify({ smallRequestMs: { median: round(small.medianMs), p90: round(small.p90Ms) }, egress: { directMiBs: egress.directMiBs, proxiedMiBs: egress.proxiedMiBs, ratio: egress.ratio }, daemonFds: { before, after300Aborted: fds() } })}\n`,
  );
  await sb.destroy();
} finally {
  await d.teardown();
  server.close();
}
