/**
 * StorageDriver: where images, sandboxes and snapshots live. Drivers are thin and
 * stateless (core keeps the records); every driver passes test/integration/storage-conformance.
 *
 * A sandbox's files are units: its rootfs, plus one directory per persisted path
 * (`--persist`), bind-mounted over the rootfs. Snapshots, forks and restores carry every
 * unit; `resetRootfs` replaces only the rootfs, which is what makes persisted paths
 * survive compute replacement.
 */
export interface StorageInfo {
  driver: 'btrfs' | 'dir';
  /** Snapshot, fork and restore cost does not grow with the data (btrfs: yes; dir: copies). */
  constantTimeSnapshots: boolean;
  /** Per-sandbox disk limits are enforced (btrfs with quotas: yes; dir: no). */
  diskLimits: boolean;
}

/** What a sandbox's files take against its disk limit (only where limits are enforced). */
export interface DiskUsage {
  usedBytes: number;
  limitBytes: number | null;
}

export interface StorageUsage {
  sizeBytes: number;
  freeBytes: number;
}

export type SandboxSource = { imageId: string } | { snapshotId: string };

export interface StorageDriver {
  info(): StorageInfo;
  /** Creates or reattaches the backing store (btrfs: the loop pool). Idempotent. */
  init(): Promise<void>;
  /** Detaches the backing store (btrfs: unmounts the pool; files stay in the pool file). */
  release(): Promise<void>;
  usage(): Promise<StorageUsage>;

  /** A fresh writable directory to build image `id` in; `commitImage` seals it read-only. */
  createImageStaging(id: string): Promise<string>;
  commitImage(id: string): Promise<void>;
  discardImageStaging(id: string): Promise<void>;
  imagePath(id: string): string;
  deleteImage(id: string): Promise<void>;
  listImages(): Promise<string[]>;
  listStaging(): Promise<string[]>;

  /**
   * A sandbox's files: from an image (persisted directories seeded with what the image has
   * at those paths) or from a snapshot (every unit as it was). `diskMiB` bounds what the
   * sandbox may write, all units together (only when info().diskLimits).
   */
  createSandbox(sandboxId: string, source: SandboxSource, persistPaths: string[], diskMiB?: number | null): Promise<void>;
  /** Makes the rootfs usable as a container root and returns its path (dir: mounts the overlay). */
  activateRootfs(sandboxId: string): Promise<string>;
  deactivateRootfs(sandboxId: string): Promise<void>;
  /** Host directories for the persisted paths, in the order they were given at create. */
  persistDirs(sandboxId: string): Promise<string[]>;
  /** A fresh rootfs from the image; persisted directories are kept. */
  resetRootfs(sandboxId: string, imageId: string): Promise<void>;
  deleteSandbox(sandboxId: string): Promise<void>;
  listSandboxes(): Promise<string[]>;
  sandboxExists(sandboxId: string): Promise<boolean>;

  /** A read-only copy of every unit of a sandbox (freeze its processes first). */
  snapshotSandbox(sandboxId: string, snapshotId: string): Promise<void>;
  deleteSnapshot(snapshotId: string): Promise<void>;
  listSnapshots(): Promise<string[]>;
  /** Bytes a snapshot holds (walks its files: run it off the hot path). */
  snapshotSizeBytes(snapshotId: string): Promise<number>;
  /** Bytes a sandbox's files take (walks them; for reports, not hot paths). */
  sandboxSizeBytes(sandboxId: string): Promise<number>;
  /** Bytes counted against the sandbox's disk limit, and the limit; null where not enforced. */
  diskUsage(sandboxId: string): Promise<DiskUsage | null>;
  /** A new image from the sandbox's rootfs with its persisted directories laid over it. */
  commitSandbox(sandboxId: string, imageId: string, persistPaths: string[]): Promise<void>;
}
