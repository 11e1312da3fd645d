import { existsSync, promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NookError } from '../api/errors.js';
import type { Health } from '../api/schemas.js';
import { chooseBackends, type RuntimeDriver } from '../runtime/index.js';
import { restrictRuntime } from '../runtime/restricted.js';
import { chooseStorage, type StorageDriver } from '../storage/index.js';
import { openDb, type Db } from '../store/db.js';
import { log } from '../util/log.js';
import { ImageManager } from './images.js';
import type { Paths } from './paths.js';
import { SandboxManager } from './sandboxes.js';
import { SnapshotManager } from './snapshots.js';
import { NetworkManager } from './network.js';
import { LogStore } from './logs.js';
import { ProcessManager } from './processes.js';
import { AuditLog } from './audit.js';
import { TerminalManager } from './terminals.js';
import { PolicyManager } from './policy.js';
import { RetentionManager } from './retention.js';
import { sweepHandoffSockets } from './fast-copy.js';
import { FileManager } from './files.js';
import { TarTransfer } from './tar-transfer.js';
import { BuildManager } from './builds.js';
import { VolumeManager } from './volumes.js';
import { AttachmentManager } from './attachments.js';
import { CommandRunner } from './commands.js';
import { ComputeLifecycle } from './lifecycle.js';
import { MemoryImages } from './memory.js';
import { TtlScheduler } from './ttl.js';
import { ForeignIds } from './foreign-ids.js';
import { WarmPool } from './pool.js';
import { DesktopManager } from './desktop.js';

import { VERSION } from '../api/version.js';

export { VERSION };

/** Where the built nook-init lives: native/build beside the package, or NOOK_INIT_BINARY. */
function initBinarySource(): string {
  if (process.env.NOOK_INIT_BINARY) return process.env.NOOK_INIT_BINARY;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'native', 'build', 'nook-init');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new NookError('INTERNAL', 'nook-init is not built', { hint: 'run npm run build (it needs a C compiler: apt-get install build-essential)' });
}

/**
 * A sandbox's root is an unprivileged host uid: it must be able to traverse (not list)
 * every directory down to its rootfs. Fixes the state dir itself; refuses bad ancestors.
 */
async function ensureTraversable(stateDir: string): Promise<void> {
  const st = await fsp.stat(stateDir);
  if ((st.mode & 0o011) !== 0o011) await fsp.chmod(stateDir, (st.mode & 0o7777) | 0o011);
  for (let dir = dirname(stateDir); ; dir = dirname(dir)) {
    const mode = (await fsp.stat(dir)).mode;
    if ((mode & 0o001) === 0) {
      throw new NookError('INVALID_ARGUMENT', `the state dir's parent ${dir} is not traversable by other users, so sandboxes could not reach their files`, {
        hint: `chmod o+x ${dir}, or choose another NOOK_STATE_DIR`,
      });
    }
    if (dir === '/') break;
  }
}

/**
 * The composition root: every manager gets its collaborators through its constructor, and
 * the order of what happens around compute is declared here, once.
 */
function wire(paths: Paths, db: Db, storage: StorageDriver, runtime: RuntimeDriver, init: string): NookParts {
  const audit = new AuditLog(db);
  const policy = new PolicyManager(db);
  const images = new ImageManager(db, storage, paths.cacheDir, audit);
  const lifecycle = new ComputeLifecycle();
  const memory = new MemoryImages(paths.memoryDir);
  // Built after the sandbox manager, which reaches them through `peers` (below).
  let attachments: AttachmentManager | undefined;
  let snapshots: SnapshotManager | undefined;
  let ttl: TtlScheduler | undefined;
  const built = <T>(m: T | undefined): T => {
    if (!m) throw new Error('a collaborator was used before core/nook.ts built it');
    return m;
  };
  const foreignIds = new ForeignIds(db);
  const pool = new WarmPool(db, storage, runtime, images);
  images.onChange = () => pool.kick();
  const sandboxes = new SandboxManager({
    db, storage, runtime, images, audit, policy, lifecycle, memory, pool,
    peers: {
      checkAttach: (list, rw) => built(attachments).check(list, rw),
      afterDestroy: (id, withSnapshots) => built(snapshots).afterSandboxDestroyed(id, withSnapshots),
      scheduleChanged: () => ttl?.reschedule(),
      onExpiry: (id) => foreignIds.bySandbox(id)?.onExpiry,
    },
  });
  snapshots = new SnapshotManager(db, storage, runtime, images, sandboxes, memory);
  const network = new NetworkManager(db, runtime, sandboxes, policy, join(paths.initDir, 'nook-init'));
  const processes = new ProcessManager(db, runtime, sandboxes, new LogStore(join(paths.stateDir, 'logs')));
  const copyHelper = join(dirname(initBinarySource()), 'nook-copy');
  const files = new FileManager(sandboxes, runtime, audit, { helper: existsSync(copyHelper) ? copyHelper : null, socketDir: dirname(paths.socketPath) });
  const commands = new CommandRunner(db, runtime, sandboxes, files, audit);
  const tar = new TarTransfer(sandboxes, runtime, files, audit);
  const volumes = new VolumeManager(db, runtime, sandboxes, paths.stateDir, init);
  const mounts = new AttachmentManager(runtime, sandboxes, policy, paths.sandboxRunDir);
  attachments = mounts;
  const retention = new RetentionManager(db, storage, sandboxes, snapshots, images, network, audit, join(paths.stateDir, 'logs'), volumes);
  const builds = new BuildManager(images, sandboxes, snapshots, files, tar, audit, commands);
  const terminals = new TerminalManager(sandboxes, runtime, audit);
  ttl = new TtlScheduler(sandboxes);
  const desktop = new DesktopManager({ sandboxes, runtime, processes, network, images, audit });
  // Up in this order, down in reverse: the egress proxy first, then what is mounted, and only
  // then processes restarted on resume, so they see their network and their mounts.
  lifecycle.declare([
    { name: 'network', up: (id) => network.attach(id), down: (id) => network.detach(id), forget: (id) => network.forget(id) },
    { name: 'volumes', up: (id) => volumes.mountDeclared(id), down: (id) => volumes.releaseHeld(id), forget: (id) => volumes.forget(id) },
    { name: 'attachments', up: (id) => mounts.attachAll(id), down: (id) => mounts.detachAll(id) },
    { name: 'processes', up: (id) => processes.restartOnResume(id), forget: (id) => processes.forget(id) },
    // Last up, first down: the desktop's services see the network and mounts; its viewer links die first.
    { name: 'desktop', up: (id) => desktop.up(id), down: (id) => desktop.downHook(id) },
  ]);
  return { paths, db, storage, runtime, images, memory, pool, sandboxes, lifecycle, snapshots, network, processes, audit, policy, retention, files, commands, volumes, attachments: mounts, tar, builds, terminals, ttl, foreignIds, desktop };
}

/** Makes the state dir and its parts, and installs the nook-init the sandboxes bind-mount. */
async function prepareStateDir(paths: Paths): Promise<string> {
  await fsp.mkdir(paths.stateDir, { recursive: true, mode: 0o711 });
  await ensureTraversable(paths.stateDir);
  for (const d of [paths.storageDir, paths.runtimeStateDir, paths.bundlesDir, paths.initDir]) await fsp.mkdir(d, { recursive: true, mode: 0o711 });
  await new MemoryImages(paths.memoryDir).init();
  await fsp.mkdir(paths.cacheDir, { recursive: true, mode: 0o700 });
  // Scratch files of exports and imports a crash interrupted.
  await fsp.rm(paths.tmpDir, { recursive: true, force: true });
  // A root-owned copy the sandboxes bind-mount read-only: the build tree may change under us.
  const init = join(paths.initDir, 'nook-init');
  await fsp.copyFile(initBinarySource(), `${init}.new`);
  await fsp.chmod(`${init}.new`, 0o755);
  await fsp.rename(`${init}.new`, init);
  return init;
}

/** Everything the daemon's core is made of; built (and wired) in one place: Nook.open. */
export interface NookParts {
  paths: Paths;
  db: Db;
  storage: StorageDriver;
  runtime: RuntimeDriver;
  images: ImageManager;
  /** Saved process memory (gVisor cold mode). */
  memory: MemoryImages;
  /** Sandboxes started ahead of demand (`pool.IMAGE` host config). */
  pool: WarmPool;
  sandboxes: SandboxManager;
  lifecycle: ComputeLifecycle;
  snapshots: SnapshotManager;
  network: NetworkManager;
  processes: ProcessManager;
  audit: AuditLog;
  policy: PolicyManager;
  retention: RetentionManager;
  files: FileManager;
  commands: CommandRunner;
  volumes: VolumeManager;
  attachments: AttachmentManager;
  tar: TarTransfer;
  builds: BuildManager;
  terminals: TerminalManager;
  ttl: TtlScheduler;
  foreignIds: ForeignIds;
  desktop: DesktopManager;
}

/** The daemon's core: owns the database, the drivers and the managers. */
export class Nook {
  readonly paths: Paths;
  readonly db: Db;
  readonly storage: StorageDriver;
  readonly runtime: RuntimeDriver;
  readonly images: ImageManager;
  readonly memory: MemoryImages;
  readonly pool: WarmPool;
  readonly sandboxes: SandboxManager;
  readonly lifecycle: ComputeLifecycle;
  readonly snapshots: SnapshotManager;
  readonly network: NetworkManager;
  readonly processes: ProcessManager;
  readonly audit: AuditLog;
  readonly policy: PolicyManager;
  readonly retention: RetentionManager;
  readonly files: FileManager;
  /** exec and run. */
  readonly commands: CommandRunner;
  readonly volumes: VolumeManager;
  readonly attachments: AttachmentManager;
  readonly tar: TarTransfer;
  readonly builds: BuildManager;
  /** Interactive terminals: admitted and audited like exec. */
  readonly terminals: TerminalManager;
  /** Sandbox ids as another platform's API names them (the E2B front). */
  readonly foreignIds: ForeignIds;
  /** Desktop sandboxes: the display, agent input, viewer links. */
  readonly desktop: DesktopManager;
  private readonly ttl: TtlScheduler;

  private constructor(parts: NookParts) {
    ({
      paths: this.paths, db: this.db, storage: this.storage, runtime: this.runtime, images: this.images, memory: this.memory, pool: this.pool, sandboxes: this.sandboxes,
      lifecycle: this.lifecycle, snapshots: this.snapshots, network: this.network, processes: this.processes, audit: this.audit,
      policy: this.policy, retention: this.retention, files: this.files, commands: this.commands, volumes: this.volumes, attachments: this.attachments,
      tar: this.tar, builds: this.builds, terminals: this.terminals, ttl: this.ttl, foreignIds: this.foreignIds, desktop: this.desktop,
    } = parts);
  }

  static async open(paths: Paths): Promise<Nook> {
    const init = await prepareStateDir(paths);
    // NOOK_RUNTIME_DISABLE turns driver features off: this host then answers as a backend without them would.
    const runtime = restrictRuntime(await chooseBackends({ stateRoot: paths.runtimeStateDir, bundlesDir: paths.bundlesDir, initDir: paths.initDir, instance: paths.instance }));
    const storage = await chooseStorage(paths.storageDir, init);
    await storage.init();
    const nook = new Nook(wire(paths, openDb(paths.dbPath), storage, runtime, init));
    await nook.reconcile();
    nook.ttl.start();
    // Pool members a previous daemon left were removed above as orphans: fill afresh.
    nook.pool.kick();
    return nook;
  }

  /** Startup: finish or undo what a crash interrupted, then bring back what was running. */
  private async reconcile(): Promise<void> {
    const started = Date.now();
    // Helpers (port bridges) a daemon that died left behind, before anything else looks.
    await this.runtime.sweepStrays();
    // Fast-copy handoff sockets whose relays died with the previous daemon.
    const handoffs = sweepHandoffSockets(dirname(this.paths.socketPath));
    if (handoffs > 0) log('reconcile: removed fast-copy handoff sockets', { count: handoffs });
    await this.images.reconcile();
    await this.sandboxes.reconcile();
    await this.snapshots.reconcile();
    // Whole images only (a crash mid-checkpoint leaves a temporary dir), and only owned ones.
    for (const key of await this.memory.reconcile((k) => this.sandboxes.find(k) !== undefined || this.snapshots.exists(k))) {
      log('reconcile: removed memory image', { key });
    }
    this.processes.reconcile();
    await this.volumes.reconcile();
    await this.network.attachRunning();
    // The previous daemon's processes ended with it: running desktop sandboxes get their display back.
    for (const s of this.sandboxes.list({ state: 'running' })) await this.desktop.up(s.id).catch((e: Error) => log('desktop: not restarted', { id: s.id, error: e.message }));
    await this.builds.reconcile();
    log('reconciled', { ms: Date.now() - started, sandboxes: this.sandboxes.count(), runtime: this.runtime.info().name, storage: this.storage.info().driver });
  }

  health(): Health {
    const rt = this.runtime.info();
    const st = this.storage.info();
    return {
      ok: true,
      version: VERSION,
      pid: process.pid,
      stateDir: this.paths.stateDir,
      runtime: { name: rt.name, version: rt.version },
      cgroup: rt.cgroup,
      storage: { driver: st.driver, constantTimeSnapshots: st.constantTimeSnapshots },
      sandboxes: this.sandboxes.count(),
    };
  }

  /** Closes the database; sandboxes keep running (the next daemon reconciles them). */
  async close(): Promise<void> {
    this.ttl?.stop();
    // One-shot runs' sandboxes finish going (a kill -9 instead leaves them to the next reconcile).
    await this.sandboxes.settleDestroys();
    // Idle members are destroyed, not left running unlisted until the next daemon's reconcile.
    await this.pool.drain();
    // Listeners close; bridges stop (the next daemon starts them again for running sandboxes).
    this.processes.detachAll();
    await this.network.detachAll();
    this.db.close();
  }

  /** Stops all compute and detaches storage, leaving only files: a clean host. */
  async release(): Promise<void> {
    this.ttl?.stop();
    await this.sandboxes.settleDestroys();
    await this.pool.drain();
    // Every sandbox's compute stops (non-persistent ones are destroyed); files stay.
    for (const s of this.sandboxes.list()) {
      if (s.state === 'paused') continue;
      await this.sandboxes.stop(s.id, 'release').catch((e: Error) => log('release: stop failed', { id: s.id, error: e.message }));
    }
    await this.volumes.release();
    await this.runtime.release();
    await this.storage.release();
  }
}
