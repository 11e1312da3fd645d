/*
 * A copy session: the fast path of `nook cp` (see native/copy/nook-copy.c for the host side).
 * The daemon's relay sends one F_COPY frame with a pipe end (SCM_RIGHTS); the host file
 * itself never enters the sandbox, only a pipe. Here, inside the sandbox's own root and
 * mount namespace, nook-init moves the bytes between that pipe and the sandbox's file with
 * splice (no copy through user space). The host side counts, bounds and hashes them.
 *
 *   in  PATH MODE      pipe -> an unnamed O_TMPFILE in PATH's directory; linked in (renamed
 *                      over PATH, a symlink there replaced, never followed) only after the
 *                      relay's F_COPY_DONE says how many bytes it sent and that many came.
 *   out PATH MAXBYTES  PATH -> pipe; refused before a byte moves when it is not a regular
 *                      file or is larger than MAXBYTES, stopped when it grows past it.
 *
 * Paths resolve with openat2(RESOLVE_NO_MAGICLINKS): a /proc/PID/fd/N link planted in the
 * sandbox cannot reach the pipe or anything else this process holds. The directory is
 * opened once, first: the temp file, its link and the rename all happen relative to it,
 * so a sandbox swapping a path component mid-copy cannot move where the file lands.
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

#define SPLICE_CHUNK (1 << 20)

/* The pipe: closed before the session lingers, so a relay still writing gets EPIPE at once. */
static int session_pipe = -1;

static int open_in_sandbox(const char *path, int flags) {
  struct open_how how = {.flags = (unsigned long long)flags | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
}

/* Sends the outcome (a message on stderr when it failed) and waits for the relay to hang up. */
static int report(int conn, int code, const char *what, const char *path) {
  char text[4600];
  int e = errno;
  if (session_pipe >= 0) close(session_pipe), session_pipe = -1;
  errno = e;
  if (code != 0) {
    int n = snprintf(text, sizeof text, "%s %s: %s\n", what, path, strerror(errno));
    frame_write(conn, F_STDERR, text, (size_t)n);
  }
  int n = snprintf(text, sizeof text, "%d 0", code);
  frame_write(conn, F_EXIT, text, (size_t)n);
  struct pollfd linger = {conn, POLLIN, 0};
  while (poll(&linger, 1, 10000) > 0 && read(conn, text, sizeof text) > 0) {
  }
  return 0;
}

static int not_found(void) {
  return errno == ENOENT || errno == ENOTDIR ? 2 : 1;
}

static int copy_in(int conn, int pipefd, const char *path, mode_t mode) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  if (!slash || !*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
    errno = EINVAL;
    return report(conn, 4, "write", path);
  }
  char dir[4096];
  snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  int dirfd = open_in_sandbox(dir, O_PATH | O_DIRECTORY);
  if (dirfd < 0) return report(conn, not_found(), "write", path);
  struct stat st;
  if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
    errno = EISDIR;
    return report(conn, 4, "write", path);
  }
  int fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode & 0777);
  if (fd < 0) return report(conn, 1, "write", path);
  long long total = 0;
  ssize_t n;
  while ((n = splice(pipefd, NULL, fd, NULL, SPLICE_CHUNK, SPLICE_F_MOVE)) > 0) total += n;
  if (n < 0) return report(conn, 1, "write", path);
  /* EOF on the pipe is not enough: only the relay's count says nothing was cut off. */
  char type;
  char *data;
  uint32_t len;
  if (frame_read(conn, &type, &data, &len) != 0) return 1; /* the relay is gone: the temp file goes with us */
  if (type != F_COPY_DONE || atoll(data) != total) {
    errno = EPIPE;
    return report(conn, 1, "write (cut short)", path);
  }
  fchmod(fd, mode & 0777);
  char proc[64], tmp[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  snprintf(tmp, sizeof tmp, ".nook-copy-%d", getpid());
  if (linkat(AT_FDCWD, proc, dirfd, tmp, AT_SYMLINK_FOLLOW) != 0) return report(conn, 1, "write", path);
  if (renameat(dirfd, tmp, dirfd, base) != 0) {
    int e = errno;
    unlinkat(dirfd, tmp, 0);
    errno = e;
    return report(conn, e == EISDIR ? 4 : 1, "write", path);
  }
  return report(conn, 0, "", path);
}

static int copy_out(int conn, int pipefd, const char *path, long long max) {
  /* O_NONBLOCK: a FIFO must not hang us; only regular files are read. */
  int fd = open_in_sandbox(path, O_RDONLY | O_NONBLOCK);
  if (fd < 0) return report(conn, not_found(), "read", path);
  struct stat st;
  if (fstat(fd, &st) != 0) return report(conn, 1, "read", path);
  if (!S_ISREG(st.st_mode)) {
    errno = EINVAL;
    return report(conn, 4, "read (not a regular file)", path);
  }
  if (st.st_size > max) {
    errno = EFBIG;
    return report(conn, 3, "read", path);
  }
  long long total = 0;
  ssize_t n;
  while ((n = splice(fd, NULL, pipefd, NULL, SPLICE_CHUNK, 0)) > 0) {
    total += n;
    if (total > max) {
      errno = EFBIG;
      return report(conn, 3, "read (grew while read)", path);
    }
  }
  return report(conn, n < 0 ? 1 : 0, "read", path);
}

int run_copy_session(int conn, int pipefd, char *buf, uint32_t len) {
  char *end = buf + len, *f[3] = {0};
  char *p = buf;
  for (int i = 0; i < 3 && p < end; i++) {
    f[i] = p;
    p += strnlen(p, (size_t)(end - p)) + 1;
  }
  struct stat st;
  session_pipe = pipefd;
  if (!f[2] || fstat(pipefd, &st) != 0 || !S_ISFIFO(st.st_mode) || f[1][0] != '/') return 125;
  if (strcmp(f[0], "in") == 0) return copy_in(conn, pipefd, f[1], (mode_t)strtoul(f[2], NULL, 8));
  if (strcmp(f[0], "out") == 0) return copy_out(conn, pipefd, f[1], atoll(f[2]));
  return 125;
}
