/*
 * nook-init sethostname PID NAME   (host side, run by the daemon)
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
#include <unistd.h>

#include "uts.h"

#define EXIT_NOOK 125

int run_sethostname(int argc, char **argv) {
  long pid = -1;
  if (argc == 4 && argv[2][0] != '\0' && strlen(argv[2]) <= 10) {
    pid = 0;
    for (const char *p = argv[2]; *p && pid >= 0; p++) pid = (*p >= '0' && *p <= '9') ? pid * 10 + (*p - '0') : -1;
  }
  size_t len = argc == 4 ? strlen(argv[3]) : 0;
  if (pid <= 0 || len == 0 || len > 64) {
    fprintf(stderr, "usage: nook-init sethostname PID NAME (NAME 1-64 bytes)\n");
    return EXIT_NOOK;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/ns/uts", pid);
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0 || setns(ns, CLONE_NEWUTS) != 0) {
    fprintf(stderr, "nook-init: cannot enter the UTS namespace of %ld: %s\n", pid, strerror(errno));
    return EXIT_NOOK;
  }
  close(ns);
  if (sethostname(argv[3], len) != 0) {
    fprintf(stderr, "nook-init: cannot set the hostname: %s\n", strerror(errno));
    return EXIT_NOOK;
  }
  return 0;
}
