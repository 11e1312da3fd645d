/*
 * btrfs subvolume snapshot and delete by ioctl: the hot paths of create, fork and
 * destroy, without the ~3 ms a `btrfs` CLI start costs.
 *
 *   nook-init subvol snapshot SRC DST [ro]
 *   nook-init subvol delete PATH
 *
 * and per-sandbox disk limits with simple quotas (squota, kernel 6.7+; btrfs-progs here
 * predates `quota enable --simple`). A sandbox's units (rootfs, persisted dirs) join one
 * level-1 qgroup 1/GROUP whose exclusive limit is the sandbox's disk limit:
 *
 *   nook-init subvol quota POOL                          enable simple quotas
 *   nook-init subvol qgroup-assign POOL GROUP BYTES|- UNIT...
 *   nook-init subvol qgroup-release POOL GROUP keep|destroy UNIT...
 */
#define _GNU_SOURCE
#include "subvol.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/btrfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define EXIT_NOOK 125

/* Opens the parent directory of path; copies the last component into name. */
static int open_parent(const char *path, char *name, size_t name_len) {
  char a[4096], b[4096];
  snprintf(a, sizeof a, "%s", path);
  snprintf(b, sizeof b, "%s", path);
  snprintf(name, name_len, "%s", basename(a));
  return open(dirname(b), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int snapshot(const char *src, const char *dst, int readonly) {
  int sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char name[BTRFS_SUBVOL_NAME_MAX + 1];
  int pfd = open_parent(dst, name, sizeof name);
  if (sfd < 0 || pfd < 0) {
    fprintf(stderr, "nook-init: snapshot %s -> %s: %s\n", src, dst, strerror(errno));
    return EXIT_NOOK;
  }
  struct btrfs_ioctl_vol_args_v2 args;
  memset(&args, 0, sizeof args);
  args.fd = sfd;
  args.flags = readonly ? BTRFS_SUBVOL_RDONLY : 0;
  snprintf(args.name, sizeof args.name, "%s", name);
  if (ioctl(pfd, BTRFS_IOC_SNAP_CREATE_V2, &args) != 0) {
    fprintf(stderr, "nook-init: snapshot %s -> %s: %s\n", src, dst, strerror(errno));
    return EXIT_NOOK;
  }
  return 0;
}

static int delete_subvol(const char *path) {
  char name[BTRFS_PATH_NAME_MAX + 1];
  int pfd = open_parent(path, name, sizeof name);
  if (pfd < 0) {
    fprintf(stderr, "nook-init: delete %s: %s\n", path, strerror(errno));
    return EXIT_NOOK;
  }
  struct btrfs_ioctl_vol_args args;
  memset(&args, 0, sizeof args);
  snprintf(args.name, sizeof args.name, "%s", name);
  if (ioctl(pfd, BTRFS_IOC_SNAP_DESTROY, &args) != 0) {
    int e = errno;
    fprintf(stderr, "nook-init: delete %s: %s\n", path, strerror(e));
    /* ENOTEMPTY: it holds nested subvolumes; the caller deletes those first. */
    return e == ENOTEMPTY ? 2 : EXIT_NOOK;
  }
  return 0;
}

#define QUOTA_CTL_ENABLE_SIMPLE 4 /* BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA, newer than these headers */
#define LEVEL1(g) ((1ULL << 48) | (g))

static int fail(const char *what, const char *path) {
  fprintf(stderr, "nook-init: %s %s: %s\n", what, path, strerror(errno));
  return EXIT_NOOK;
}

static int quota_enable(const char *pool) {
  int fd = open(pool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail("open", pool);
  struct btrfs_ioctl_quota_ctl_args args;
  memset(&args, 0, sizeof args);
  args.cmd = QUOTA_CTL_ENABLE_SIMPLE;
  if (ioctl(fd, BTRFS_IOC_QUOTA_CTL, &args) != 0) return fail("enable simple quotas on", pool);
  return 0;
}

/* The subvolume id of the subvolume whose root is `path` (never following a final symlink). */
static int subvol_id(const char *path, unsigned long long *id) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct btrfs_ioctl_ino_lookup_args args;
  memset(&args, 0, sizeof args);
  args.objectid = 256; /* BTRFS_FIRST_FREE_OBJECTID: the inode of every subvolume root */
  int rc = ioctl(fd, BTRFS_IOC_INO_LOOKUP, &args);
  close(fd);
  *id = args.treeid;
  return rc;
}

static int relate(int pfd, const char *unit, unsigned long long group, int assign) {
  unsigned long long id;
  if (subvol_id(unit, &id) != 0) return assign ? fail("look up subvolume", unit) : 0;
  struct btrfs_ioctl_qgroup_assign_args args;
  memset(&args, 0, sizeof args);
  args.assign = assign;
  args.src = id;
  args.dst = LEVEL1(group);
  if (ioctl(pfd, BTRFS_IOC_QGROUP_ASSIGN, &args) < 0 && errno != (assign ? EEXIST : ENOENT)) return fail(assign ? "assign" : "unassign", unit);
  return 0;
}

static int qgroup_assign(int argc, char **argv) {
  const char *pool = argv[3];
  unsigned long long group = strtoull(argv[4], NULL, 10);
  int pfd = open(pool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) return fail("open", pool);
  struct btrfs_ioctl_qgroup_create_args create;
  memset(&create, 0, sizeof create);
  create.create = 1;
  create.qgroupid = LEVEL1(group);
  if (ioctl(pfd, BTRFS_IOC_QGROUP_CREATE, &create) != 0 && errno != EEXIST) return fail("create qgroup in", pool);
  for (int i = 6; i < argc; i++)
    if (relate(pfd, argv[i], group, 1) != 0) return EXIT_NOOK;
  if (strcmp(argv[5], "-") == 0) return 0;
  struct btrfs_ioctl_qgroup_limit_args limit;
  memset(&limit, 0, sizeof limit);
  limit.qgroupid = LEVEL1(group);
  limit.lim.flags = BTRFS_QGROUP_LIMIT_MAX_EXCL;
  limit.lim.max_excl = strtoull(argv[5], NULL, 10);
  if (ioctl(pfd, BTRFS_IOC_QGROUP_LIMIT, &limit) != 0) return fail("limit qgroup in", pool);
  return 0;
}

/* Units leave the group before they are deleted, or the group could never be destroyed. */
static int qgroup_release(int argc, char **argv) {
  const char *pool = argv[3];
  unsigned long long group = strtoull(argv[4], NULL, 10);
  int pfd = open(pool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) return fail("open", pool);
  for (int i = 6; i < argc; i++)
    if (relate(pfd, argv[i], group, 0) != 0) return EXIT_NOOK;
  if (strcmp(argv[5], "destroy") != 0) return 0;
  struct btrfs_ioctl_qgroup_create_args destroy;
  memset(&destroy, 0, sizeof destroy);
  destroy.qgroupid = LEVEL1(group);
  if (ioctl(pfd, BTRFS_IOC_QGROUP_CREATE, &destroy) != 0 && errno != ENOENT) return fail("destroy qgroup in", pool);
  return 0;
}

int run_subvol(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[2], "snapshot") == 0) return snapshot(argv[3], argv[4], argc >= 6 && strcmp(argv[5], "ro") == 0);
  if (argc >= 4 && strcmp(argv[2], "delete") == 0) return delete_subvol(argv[3]);
  if (argc >= 4 && strcmp(argv[2], "quota") == 0) return quota_enable(argv[3]);
  if (argc >= 6 && strcmp(argv[2], "qgroup-assign") == 0) return qgroup_assign(argc, argv);
  if (argc >= 6 && strcmp(argv[2], "qgroup-release") == 0) return qgroup_release(argc, argv);
  fprintf(stderr, "usage: nook-init subvol snapshot SRC DST [ro] | nook-init subvol delete PATH\n");
  return EXIT_NOOK;
}
