import type { Limits } from '../api/schemas.js';
import type { Holder } from '../util/holders.js';

export type { Holder };

/** The isolation a sandbox asks for: crun (namespaces, crun or runc) or gvisor (runsc, a user-space kernel). */
export type RuntimeKind = 'crun' | 'gvisor';
export const RUNTIME_KINDS: readonly RuntimeKind[] = ['crun', 'gvisor'];

/** What a driver can do; core answers NOT_SUPPORTED for a missing feature, never a no-op. */
export interface RuntimeInfo {
  name: 'crun' | 'runc' | 'runsc';
  kind: RuntimeKind;
  version: string;
  /** The kinds this host can run (the dispatching driver lists each backend it has). */
  available: RuntimeKind[];
  /** Process memory checkpoints (checkpoint, start with memoryImage): gVisor only. */
  memorySnapshots: boolean;
  /** Can pause every process of a sandbox (cgroup freezer): snapshots of running sandboxes and safe volume unmounts need it. */
  freeze: boolean;
  /** mountInto/unmountFrom on a running sandbox (volumes, attachments, host dirs). */
  hotMounts: boolean;
  /** listenInSandbox: the egress proxy's listener on the sandbox's loopback. */
  egress: boolean;
  /** exposePort/unexposePort: host connections reaching a port inside. */
  exposePorts: boolean;
  /**
   * An exceeded pids or memory limit fails the one process and the sandbox lives on. False
   * on gVisor: the limits bound its whole kernel on the host, so exceeding one ends the
   * sandbox's compute (its files are kept; the host is never at risk).
   */
  perProcessLimits: boolean;
  /** holdersOf, and unmountFrom naming (and with force killing) what keeps a mount busy. */
  holders: boolean;
  /** The host's cgroups: v1, v1 with a cgroup2 mount beside it (hybrid), or unified v2. */
  cgroup: 'v1' | 'v1-hybrid' | 'v2';
}

/** What unmountFrom did: core turns `busy` into VOLUME_BUSY with its own names. */
export type UnmountOutcome =
  | { status: 'unmounted'; killed: Holder[] }
  /** Nothing there (no compute, or the sandbox unmounted it itself). */
  | { status: 'not-mounted' }
  | { status: 'busy'; holders: Holder[]; why: string };

/** Something `net.Server.listen()` accepts: a listening socket the daemon accepts on. */
export type ListenHandle = object;

export interface StartSpec {
  sandboxId: string;
  hostname: string;
  rootfs: string;
  env: Record<string, string>;
  limits: Limits;
  /** Host directories bind-mounted read-write into the sandbox (persisted paths). */
  mounts: { source: string; destination: string }[];
  /** Which backend runs it (the host default when absent). */
  runtime?: RuntimeKind;
  /** Start from this saved process memory (a checkpoint's image dir) instead of booting. */
  memoryImage?: string;
}

export type ContainerStatus = 'running' | 'paused' | 'stopped' | 'missing';

/** What runs: the command line and its environment, optionally on a terminal. */
export interface SessionSpec {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  user?: string;
  tty?: { cols: number; rows: number };
}

/** A live command: output arrives through the handlers given at open. */
export interface SessionHandle {
  readonly exited: Promise<{ exitCode: number; signal: string | null }>;
  write(data: Buffer): void;
  /** Writes stdin and waits until the socket takes more (back-pressure for large streams). */
  writeAsync(data: Buffer): Promise<void>;
  /** Stops reading output until resume(): the agent then stops reading the command's. */
  pause(): void;
  resume(): void;
  endStdin(): void;
  resize(cols: number, rows: number): void;
  signal(signum: number): void;
  /** Kills the command and everything it started. */
  kill(): void;
}

export interface ExecSpec extends SessionSpec {
  stdin?: Buffer;
  timeoutMs: number;
  signal?: AbortSignal;
  onStdout: (chunk: Buffer) => void;
  onStderr: (chunk: Buffer) => void;
}

export interface ExecOutcome {
  exitCode: number;
  signal: string | null;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
}

export interface RuntimeDriver {
  /** About the backend that runs this sandbox (the host default without an id, or for one it never started). */
  info(sandboxId?: string): RuntimeInfo;
  start(spec: StartSpec): Promise<void>;
  /** SIGTERM, then SIGKILL after graceMs; removes the container and its cgroups. Idempotent. */
  stop(sandboxId: string, graceMs: number): Promise<void>;
  status(sandboxId: string): Promise<ContainerStatus>;
  /** Stops every process of the sandbox in place (for a consistent snapshot); `thaw` undoes it. */
  freeze(sandboxId: string): Promise<void>;
  thaw(sandboxId: string): Promise<void>;
  list(): Promise<{ id: string; status: ContainerStatus }[]>;
  /**
   * Runs one command; resolves when it and every process it started have ended. If the
   * daemon dies meanwhile, the sandbox's agent sees the hang-up and kills the tree itself.
   */
  exec(sandboxId: string, spec: ExecSpec): Promise<ExecOutcome>;
  /**
   * The host path of the sandbox's agent socket, for a native helper that passes an fd to the
   * agent (the fast file copy); undefined where the runtime cannot take one (gVisor).
   */
  agentSocketPath?(sandboxId: string): string | undefined;
  /** An open-ended command (background process, terminal); the caller bounds it. */
  openSession(sandboxId: string, spec: SessionSpec, handlers: { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void }): SessionHandle;
  /**
   * Mounts a host path into the running sandbox at guestPath (made if missing), owned by
   * the sandbox's root; read-only unless rw. RUNTIME_ERROR when it cannot.
   */
  mountInto(sandboxId: string, hostPath: string, guestPath: string, opts: { rw: boolean }): Promise<void>;
  /**
   * Ends the sandbox's access to what is mounted at guestPath, for real (never lazily):
   * every mount of it there goes. While processes still reach it the answer is `busy`
   * naming them, unless force, which kills them first. The sandbox is frozen meanwhile
   * where the driver can, so nothing opens it between the scan and the unmount.
   */
  unmountFrom(sandboxId: string, guestPath: string, opts: { force: boolean }): Promise<UnmountOutcome>;
  /** Processes of the sandbox that reach what is mounted at guestPath. */
  holdersOf(sandboxId: string, guestPath: string): Promise<Holder[]>;
  /** A listening TCP socket on 127.0.0.1:port inside the sandbox, accepted on by the daemon. */
  listenInSandbox(sandboxId: string, port: number): Promise<ListenHandle>;
  /**
   * A root-only host unix socket whose every connection reaches 127.0.0.1:port inside the
   * sandbox (at most maxConnections at once). Returns its path.
   */
  exposePort(sandboxId: string, port: number, opts: { maxConnections: number }): Promise<string>;
  /** Closes one exposed port, or every one of the sandbox ('all'). Idempotent. */
  unexposePort(sandboxId: string, port: number | 'all'): Promise<void>;
  /**
   * Saves every process of the running sandbox, with its memory, into imageDir (only when
   * info().memorySnapshots); its compute is down afterwards. INVALID_STATE while commands
   * are attached.
   */
  checkpoint(sandboxId: string, imageDir: string): Promise<void>;
  /** The sandbox is destroyed: drop what the driver keeps about it (which backend ran it). */
  forget(sandboxId: string): Promise<void>;
  /** Renames a running sandbox's UTS namespace (a warm-pool sandbox gets its user's name). */
  setHostname(sandboxId: string, hostname: string): Promise<void>;
  /** Daemon start: ends helpers a dead daemon left behind (port bridges), before anything else runs. */
  sweepStrays(): Promise<void>;
  /** Live memory, CPU time and process count of a running sandbox (null when it has no cgroup). */
  stats(sandboxId: string): Promise<{ memoryBytes: number | null; cpuSeconds: number | null; pids: number | null } | null>;
  /** Removes cgroups of sandboxes this daemon no longer knows. */
  listCgroups(): Promise<string[]>;
  removeCgroups(sandboxId: string): Promise<void>;
  release(): Promise<void>;
}
