import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../api/errors.js';
import type {
  ContainerStatus, ExecOutcome, ExecSpec, Holder, ListenHandle, RuntimeDriver, RuntimeInfo, RuntimeKind, SessionHandle, SessionSpec, StartSpec, UnmountOutcome,
} from './driver.js';

const KIND_FILE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * One RuntimeDriver over several backends (crun, gVisor): core keeps a single reference
 * and every call is routed by sandbox id. The id → backend map is learned at start and
 * written as one small file per sandbox (`<dir>/<id>`, holding the kind), so after a
 * daemon restart a paused sandbox's calls still reach its backend; `forget` (destroy)
 * removes it. An id never started here goes to the default backend.
 */
export class MultiDriver implements RuntimeDriver {
  private readonly kinds = new Map<string, RuntimeKind>();

  constructor(
    private readonly backends: ReadonlyMap<RuntimeKind, RuntimeDriver>,
    private readonly defaultKind: RuntimeKind,
    /** Root-only directory of the per-sandbox kind files. */
    private readonly dir: string,
    /** runsc is installed but gVisor is not offered on this host kind (cgroup v2, unverified). */
    private readonly gvisorWithheld = false,
  ) {
    if (!backends.has(defaultKind)) throw new Error(`the default runtime ${defaultKind} is not among the backends`);
  }

  private kindOf(id: string): RuntimeKind {
    const known = this.kinds.get(id);
    if (known) return known;
    if (!KIND_FILE.test(id)) return this.defaultKind;
    try {
      const text = readFileSync(join(this.dir, id), 'utf8').trim();
      if (text === 'crun' || text === 'gvisor') {
        this.kinds.set(id, text);
        return text;
      }
    } catch {
      // never started here: the default
    }
    return this.defaultKind;
  }

  private of(id: string): RuntimeDriver {
    return this.backend(this.kindOf(id));
  }

  private backend(kind: RuntimeKind): RuntimeDriver {
    const d = this.backends.get(kind);
    if (!d) {
      if (kind === 'gvisor' && this.gvisorWithheld) {
        throw new NookError('NOT_SUPPORTED', 'gVisor is not supported on cgroup v2 hosts yet', { hint: 'create with --runtime crun, or use a cgroup v1/hybrid host for gVisor' });
      }
      throw new NookError('NOT_SUPPORTED', `this host has no ${kind} runtime`, {
        hint: kind === 'gvisor' ? 'install gVisor (apt-get install runsc) and restart nookd, or create with --runtime crun' : 'apt-get install crun (or runc)',
      });
    }
    return d;
  }

  info(sandboxId?: string): RuntimeInfo {
    const base = sandboxId === undefined ? this.backend(this.defaultKind).info() : this.of(sandboxId).info(sandboxId);
    return { ...base, available: [...this.backends.keys()] };
  }

  async start(spec: StartSpec): Promise<void> {
    const kind = spec.runtime ?? this.defaultKind;
    const driver = this.backend(kind);
    if (KIND_FILE.test(spec.sandboxId)) {
      await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await fsp.writeFile(join(this.dir, spec.sandboxId), kind, { mode: 0o600 });
    }
    this.kinds.set(spec.sandboxId, kind);
    return driver.start(spec);
  }

  /** A sandbox nobody mapped (an orphan after a crash) may be on any backend: stop it on each. */
  async stop(sandboxId: string, graceMs: number): Promise<void> {
    if (this.kinds.has(sandboxId) || this.hasFile(sandboxId)) return this.of(sandboxId).stop(sandboxId, graceMs);
    for (const d of this.backends.values()) await d.stop(sandboxId, graceMs);
  }

  private hasFile(id: string): boolean {
    if (!KIND_FILE.test(id)) return false;
    try {
      readFileSync(join(this.dir, id));
      return true;
    } catch {
      return false;
    }
  }

  status(sandboxId: string): Promise<ContainerStatus> {
    return this.of(sandboxId).status(sandboxId);
  }
  freeze(sandboxId: string): Promise<void> {
    return this.of(sandboxId).freeze(sandboxId);
  }
  thaw(sandboxId: string): Promise<void> {
    return this.of(sandboxId).thaw(sandboxId);
  }

  /** Every backend's containers; each listed id is mapped to the backend that has it. */
  async list(): Promise<{ id: string; status: ContainerStatus }[]> {
    const out: { id: string; status: ContainerStatus }[] = [];
    for (const [kind, d] of this.backends) {
      for (const c of await d.list()) {
        this.kinds.set(c.id, kind);
        out.push(c);
      }
    }
    return out;
  }

  exec(sandboxId: string, spec: ExecSpec): Promise<ExecOutcome> {
    return this.of(sandboxId).exec(sandboxId, spec);
  }
  agentSocketPath(sandboxId: string): string | undefined {
    const driver = this.of(sandboxId);
    return driver.agentSocketPath?.(sandboxId);
  }

  openSession(sandboxId: string, spec: SessionSpec, handlers: { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void }): SessionHandle {
    return this.of(sandboxId).openSession(sandboxId, spec, handlers);
  }
  mountInto(sandboxId: string, hostPath: string, guestPath: string, opts: { rw: boolean }): Promise<void> {
    return this.of(sandboxId).mountInto(sandboxId, hostPath, guestPath, opts);
  }
  unmountFrom(sandboxId: string, guestPath: string, opts: { force: boolean }): Promise<UnmountOutcome> {
    return this.of(sandboxId).unmountFrom(sandboxId, guestPath, opts);
  }
  holdersOf(sandboxId: string, guestPath: string): Promise<Holder[]> {
    return this.of(sandboxId).holdersOf(sandboxId, guestPath);
  }
  listenInSandbox(sandboxId: string, port: number): Promise<ListenHandle> {
    return this.of(sandboxId).listenInSandbox(sandboxId, port);
  }
  exposePort(sandboxId: string, port: number, opts: { maxConnections: number }): Promise<string> {
    return this.of(sandboxId).exposePort(sandboxId, port, opts);
  }
  unexposePort(sandboxId: string, port: number | 'all'): Promise<void> {
    return this.of(sandboxId).unexposePort(sandboxId, port);
  }
  checkpoint(sandboxId: string, imageDir: string): Promise<void> {
    return this.of(sandboxId).checkpoint(sandboxId, imageDir);
  }

  setHostname(sandboxId: string, hostname: string): Promise<void> {
    return this.of(sandboxId).setHostname(sandboxId, hostname);
  }

  async forget(sandboxId: string): Promise<void> {
    await this.of(sandboxId).forget(sandboxId);
    this.kinds.delete(sandboxId);
    if (KIND_FILE.test(sandboxId)) await fsp.rm(join(this.dir, sandboxId), { force: true });
  }

  async sweepStrays(): Promise<void> {
    for (const d of this.backends.values()) await d.sweepStrays();
  }

  stats(sandboxId: string): ReturnType<RuntimeDriver['stats']> {
    return this.of(sandboxId).stats(sandboxId);
  }
  /** The backends share one cgroup parent per daemon: listed once, deduplicated. */
  async listCgroups(): Promise<string[]> {
    const all = new Set<string>();
    for (const d of this.backends.values()) for (const id of await d.listCgroups()) all.add(id);
    return [...all];
  }
  removeCgroups(sandboxId: string): Promise<void> {
    return this.of(sandboxId).removeCgroups(sandboxId);
  }
  async release(): Promise<void> {
    for (const d of this.backends.values()) await d.release();
  }
}
