/*
 * nook-copy's commands run by the CLI (the relay's side is nook-copy.c and tar-relay.c).
 *
 *   nook-copy send SOCKET|-
 *     Run by the CLI: hands its open file (fd 3: the source to copy in, or the fresh temp
 *     file to copy out into) to the relay listening at SOCKET, with SCM_RIGHTS. With "-",
 *     SOCKET comes as one line on stdin (the CLI starts this before it asks the daemon, so
 *     the two starts overlap); stdin closed without a line: nothing to do.
 *
 *   nook-copy replace TMP TARGET
 *     Run by the CLI after a copy out, when TARGET is an existing file: swaps TMP in with
 *     renameat2(RENAME_EXCHANGE), then removes the old file (now at TMP). Same result as
 *     rename(TMP, TARGET), TARGET always naming a whole file, but ext4 starts writing back a
 *     file renamed over another one inside rename() (auto_da_alloc: ~0.4 s for 1 GiB), and
 *     not on an exchange. Exit 3: not swapped (the CLI renames).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../src/frame.h"
#include "relay.h"

static int send_fd(int sock, int fd, const void *data, size_t len) {
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {(void *)data, len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  if (n < 0) return -1;
  return (size_t)n == len ? 0 : write_all(sock, (const char *)data + n, len - (size_t)n);
}

int run_send(const char *path) {
  char line[4096];
  if (strcmp(path, "-") == 0) {
    if (!fgets(line, sizeof line, stdin)) return 1;
    line[strcspn(line, "\n")] = 0;
    path = line;
  }
  struct sockaddr_un addr;
  int s = unix_socket(path, &addr);
  if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0 || send_fd(s, 3, "F", 1) != 0) {
    fprintf(stderr, "nook-copy: cannot hand the file over at %s: %s\n", path, strerror(errno));
    return 1;
  }
  char b;
  while (read(s, &b, 1) > 0) {
  }
  return 0;
}

int run_replace(const char *tmp, const char *target) {
  struct stat st;
  if (lstat(target, &st) != 0 || !S_ISREG(st.st_mode) || renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_EXCHANGE) != 0) return 3;
  /* The old file's name goes now; its blocks and page cache are freed when its last reference
   * goes, which for a large file just written can take a while (waiting on its writeback):
   * a detached child holds that reference and drops it after we have answered. */
  int old = open(tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (unlink(tmp) == 0) {
    int gone[2];
    if (old >= 0 && pipe2(gone, O_CLOEXEC) == 0 && fork() == 0) {
      /* Waits for our exit (EOF on the pipe), so its reference is the last one. */
      close(gone[1]);
      setsid();
      char b;
      while (read(gone[0], &b, 1) > 0) {
      }
      close(old);
      _exit(0);
    }
    if (old >= 0) close(old);
    return 0;
  }
  if (old >= 0) close(old);
  /* TARGET became something else (a directory) after the check: swap back, the CLI's rename decides. */
  int e = errno;
  if (renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_EXCHANGE) == 0) return 3;
  fprintf(stderr, "nook-copy: cannot remove the replaced file %s: %s\n", tmp, strerror(e));
  return 1;
}

