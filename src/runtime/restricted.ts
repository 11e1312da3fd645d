import { NookError } from '../api/errors.js';
import type {
  ContainerStatus, ExecOutcome, ExecSpec, Holder, ListenHandle, RuntimeDriver, RuntimeInfo, SessionHandle, SessionSpec, StartSpec, UnmountOutcome,
} from './driver.js';

/** The info() flags a driver may lack. */
export const RUNTIME_FEATURES = ['freeze', 'memorySnapshots', 'hotMounts', 'egress', 'exposePorts', 'holders'] as const;
export type RuntimeFeature = (typeof RUNTIME_FEATURES)[number];

/** NOOK_RUNTIME_DISABLE: "hotMounts,egress" (comma or space separated); unknown names are refused. */
export function parseDisabled(text: string | undefined): Set<RuntimeFeature> {
  const out = new Set<RuntimeFeature>();
  for (const name of (text ?? '').split(/[\s,]+/).filter(Boolean)) {
    const f = RUNTIME_FEATURES.find((k) => k === name);
    if (!f) throw new NookError('INVALID_ARGUMENT', `NOOK_RUNTIME_DISABLE: unknown runtime feature ${name}`, { hint: `one of ${RUNTIME_FEATURES.join(', ')}` });
    out.add(f);
  }
  return out;
}

/**
 * A driver with some features turned off: what a host whose backend lacks them (gVisor, a
 * microVM) answers, on any host; also an operator's way to forbid one. The methods honour
 * the flags too (NOT_SUPPORTED), so core's checks are never the only guard.
 */
export class RestrictedDriver implements RuntimeDriver {
  constructor(
    private readonly inner: RuntimeDriver,
    private readonly off: ReadonlySet<RuntimeFeature>,
  ) {}

  info(sandboxId?: string): RuntimeInfo {
    const info = { ...this.inner.info(sandboxId) };
    for (const f of this.off) info[f] = false;
    return info;
  }

  private need(f: RuntimeFeature): void {
    if (this.off.has(f)) throw new NookError('NOT_SUPPORTED', `the ${this.inner.info().name} runtime has ${f} turned off on this host`, { hint: 'NOOK_RUNTIME_DISABLE lists it' });
  }

  async start(spec: StartSpec): Promise<void> {
    if (spec.memoryImage) this.need('memorySnapshots');
    return this.inner.start(spec);
  }
  stop(sandboxId: string, graceMs: number): Promise<void> {
    return this.inner.stop(sandboxId, graceMs);
  }
  status(sandboxId: string): Promise<ContainerStatus> {
    return this.inner.status(sandboxId);
  }
  async freeze(sandboxId: string): Promise<void> {
    this.need('freeze');
    return this.inner.freeze(sandboxId);
  }
  // Thaw stays open: something frozen before the flag went off must be able to go on.
  thaw(sandboxId: string): Promise<void> {
    return this.inner.thaw(sandboxId);
  }
  list(): Promise<{ id: string; status: ContainerStatus }[]> {
    return this.inner.list();
  }
  exec(sandboxId: string, spec: ExecSpec): Promise<ExecOutcome> {
    return this.inner.exec(sandboxId, spec);
  }
  openSession(sandboxId: string, spec: SessionSpec, handlers: { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void }): SessionHandle {
    return this.inner.openSession(sandboxId, spec, handlers);
  }
  async mountInto(sandboxId: string, hostPath: string, guestPath: string, opts: { rw: boolean }): Promise<void> {
    this.need('hotMounts');
    return this.inner.mountInto(sandboxId, hostPath, guestPath, opts);
  }
  async unmountFrom(sandboxId: string, guestPath: string, opts: { force: boolean }): Promise<UnmountOutcome> {
    this.need('hotMounts');
    if (opts.force) this.need('holders');
    return this.inner.unmountFrom(sandboxId, guestPath, opts);
  }
  async holdersOf(sandboxId: string, guestPath: string): Promise<Holder[]> {
    this.need('holders');
    return this.inner.holdersOf(sandboxId, guestPath);
  }
  async listenInSandbox(sandboxId: string, port: number): Promise<ListenHandle> {
    this.need('egress');
    return this.inner.listenInSandbox(sandboxId, port);
  }
  async exposePort(sandboxId: string, port: number, opts: { maxConnections: number }): Promise<string> {
    this.need('exposePorts');
    return this.inner.exposePort(sandboxId, port, opts);
  }
  unexposePort(sandboxId: string, port: number | 'all'): Promise<void> {
    return this.inner.unexposePort(sandboxId, port);
  }
  async checkpoint(sandboxId: string, imageDir: string): Promise<void> {
    this.need('memorySnapshots');
    return this.inner.checkpoint(sandboxId, imageDir);
  }
  forget(sandboxId: string): Promise<void> {
    return this.inner.forget(sandboxId);
  }
  setHostname(sandboxId: string, hostname: string): Promise<void> {
    return this.inner.setHostname(sandboxId, hostname);
  }
  sweepStrays(): Promise<void> {
    return this.inner.sweepStrays();
  }
  stats(sandboxId: string): ReturnType<RuntimeDriver['stats']> {
    return this.inner.stats(sandboxId);
  }
  listCgroups(): Promise<string[]> {
    return this.inner.listCgroups();
  }
  removeCgroups(sandboxId: string): Promise<void> {
    return this.inner.removeCgroups(sandboxId);
  }
  release(): Promise<void> {
    return this.inner.release();
  }
}

/** The chosen driver, with what NOOK_RUNTIME_DISABLE names turned off. */
export function restrictRuntime(driver: RuntimeDriver, disable = process.env.NOOK_RUNTIME_DISABLE): RuntimeDriver {
  const off = parseDisabled(disable);
  return off.size === 0 ? driver : new RestrictedDriver(driver, off);
}
