/*
 * btrfs subvolume snapshot and delete by ioctl: the hot paths of create, fork and
 * destroy, without the ~3 ms a `btrfs` CLI start costs.
 *
 *   nook-init subvol snapshot SRC DST [ro]
 *   nook-init subvol delete PATH
 */
#define _GNU_SOURCE
#include "subvol.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/btrfs.h>
#include <stdio.h>
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

int run_subvol(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[2], "snapshot") == 0) return snapshot(argv[3], argv[4], argc >= 6 && strcmp(argv[5], "ro") == 0);
  if (argc >= 4 && strcmp(argv[2], "delete") == 0) return delete_subvol(argv[3]);
  fprintf(stderr, "usage: nook-init subvol snapshot SRC DST [ro] | nook-init subvol delete PATH\n");
  return EXIT_NOOK;
}
