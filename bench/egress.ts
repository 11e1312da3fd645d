/**
 * Egress at wire speed: a 256 MiB download through a sandbox's proxy against the same
 * download on the host, both by busybox wget from one Node server on the host's loopback,
 * measured round by round in the same run (so load on the shared host hits both alike).
 * Used by bench/net-proxy.ts and bench/run.ts. The daemon must map bench.test to 127.0.0.1
 * (NOOK_PROXY_HOSTS).
 */
import { createServer } from 'node:http';
import type { NookClient } from '../src/sdk/client.js';
import { run } from '../src/util/proc.js';
import { round, stat, type Stat } from './stats.js';

export const EGRESS_MIB = 256;

export interface EgressFigures {
  rows: Stat[];
  directMiBs: number;
  proxiedMiBs: number;
  /** Proxied throughput / direct throughput (target >= 0.8). */
  ratio: number;
}

/** A loopback server: /big sends `mib` MiB, anything else a few bytes. */
async function server(mib: number): Promise<{ port: number; close(): void }> {
  const chunk = Buffer.alloc(1024 * 1024, 97);
  const srv = createServer((req, res) => {
    if (req.url !== '/big') return void res.end('ok\n');
    res.writeHead(200, { 'content-length': String(mib * chunk.length) });
    let sent = 0;
    const pump = (): void => {
      while (sent < mib && res.write(chunk)) sent++;
      if (sent < mib) res.once('drain', pump);
      else res.end();
    };
    pump();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { port: (srv.address() as { port: number }).port, close: () => srv.close() };
}

export async function benchEgress(client: NookClient, rounds: number, mib = EGRESS_MIB): Promise<EgressFigures> {
  const srv = await server(mib);
  const sb = await client.sandboxes.create({ name: `bench-egress-${process.pid}`, image: 'minimal', allowHosts: [`bench.test:${srv.port}`] });
  try {
    const host = async (): Promise<void> => {
      await run(['busybox', 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${srv.port}/big`]);
    };
    const proxied = async (): Promise<void> => {
      const r = await sb.exec(['wget', '-q', '-O', '/dev/null', `http://bench.test:${srv.port}/big`], { timeoutMs: 300_000 });
      if (r.exitCode !== 0) throw new Error(`download through the proxy failed: ${r.stderr}`);
    };
    const timed = async (fn: () => Promise<void>): Promise<number> => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    await host();
    await proxied();
    const direct: number[] = [];
    const via: number[] = [];
    for (let i = 0; i < rounds; i++) {
      direct.push(await timed(host));
      via.push(await timed(proxied));
    }
    const d = stat(`${mib} MiB download, host direct (busybox wget, loopback)`, direct);
    const p = stat(`${mib} MiB download, sandbox via egress proxy`, via);
    const directMiBs = round(mib / (d.medianMs / 1000));
    const proxiedMiBs = round(mib / (p.medianMs / 1000));
    return { rows: [d, p], directMiBs, proxiedMiBs, ratio: round(proxiedMiBs / directMiBs) };
  } finally {
    await sb.destroy();
    srv.close();
  }
}
