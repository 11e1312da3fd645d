/**
 * StorageDriver: where image and sandbox root filesystems live. Drivers are thin and
 * stateless (core keeps the records); every driver passes test/integration/storage-conformance.
 */
export interface StorageInfo {
  driver: 'btrfs' | 'dir';
  /** Snapshot/fork cost does not grow with the data (btrfs: yes; dir: copies). */
  constantTimeSnapshots: boolean;
}

export interface StorageDriver {
  info(): StorageInfo;
  /** Creates or reattaches the backing store (btrfs: the loop pool). Idempotent. */
  init(): Promise<void>;
  /** Detaches the backing store (btrfs: unmounts the pool; files stay in the pool file). */
  release(): Promise<void>;

  /** A fresh writable directory to build image `id` in; `commitImage` seals it read-only. */
  createImageStaging(id: string): Promise<string>;
  commitImage(id: string): Promise<void>;
  discardImageStaging(id: string): Promise<void>;
  imagePath(id: string): string;
  deleteImage(id: string): Promise<void>;
  listImages(): Promise<string[]>;
  listStaging(): Promise<string[]>;

  /** A writable root filesystem for sandbox `sandboxId`, starting as a copy of image `imageId`. */
  createRootfs(sandboxId: string, imageId: string): Promise<void>;
  /** Makes the rootfs usable as a container root and returns its path (dir: mounts the overlay). */
  activateRootfs(sandboxId: string): Promise<string>;
  deactivateRootfs(sandboxId: string): Promise<void>;
  deleteRootfs(sandboxId: string): Promise<void>;
  listRootfs(): Promise<string[]>;
  rootfsExists(sandboxId: string): Promise<boolean>;
}
