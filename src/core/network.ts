import { randomBytes } from 'node:crypto';
import { NookError } from '../api/errors.js';
import type { Exposure, NetworkDecision, NetworkPolicy, NetworkShow } from '../api/schemas.js';
import { DenialAggregator, type DenialSummary } from '../net/denials.js';
import { ExposureListener } from '../net/expose.js';
import { parsePattern, suggest } from '../net/policy.js';
import { EgressProxy, PROXY_PORT_IN_SANDBOX, Resolver, proxyLimitsFromEnv, type Decision } from '../net/proxy.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { Db } from '../store/db.js';
import { log } from '../util/log.js';
import type { SandboxManager } from './sandboxes.js';

/** Decisions kept per sandbox; older ones are dropped. */
const MAX_DECISIONS = 2000;
const PROXY_URL = `http://127.0.0.1:${PROXY_PORT_IN_SANDBOX}`;
/** Connections at once through one exposed port (NOOK_EXPOSE_MAX_CONNECTIONS); also socat's max-children. */
const EXPOSE_MAX_CONNECTIONS = proxyLimitsFromEnv({ NOOK_PROXY_MAX_CONNECTIONS: process.env.NOOK_EXPOSE_MAX_CONNECTIONS }).maxConnections;

/** Environment every exec gets when the sandbox has egress: the proxy is the only way out. */
export function proxyEnv(policy: NetworkPolicy): Record<string, string> {
  if (policy.mode === 'none') return {};
  const noProxy = 'localhost,127.0.0.1,::1';
  return { HTTP_PROXY: PROXY_URL, HTTPS_PROXY: PROXY_URL, http_proxy: PROXY_URL, https_proxy: PROXY_URL, NO_PROXY: noProxy, no_proxy: noProxy };
}

/** Validates patterns, returning them normalised. */
export function normaliseAllow(hosts: string[]): string[] {
  return [...new Set(hosts.map((h) => parsePattern(h).text))];
}

interface Live {
  proxy?: EgressProxy;
  exposures: Map<number, ExposureListener>;
}

interface ExposureRow {
  sandbox_id: string;
  port: number;
  host_port: number;
  token: string;
  created_at: number;
}

/**
 * Egress and exposure for running sandboxes. Policy lives in the sandbox's spec; the
 * proxy reads it on every request, so changes apply to a running sandbox at once.
 */
export class NetworkManager {
  private readonly live = new Map<string, Live>();
  private readonly resolver = new Resolver();
  private readonly denials = new DenialAggregator<Decision>((id, summary) => this.recordSummary(id, summary));

  constructor(
    private readonly db: Db,
    private readonly runtime: RuntimeDriver,
    private readonly sandboxes: SandboxManager,
    /** Host settings: network.allowed=false closes egress for every sandbox. */
    private readonly policy: { setting: (key: 'network.allowed') => boolean },
    /** nook-init on the host: its splice relay carries egress bytes past the daemon. */
    private readonly relayBinary?: string,
  ) {}

  // ---- policy --------------------------------------------------------------------------

  show(ref: string, limit = 50): NetworkShow {
    const sb = this.sandboxes.record(ref);
    const rows = this.db
      .prepare('SELECT * FROM network_decisions WHERE sandbox_id = ? ORDER BY id DESC LIMIT ?')
      .all(sb.id, Math.max(1, Math.min(limit, MAX_DECISIONS))) as {
      at: number;
      host: string;
      port: number;
      method: string;
      allowed: number;
      reason: string;
      bytes_up: number;
      bytes_down: number;
      duration_ms: number;
    }[];
    const decisions: NetworkDecision[] = rows.map((r) => ({
      at: new Date(r.at).toISOString(),
      host: r.host,
      port: r.port,
      method: r.method,
      allowed: r.allowed === 1,
      reason: r.reason,
      bytesUp: r.bytes_up,
      bytesDown: r.bytes_down,
      durationMs: r.duration_ms,
    }));
    return { policy: sb.spec.network, decisions };
  }

  async set(ref: string, change: { mode?: NetworkPolicy['mode']; allow?: string[] }): Promise<NetworkShow> {
    const sb = this.sandboxes.record(ref);
    const next: NetworkPolicy = {
      mode: change.mode ?? (change.allow && sb.spec.network.mode === 'none' ? 'allowlist' : sb.spec.network.mode),
      allow: change.allow ? normaliseAllow(change.allow) : sb.spec.network.allow,
    };
    if (next.mode !== 'none') this.need(sb.id, 'egress', 'give a sandbox egress (no listener inside it for the proxy)');
    if (next.mode !== 'none' && !this.policy.setting('network.allowed')) {
      throw new NookError('POLICY_DENIED', 'network.allowed is false on this host: no sandbox may open egress', { hint: 'an operator can change it: nook config set network.allowed true' });
    }
    this.sandboxes.setNetworkPolicy(sb.id, next);
    // Turning egress on or off for a running sandbox starts or stops its bridge now.
    if (sb.state === 'running' && (sb.spec.network.mode === 'none') !== (next.mode === 'none')) {
      if (next.mode === 'none') await this.stopEgress(sb.id);
      else await this.startEgress(sb.id);
    }
    log('network policy changed', { id: sb.id, mode: next.mode, allow: next.allow.length });
    return this.show(sb.id);
  }

  allow(ref: string, hosts: string[]): Promise<NetworkShow> {
    const sb = this.sandboxes.record(ref);
    return this.set(ref, { allow: [...sb.spec.network.allow, ...hosts] });
  }

  deny(ref: string, hosts: string[]): Promise<NetworkShow> {
    const sb = this.sandboxes.record(ref);
    const drop = new Set(normaliseAllow(hosts));
    return this.set(ref, { allow: sb.spec.network.allow.filter((h) => !drop.has(h)) });
  }

  /** What learn-mode runs used, as an allow-list. */
  suggestFor(ref: string): string[] {
    const sb = this.sandboxes.record(ref);
    const used = this.db.prepare('SELECT DISTINCT host, port FROM network_decisions WHERE sandbox_id = ? AND learn = 1 AND allowed = 1').all(sb.id) as { host: string; port: number }[];
    return suggest(used);
  }

  /** Every decision is recorded, except repeated denials, which are aggregated (denials.ts). */
  private record(sandboxId: string, d: Decision): void {
    if (!this.db.open) return;
    if (!d.allowed && !this.denials.admit(sandboxId, `${d.method} ${d.host}:${d.port}`, d)) return;
    this.insert(sandboxId, d);
  }

  private recordSummary(sandboxId: string, summary: DenialSummary<Decision>): void {
    if (!this.db.open) return;
    for (const { sample, count } of summary.repeated) {
      this.insert(sandboxId, { ...sample, reason: `${sample.reason} (and ${count} more times since)` }, false);
    }
    if (summary.others > 0) {
      const reason = `${summary.others} more denials of ${summary.otherKeys} other destinations, not recorded one by one`;
      this.insert(sandboxId, { host: '*', port: 0, method: '*', allowed: false, reason, bytesUp: 0, bytesDown: 0, durationMs: 0, learn: false }, false);
    }
    const repeated = summary.repeated.reduce((n, r) => n + r.count, 0);
    log('egress denials aggregated', { id: sandboxId, repeated, others: summary.others, otherDestinations: summary.otherKeys });
  }

  private insert(sandboxId: string, d: Decision, announce = true): void {
    this.db
      .prepare(
        'INSERT INTO network_decisions (sandbox_id, at, host, port, method, allowed, reason, bytes_up, bytes_down, duration_ms, learn) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(sandboxId, Date.now(), d.host, d.port, d.method, d.allowed ? 1 : 0, d.reason, d.bytesUp, d.bytesDown, d.durationMs, d.learn ? 1 : 0);
    this.db
      .prepare('DELETE FROM network_decisions WHERE sandbox_id = ? AND id <= (SELECT id FROM network_decisions WHERE sandbox_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)')
      .run(sandboxId, sandboxId, MAX_DECISIONS);
    if (!d.allowed && announce) {
      log('egress denied', { id: sandboxId, host: d.host, port: d.port, reason: d.reason });
      this.sandboxes.events.publish('network.denied', { sandboxId, detail: { host: d.host, port: d.port, reason: d.reason } });
    }
  }

  // ---- compute hooks ----------------------------------------------------------------------

  /** Compute up: the egress listener and exposed ports. */
  async attach(sandboxId: string): Promise<void> {
    const sb = this.sandboxes.record(sandboxId);
    this.live.set(sandboxId, { exposures: new Map() });
    if (sb.spec.network.mode !== 'none') await this.startEgress(sandboxId);
    for (const row of this.exposureRows(sandboxId)) {
      await this.openExposure(row).catch((e: Error) => log('exposure could not come back', { id: sandboxId, port: row.port, error: e.message }));
    }
  }

  /** Compute down. */
  async detach(sandboxId: string): Promise<void> {
    const live = this.live.get(sandboxId);
    this.live.delete(sandboxId);
    for (const l of live?.exposures.values() ?? []) await l.close();
    await live?.proxy?.close();
    this.denials.close(sandboxId);
    if (this.runtime.info(sandboxId).exposePorts) await this.runtime.unexposePort(sandboxId, 'all');
  }

  /** A runtime without the feature answers NOT_SUPPORTED, never a sandbox quietly cut off or left open. */
  private need(sandboxId: string, feature: 'egress' | 'exposePorts', what: string): void {
    const info = this.runtime.info(sandboxId);
    if (!info[feature]) {
      throw new NookError('NOT_SUPPORTED', `the ${info.name} runtime cannot ${what}`, { hint: feature === 'egress' ? 'use network mode none, or a runtime that supports egress (crun)' : 'reach the port from inside (nook exec), or use a runtime that can expose ports (crun)' });
    }
  }

  private async startEgress(sandboxId: string): Promise<void> {
    this.need(sandboxId, 'egress', 'give a sandbox egress (no listener inside it for the proxy)');
    const live: Live = this.live.get(sandboxId) ?? { exposures: new Map() };
    this.live.set(sandboxId, live);
    await live.proxy?.close();
    const proxy = new EgressProxy(
      {
        policy: () => this.sandboxes.find(sandboxId)?.spec.network ?? { mode: 'none', allow: [] },
        record: (d) => this.record(sandboxId, d),
      },
      this.resolver,
      proxyLimitsFromEnv(),
      this.relayBinary ? { binary: this.relayBinary, label: sandboxId } : undefined,
    );
    const handle = await this.runtime.listenInSandbox(sandboxId, PROXY_PORT_IN_SANDBOX);
    await proxy.listen(handle);
    live.proxy = proxy;
  }

  private async stopEgress(sandboxId: string): Promise<void> {
    const live = this.live.get(sandboxId);
    await live?.proxy?.close();
    if (live) delete live.proxy;
    this.denials.close(sandboxId);
  }

  // ---- exposures -----------------------------------------------------------------------------

  private exposureRows(sandboxId: string): ExposureRow[] {
    return this.db.prepare('SELECT * FROM exposures WHERE sandbox_id = ? ORDER BY port').all(sandboxId) as ExposureRow[];
  }

  private toExposure(row: ExposureRow): Exposure {
    return {
      port: row.port,
      hostPort: row.host_port,
      url: `http://127.0.0.1:${row.host_port}/?token=${row.token}`,
      token: row.token,
      createdAt: new Date(row.created_at).toISOString(),
      active: this.live.get(row.sandbox_id)?.exposures.has(row.port) ?? false,
    };
  }

  private async openExposure(row: ExposureRow): Promise<number> {
    this.need(row.sandbox_id, 'exposePorts', 'expose a port of a sandbox');
    const live = this.live.get(row.sandbox_id);
    if (!live) throw new NookError('INVALID_STATE', 'the sandbox is not running');
    const sock = await this.runtime.exposePort(row.sandbox_id, row.port, { maxConnections: EXPOSE_MAX_CONNECTIONS });
    const listener = new ExposureListener(row.token, sock, { maxConnections: EXPOSE_MAX_CONNECTIONS, headTimeoutMs: 10_000 });
    let port: number;
    try {
      port = await listener.start(row.host_port);
    } catch (e) {
      await this.runtime.unexposePort(row.sandbox_id, row.port);
      const err = e as NodeJS.ErrnoException;
      throw new NookError(err.code === 'EADDRINUSE' ? 'BUSY' : 'INTERNAL', `cannot listen on 127.0.0.1:${row.host_port}: ${err.message}`, { hint: 'choose another --host-port' });
    }
    live.exposures.set(row.port, listener);
    return port;
  }

  async expose(ref: string, port: number, hostPort?: number): Promise<Exposure> {
    const sb = this.sandboxes.record(ref);
    this.need(sb.id, 'exposePorts', 'expose a port of a sandbox');
    if (sb.state !== 'running') throw new NookError('INVALID_STATE', `sandbox ${sb.name} is ${sb.state}`, { hint: `resume it first: nook resume ${sb.name}` });
    const existing = this.exposureRows(sb.id).find((r) => r.port === port);
    if (existing) return this.toExposure(existing);
    const row: ExposureRow = { sandbox_id: sb.id, port, host_port: hostPort ?? 0, token: randomBytes(24).toString('base64url'), created_at: Date.now() };
    row.host_port = await this.openExposure(row);
    this.db.prepare('INSERT INTO exposures (sandbox_id, port, host_port, token, created_at) VALUES (?, ?, ?, ?, ?)').run(row.sandbox_id, row.port, row.host_port, row.token, row.created_at);
    log('port exposed', { id: sb.id, port, hostPort: row.host_port });
    return this.toExposure(row);
  }

  exposures(ref: string): Exposure[] {
    const sb = this.sandboxes.record(ref);
    return this.exposureRows(sb.id).map((r) => this.toExposure(r));
  }

  async unexpose(ref: string, port: number): Promise<Exposure> {
    const sb = this.sandboxes.record(ref);
    const row = this.exposureRows(sb.id).find((r) => r.port === port);
    if (!row) throw new NookError('NOT_FOUND', `port ${port} of ${sb.name} is not exposed`, { hint: `list them: nook expose ls ${sb.name}` });
    const exposure = this.toExposure(row);
    await this.live.get(sb.id)?.exposures.get(port)?.close();
    this.live.get(sb.id)?.exposures.delete(port);
    if (this.runtime.info(sb.id).exposePorts) await this.runtime.unexposePort(sb.id, port);
    this.db.prepare('DELETE FROM exposures WHERE sandbox_id = ? AND port = ?').run(sb.id, port);
    return { ...exposure, active: false };
  }

  /** A destroyed sandbox's decisions and exposures go with it. */
  forget(sandboxId: string): void {
    this.denials.drop(sandboxId);
    this.db.prepare('DELETE FROM network_decisions WHERE sandbox_id = ?').run(sandboxId);
    this.db.prepare('DELETE FROM exposures WHERE sandbox_id = ?').run(sandboxId);
  }

  // ---- daemon start and stop ---------------------------------------------------------------

  /** Egress and exposures of every running sandbox (daemon start). */
  async attachRunning(): Promise<void> {
    for (const s of this.sandboxes.list({ state: 'running' })) {
      await this.attach(s.id).catch((e: Error) => log('network attach failed', { id: s.id, error: e.message }));
    }
  }

  async detachAll(): Promise<void> {
    for (const id of [...this.live.keys()]) await this.detach(id);
    this.denials.closeAll();
  }
}
