import { existsSync, promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NookError } from '../api/errors.js';
import type { Health } from '../api/schemas.js';
import { chooseRuntime, type RuntimeDriver } from '../runtime/index.js';
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
import { FileManager } from './files.js';
import { TarTransfer } from './tar-transfer.js';
import { BuildManager } from './builds.js';
import { VolumeManager } from './volumes.js';
import { AttachmentManager } from './attachments.js';
import { TtlScheduler } from './ttl.js';

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

/** The daemon's core: owns the database, the drivers and the managers. */
export class Nook {
  private ttl: TtlScheduler | undefined;

  private constructor(
    readonly paths: Paths,
    readonly db: Db,
    readonly storage: StorageDriver,
    readonly runtime: RuntimeDriver,
    readonly images: ImageManager,
    readonly sandboxes: SandboxManager,
    readonly snapshots: SnapshotManager,
    readonly network: NetworkManager,
    readonly processes: ProcessManager,
    readonly audit: AuditLog,
    readonly policy: PolicyManager,
    readonly retention: RetentionManager,
    readonly files: FileManager,
    readonly volumes: VolumeManager,
    readonly tar: TarTransfer,
    readonly builds: BuildManager,
  ) {
    this.terminals = new TerminalManager(sandboxes, runtime, audit);
  }

  /** Interactive terminals: admitted and audited like exec. */
  readonly terminals: TerminalManager;

  static async open(paths: Paths): Promise<Nook> {
    await fsp.mkdir(paths.stateDir, { recursive: true, mode: 0o711 });
    await ensureTraversable(paths.stateDir);
    for (const d of [paths.storageDir, paths.runtimeStateDir, paths.bundlesDir, paths.initDir]) await fsp.mkdir(d, { recursive: true, mode: 0o711 });
    await fsp.mkdir(paths.cacheDir, { recursive: true, mode: 0o700 });
    // Scratch files of exports and imports a crash interrupted.
    await fsp.rm(paths.tmpDir, { recursive: true, force: true });
    // A root-owned copy the sandboxes bind-mount read-only: the build tree may change under us.
    const init = join(paths.initDir, 'nook-init');
    await fsp.copyFile(initBinarySource(), `${init}.new`);
    await fsp.chmod(`${init}.new`, 0o755);
    await fsp.rename(`${init}.new`, init);

    const runtime = await chooseRuntime({ stateRoot: paths.runtimeStateDir, bundlesDir: paths.bundlesDir, initDir: paths.initDir, instance: paths.instance });
    const storage = await chooseStorage(paths.storageDir, init);
    await storage.init();
    const db = openDb(paths.dbPath);
    const images = new ImageManager(db, storage, paths.cacheDir);
    const sandboxes = new SandboxManager(db, storage, runtime, images);
    const snapshots = new SnapshotManager(db, storage, runtime, images, sandboxes);
    const network = new NetworkManager(db, runtime, sandboxes, init);
    const processes = new ProcessManager(db, runtime, sandboxes, new LogStore(join(paths.stateDir, 'logs')));
    const audit = new AuditLog(db);
    const policy = new PolicyManager(db);
    sandboxes.audit = audit;
    images.audit = audit;
    sandboxes.policy = policy;
    network.policy = policy;
    const retention = new RetentionManager(db, storage, sandboxes, snapshots, images, network, audit, join(paths.stateDir, 'logs'));
    const files = new FileManager(sandboxes, runtime, audit);
    const tar = new TarTransfer(sandboxes, runtime, files, audit);
    const volumes = new VolumeManager(db, runtime, sandboxes, paths.stateDir, init);
    retention.volumes = volumes;
    new AttachmentManager(runtime, sandboxes, policy, init);
    const builds = new BuildManager(images, sandboxes, snapshots, files, tar, audit);
    const nook = new Nook(paths, db, storage, runtime, images, sandboxes, snapshots, network, processes, audit, policy, retention, files, volumes, tar, builds);
    const started = Date.now();
    await network.stopStrayBridges(paths.bundlesDir);
    await images.reconcile();
    await sandboxes.reconcile();
    await snapshots.reconcile();
    processes.reconcile();
    await volumes.reconcile();
    await network.attachRunning();
    await builds.reconcile();
    log('reconciled', { ms: Date.now() - started, sandboxes: sandboxes.count(), runtime: runtime.info().name, storage: storage.info().driver });
    nook.ttl = new TtlScheduler(sandboxes);
    nook.ttl.start();
    return nook;
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
      storage: { driver: st.driver, constantTimeSnapshots: st.constantTimeSnapshots },
      sandboxes: this.sandboxes.count(),
    };
  }

  /** Closes the database; sandboxes keep running (the next daemon reconciles them). */
  async close(): Promise<void> {
    this.ttl?.stop();
    // Listeners close; bridges stop (the next daemon starts them again for running sandboxes).
    this.processes.detachAll();
    await this.network.detachAll();
    this.db.close();
  }

  /** Stops all compute and detaches storage, leaving only files: a clean host. */
  async release(): Promise<void> {
    this.ttl?.stop();
    await this.sandboxes.stopAll();
    await this.volumes.release();
    await this.runtime.release();
    await this.storage.release();
  }
}
