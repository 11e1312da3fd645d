/*
 * Host-side helpers for managed volumes.
 *
 *   nook-init fscrypt add-key MOUNT            raw 64-byte key on stdin; prints its identifier
 *   nook-init fscrypt set-policy DIR KEYID     encrypt an empty directory with that key (v2)
 *   nook-init fscrypt remove-key MOUNT KEYID   lock: plaintext leaves the kernel
 *   nook-init fscrypt policy DIR               prints the key identifier, or "none"
 *
 *   nook-init mount-into PID SRC DST ro|rw     bind SRC at DST inside the sandbox whose
 *       PID 1 is PID, idmapped to its user namespace (files owned by 0 on the volume are
 *       root's inside), DST resolved in the sandbox's root without following symlinks.
 *   nook-init umount-from PID DST...
 *       unmount each DST (in order) inside the sandbox, never lazily: a detached mount
 *       would stay reachable through open files and cwds. A busy one fails (exit 16) and
 *       stays mounted, so the caller can say who holds it.
 *
 * setns into a mount namespace needs a single-threaded process: hence a helper, not Node.
 */
#define _GNU_SOURCE
#include "volume.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fscrypt.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXIT_NOOK 125
#define KEY_BYTES 64

static int die(const char *what) {
  fprintf(stderr, "nook-init: %s: %s\n", what, strerror(errno));
  return errno == EBUSY ? 16 : EXIT_NOOK;
}

static int hex_to_id(const char *hex, __u8 *out) {
  if (strlen(hex) != 2 * FSCRYPT_KEY_IDENTIFIER_SIZE) return -1;
  for (int i = 0; i < FSCRYPT_KEY_IDENTIFIER_SIZE; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (__u8)v;
  }
  return 0;
}

static int add_key(const char *mnt) {
  char buf[sizeof(struct fscrypt_add_key_arg) + KEY_BYTES];
  memset(buf, 0, sizeof buf);
  struct fscrypt_add_key_arg *arg = (struct fscrypt_add_key_arg *)buf;
  ssize_t got = 0, n;
  while (got < KEY_BYTES && (n = read(0, arg->raw + got, KEY_BYTES - got)) > 0) got += n;
  if (got != KEY_BYTES) {
    fprintf(stderr, "nook-init: expected a %d-byte key on stdin\n", KEY_BYTES);
    return EXIT_NOOK;
  }
  arg->key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER;
  arg->raw_size = KEY_BYTES;
  int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ioctl(fd, FS_IOC_ADD_ENCRYPTION_KEY, arg) != 0) return die("add key");
  for (int i = 0; i < FSCRYPT_KEY_IDENTIFIER_SIZE; i++) printf("%02x", arg->key_spec.u.identifier[i]);
  printf("\n");
  explicit_bzero(buf, sizeof buf);
  return 0;
}

static int set_policy(const char *dir, const char *idhex) {
  struct fscrypt_policy_v2 p = {.version = FSCRYPT_POLICY_V2, .contents_encryption_mode = FSCRYPT_MODE_AES_256_XTS, .filenames_encryption_mode = FSCRYPT_MODE_AES_256_CTS, .flags = FSCRYPT_POLICY_FLAGS_PAD_32};
  if (hex_to_id(idhex, p.master_key_identifier) != 0) return EXIT_NOOK;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ioctl(fd, FS_IOC_SET_ENCRYPTION_POLICY, &p) != 0) return die("set policy");
  return 0;
}

static int remove_key(const char *mnt, const char *idhex) {
  struct fscrypt_remove_key_arg arg;
  memset(&arg, 0, sizeof arg);
  arg.key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER;
  if (hex_to_id(idhex, arg.key_spec.u.identifier) != 0) return EXIT_NOOK;
  int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ioctl(fd, FS_IOC_REMOVE_ENCRYPTION_KEY, &arg) != 0) return die("remove key");
  /* Files still open keep their plaintext: say so rather than claim the volume is locked. */
  if (arg.removal_status_flags & FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY) {
    fprintf(stderr, "nook-init: files on the volume are still in use\n");
    return 16;
  }
  return 0;
}

static int get_policy(const char *dir) {
  struct fscrypt_get_policy_ex_arg arg = {.policy_size = sizeof(arg.policy)};
  int fd = open(dir, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return die("open");
  if (ioctl(fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &arg) != 0) {
    if (errno == ENODATA || errno == ENOTTY || errno == EOPNOTSUPP) {
      printf("none\n");
      return 0;
    }
    return die("get policy");
  }
  if (arg.policy.version != FSCRYPT_POLICY_V2) {
    printf("v1\n");
    return 0;
  }
  for (int i = 0; i < FSCRYPT_KEY_IDENTIFIER_SIZE; i++) printf("%02x", arg.policy.v2.master_key_identifier[i]);
  printf("\n");
  return 0;
}

int run_fscrypt(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[2], "add-key") == 0) return add_key(argv[3]);
  if (argc >= 5 && strcmp(argv[2], "set-policy") == 0) return set_policy(argv[3], argv[4]);
  if (argc >= 5 && strcmp(argv[2], "remove-key") == 0) return remove_key(argv[3], argv[4]);
  if (argc >= 4 && strcmp(argv[2], "policy") == 0) return get_policy(argv[3]);
  fprintf(stderr, "usage: nook-init fscrypt add-key|set-policy|remove-key|policy ...\n");
  return EXIT_NOOK;
}

/* Opens (creating as needed) the directory `path` inside the current root, refusing
 * symlinks and ".." on the way: the sandbox owns every component. */
static int open_dir_inside(const char *path) {
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
  if (fd >= 0 || errno != ENOENT) return fd;
  /* Create missing components one by one, each checked the same way. */
  char partial[4096] = "";
  const char *p = path;
  while (*p) {
    while (*p == '/') p++;
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 0) break;
    if (len == 2 && strncmp(p, "..", 2) == 0) {
      errno = EINVAL;
      return -1;
    }
    strncat(partial, "/", sizeof partial - strlen(partial) - 1);
    strncat(partial, p, len < sizeof partial - strlen(partial) - 1 ? len : sizeof partial - strlen(partial) - 1);
    fd = (int)syscall(SYS_openat2, AT_FDCWD, partial, &how, sizeof how);
    if (fd < 0 && errno == ENOENT) {
      if (mkdir(partial, 0755) != 0 && errno != EEXIST) return -1;
      fd = (int)syscall(SYS_openat2, AT_FDCWD, partial, &how, sizeof how);
    }
    if (fd < 0) return -1;
    close(fd);
    p += len;
  }
  return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
}

int run_mount_into(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: nook-init mount-into PID SRC DST ro|rw\n");
    return EXIT_NOOK;
  }
  const char *pid = argv[2], *src = argv[3], *dst = argv[4];
  int readonly = strcmp(argv[5], "rw") != 0;
  char path[64];
  int tree = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0) return die("open_tree");
  snprintf(path, sizeof path, "/proc/%s/ns/user", pid);
  int userns = open(path, O_RDONLY | O_CLOEXEC);
  if (userns < 0) return die("open user namespace");
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (readonly ? MOUNT_ATTR_RDONLY : 0), .userns_fd = (__u64)userns};
  if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0) return die("idmap");
  snprintf(path, sizeof path, "/proc/%s/ns/mnt", pid);
  int mntns = open(path, O_RDONLY | O_CLOEXEC);
  if (mntns < 0 || setns(mntns, CLONE_NEWNS) != 0) return die("enter the sandbox's mount namespace");
  /* setns leaves us at the namespace's root: the sandbox's own / . */
  if (chdir("/") != 0) return die("chdir");
  int target = open_dir_inside(dst);
  if (target < 0) return die("resolve the guest path");
  if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) return die("move_mount");
  return 0;
}

int run_umount_from(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: nook-init umount-from PID DST...\n");
    return EXIT_NOOK;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/ns/mnt", argv[2]);
  int mntns = open(path, O_RDONLY | O_CLOEXEC);
  if (mntns < 0 || setns(mntns, CLONE_NEWNS) != 0) return die("enter the sandbox's mount namespace");
  for (int i = 3; i < argc; i++) {
    if (umount2(argv[i], UMOUNT_NOFOLLOW) != 0) {
      int err = errno;
      fprintf(stderr, "nook-init: umount %s: %s\n", argv[i], strerror(err));
      return err == EBUSY ? 16 : EXIT_NOOK;
    }
  }
  return 0;
}
