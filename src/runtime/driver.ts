import type { Limits } from '../api/schemas.js';

/** What a driver can do; core answers NOT_SUPPORTED for a missing feature, never a no-op. */
export interface RuntimeInfo {
  name: 'crun' | 'runc';
  version: string;
  /** Process memory checkpoints (CRIU): not available on this host kind. */
  memorySnapshots: boolean;
  /** Can pause every process of a sandbox (cgroup freezer): snapshots of running sandboxes and safe volume unmounts need it. */
  freeze: boolean;
  /** The host's cgroups: v1, v1 with a cgroup2 mount beside it (hybrid), or unified v2. */
  cgroup: 'v1' | 'v1-hybrid' | 'v2';
}

export interface StartSpec {
  sandboxId: string;
  hostname: string;
  rootfs: string;
  env: Record<string, string>;
  limits: Limits;
  /** Host directories bind-mounted read-write into the sandbox (persisted paths). */
  mounts: { source: string; destination: string }[];
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
  info(): RuntimeInfo;
  start(spec: StartSpec): Promise<void>;
  /** SIGTERM, then SIGKILL after graceMs; removes the container and its cgroups. Idempotent. */
  stop(sandboxId: string, graceMs: number): Promise<void>;
  status(sandboxId: string): Promise<ContainerStatus>;
  /** Host pid of the sandbox's PID 1 (its namespaces are entered through it), or null. */
  initPid(sandboxId: string): Promise<number | null>;
  /** A per-sandbox directory on the host for runtime files (sockets, pid files), root-only. */
  runDir(sandboxId: string): string;
  /** Stops every process of the sandbox in place (for a consistent snapshot); `thaw` undoes it. */
  freeze(sandboxId: string): Promise<void>;
  thaw(sandboxId: string): Promise<void>;
  list(): Promise<{ id: string; status: ContainerStatus }[]>;
  /**
   * Runs one command; resolves when it and every process it started have ended. If the
   * daemon dies meanwhile, the sandbox's agent sees the hang-up and kills the tree itself.
   */
  exec(sandboxId: string, spec: ExecSpec): Promise<ExecOutcome>;
  /** An open-ended command (background process, terminal); the caller bounds it. */
  openSession(sandboxId: string, spec: SessionSpec, handlers: { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void }): SessionHandle;
  /** Live memory, CPU time and process count of a running sandbox (null when it has no cgroup). */
  stats(sandboxId: string): Promise<{ memoryBytes: number | null; cpuSeconds: number | null; pids: number | null } | null>;
  /** Removes cgroups of sandboxes this daemon no longer knows. */
  listCgroups(): Promise<string[]>;
  removeCgroups(sandboxId: string): Promise<void>;
  release(): Promise<void>;
}
