/*
 * A copy session: the sandbox's half of `nook cp`'s fast path (the host's half is
 * native/copy/nook-copy.c, a relay the daemon starts per copy). nook-init only resolves and
 * opens, here inside the sandbox's own root and mount namespace, and hands the open sandbox
 * file to the relay over the agent connection (SCM_RIGHTS); the relay moves, bounds and
 * hashes the bytes on the host. The host file never enters the sandbox, and the host never
 * resolves a sandbox path: it only ever holds what this code opened.
 *
 *   in  PATH MODE      opens an unnamed O_TMPFILE in PATH's directory and hands it over;
 *                      after the relay's F_COPY_DONE (the byte count it wrote), checks the
 *                      file holds exactly that many, then links it in (renamed over PATH, a
 *                      symlink there replaced, never followed). Cut short: nothing is linked.
 *   out PATH MAXBYTES  opens PATH for reading; refused before it is handed over when it is
 *                      not a regular file or is larger than MAXBYTES (the relay bounds too).
 *
 * Paths resolve with openat2(RESOLVE_NO_MAGICLINKS): a /proc/PID/fd/N link planted in the
 * sandbox cannot reach anything this process holds. The directory is opened once, first:
 * the temp file, its link and the rename all happen relative to it, so a sandbox swapping
 * a path component mid-copy cannot move where the file lands.
 * Exit codes as fs.c: 0 ok, 2 not found, 3 too large, 4 wrong type, 1 other.
 */
#define _GNU_SOURCE
#include "fastcopy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "frame.h"

static int open_in_sandbox(const char *path, int flags) {
  struct open_how how = {.flags = (unsigned long long)flags | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
}

/* Sends the outcome (a message on stderr when it failed) and waits for the relay to hang up.
 * `drop` (an old file replaced by the copy) is closed last: freeing a large file's extents
 * can take a while, and the copy is done before that. */
static int report(int conn, int code, const char *what, const char *path, int drop) {
  char text[4600];
  if (code != 0) {
    int n = snprintf(text, sizeof text, "%s %s: %s\n", what, path, strerror(errno));
    frame_write(conn, F_STDERR, text, (size_t)n);
  }
  int n = snprintf(text, sizeof text, "%d 0", code);
  frame_write(conn, F_EXIT, text, (size_t)n);
  struct pollfd linger = {conn, POLLIN, 0};
  while (poll(&linger, 1, 10000) > 0 && read(conn, text, sizeof text) > 0) {
  }
  if (drop >= 0) close(drop);
  return 0;
}

static int not_found(void) {
  return errno == ENOENT || errno == ENOTDIR ? 2 : 1;
}

static int copy_in(int conn, const char *path, mode_t mode) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  if (!slash || !*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
    errno = EINVAL;
    return report(conn, 4, "write", path, -1);
  }
  char dir[4096];
  snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  int dirfd = open_in_sandbox(dir, O_PATH | O_DIRECTORY);
  if (dirfd < 0) return report(conn, not_found(), "write", path, -1);
  struct stat st;
  if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
    errno = EISDIR;
    return report(conn, 4, "write", path, -1);
  }
  int fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode & 0777);
  if (fd < 0) return report(conn, 1, "write", path, -1);
  if (frame_write_fd(conn, F_COPY_FILE, "", 0, fd) != 0) return 1;
  /* Only the relay's count says nothing was cut off; without it the temp file goes with us. */
  char type;
  char *data;
  uint32_t len;
  if (frame_read(conn, &type, &data, &len) != 0) return 1;
  if (type != F_COPY_DONE || fstat(fd, &st) != 0 || st.st_size != atoll(data)) {
    errno = EPIPE;
    return report(conn, 1, "write (cut short)", path, -1);
  }
  fchmod(fd, mode & 0777);
  char proc[64], tmp[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  snprintf(tmp, sizeof tmp, ".nook-copy-%d", getpid());
  if (linkat(AT_FDCWD, proc, dirfd, tmp, AT_SYMLINK_FOLLOW) != 0) return report(conn, 1, "write", path, -1);
  /* Hold what is replaced, so its last reference (and the freeing of its blocks) goes after the answer. */
  int old = openat(dirfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (renameat(dirfd, tmp, dirfd, base) != 0) {
    int e = errno;
    unlinkat(dirfd, tmp, 0);
    errno = e;
    return report(conn, e == EISDIR ? 4 : 1, "write", path, old);
  }
  /* What was linked in, as the sandbox sees it: the path may already name something else. */
  if (fstat(fd, &st) == 0) {
    char info[160];
    int n = snprintf(info, sizeof info, "%u %u %u %lld %lld", st.st_mode & 07777, st.st_uid, st.st_gid, (long long)st.st_size,
                     (long long)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
    frame_write(conn, F_STDOUT, info, (size_t)n);
  }
  return report(conn, 0, "", path, old);
}

static int copy_out(int conn, const char *path, long long max) {
  /* O_NONBLOCK: a FIFO must not hang us; only regular files are handed over. */
  int fd = open_in_sandbox(path, O_RDONLY | O_NONBLOCK);
  if (fd < 0) return report(conn, not_found(), "read", path, -1);
  struct stat st;
  if (fstat(fd, &st) != 0) return report(conn, 1, "read", path, -1);
  if (!S_ISREG(st.st_mode)) {
    errno = EINVAL;
    return report(conn, 4, "read (not a regular file)", path, -1);
  }
  if (st.st_size > max) {
    errno = EFBIG;
    return report(conn, 3, "read", path, -1);
  }
  if (frame_write_fd(conn, F_COPY_FILE, "", 0, fd) != 0) return 1;
  close(fd);
  return report(conn, 0, "", path, -1);
}

int run_copy_session(int conn, char *buf, uint32_t len) {
  char *end = buf + len, *f[3] = {0};
  char *p = buf;
  for (int i = 0; i < 3 && p < end; i++) {
    f[i] = p;
    p += strnlen(p, (size_t)(end - p)) + 1;
  }
  if (!f[2] || f[1][0] != '/') return 125;
  /* This process inherited PID 1's stdio, which crun opened on the host (its log file): a
   * path through /proc/self/fd must not find it (openat2 refuses magic links as well). */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) dup2(null, 0), dup2(null, 1), dup2(null, 2), close(null);
  if (strcmp(f[0], "in") == 0) return copy_in(conn, f[1], (mode_t)strtoul(f[2], NULL, 8));
  if (strcmp(f[0], "out") == 0) return copy_out(conn, f[1], atoll(f[2]));
  return 125;
}
