#define _GNU_SOURCE
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 65536

static pid_t parent_of(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  /* comm may hold spaces and parentheses: the fields resume after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  char state;
  int ppid;
  if (sscanf(p + 1, " %c %d", &state, &ppid) != 2) return -1;
  return ppid;
}

/* Collects descendants of self from /proc; returns how many. */
static int descendants(pid_t self, pid_t *out, int max) {
  static pid_t pids[MAX_PROCS], ppids[MAX_PROCS];
  int n = 0;
  DIR *d = opendir("/proc");
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < MAX_PROCS) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 1) continue;
    pid_t pp = parent_of((pid_t)pid);
    if (pp < 0) continue;
    pids[n] = (pid_t)pid;
    ppids[n] = pp;
    n++;
  }
  closedir(d);
  int count = 0;
  out[count++] = self;
  for (int i = 0; i < count && count < max; i++) {
    for (int j = 0; j < n && count < max; j++) {
      if (ppids[j] == out[i]) out[count++] = pids[j];
    }
  }
  /* out[0] is self: shift it away. */
  memmove(out, out + 1, (size_t)(count - 1) * sizeof *out);
  return count - 1;
}

void kill_descendants(pid_t self, pid_t main_child, int *main_status, int *main_reaped) {
  static pid_t found[MAX_PROCS];
  /* Zombies still count as descendants until reaped, so the loop ends only when every
   * process of the tree is gone and reaped. Never block in waitpid: a process forked
   * after a scan must not be able to hang us; the next scan finds and kills it. */
  for (int round = 0; round < 10000; round++) {
    int n = descendants(self, found, MAX_PROCS);
    for (int i = 0; i < n; i++) kill(found[i], SIGKILL);
    int status;
    pid_t r;
    while ((r = waitpid(-1, &status, WNOHANG)) > 0) {
      if (r == main_child) {
        *main_status = status;
        *main_reaped = 1;
      }
    }
    if (n == 0) return;
    usleep(round < 10 ? 200 : 2000);
  }
}
