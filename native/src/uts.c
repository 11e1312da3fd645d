/*
 * nook-init sethostname PID NAME [START_TICKS]   (host side, run by the daemon)
 *
 * Enters the UTS namespace of process PID (a sandbox's PID 1) and sets its hostname. A
 * sandbox taken from the warm pool was started under a placeholder name; the user's name
 * becomes its hostname before anyone can run anything in it. Host root holds CAP_SYS_ADMIN
 * over every sandbox's user namespace; nothing inside the sandbox (which lacks it) can.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "uts.h"

#define EXIT_NOOK 125

/* The kernel start time (field 22 of /proc/PID/stat, clock ticks since boot) read through dirfd, or -1. */
static long long start_ticks(int dirfd) {
  char buf[1024];
  int fd = openat(dirfd, "stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  /* The command name may hold spaces or ')': fields are counted from the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  int field = 2;
  for (; *p && field < 22; p++) {
    if (*p == ' ') field++;
  }
  if (field != 22) return -1;
  long long v = 0;
  for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + (*p - '0');
  return v;
}

/* A decimal argument of at most `digits` digits, or -1. */
static long long decimal(const char *s, size_t digits) {
  if (s[0] == '\0' || strlen(s) > digits) return -1;
  long long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  return v;
}

int run_sethostname(int argc, char **argv) {
  long long pid = argc >= 4 ? decimal(argv[2], 10) : -1;
  long long want_start = argc == 5 ? decimal(argv[4], 20) : -2;
  size_t len = argc >= 4 ? strlen(argv[3]) : 0;
  if (pid <= 0 || len == 0 || len > 64 || (argc != 4 && argc != 5) || want_start == -1) {
    fprintf(stderr, "usage: nook-init sethostname PID NAME [START_TICKS] (NAME 1-64 bytes)\n");
    return EXIT_NOOK;
  }
  /*
   * /proc/PID is opened once and everything else is read through it: if PID was recycled
   * before the open, the start time differs; if it dies after, the reads through the old
   * directory fail. So a recycled pid is never entered when the caller gave the start time.
   */
  char path[64];
  snprintf(path, sizeof path, "/proc/%lld", pid);
  int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    fprintf(stderr, "nook-init: no process %lld: %s\n", pid, strerror(errno));
    return EXIT_NOOK;
  }
  int ns = openat(dir, "ns/uts", O_RDONLY | O_CLOEXEC);
  if (want_start >= 0 && start_ticks(dir) != want_start) {
    fprintf(stderr, "nook-init: process %lld is not the one expected (its start time differs)\n", pid);
    return EXIT_NOOK;
  }
  close(dir);
  if (ns < 0 || setns(ns, CLONE_NEWUTS) != 0) {
    fprintf(stderr, "nook-init: cannot enter the UTS namespace of %lld: %s\n", pid, strerror(errno));
    return EXIT_NOOK;
  }
  close(ns);
  if (sethostname(argv[3], len) != 0) {
    fprintf(stderr, "nook-init: cannot set the hostname: %s\n", strerror(errno));
    return EXIT_NOOK;
  }
  return 0;
}
