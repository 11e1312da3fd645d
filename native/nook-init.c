/*
 * nook-init: the one static binary nook bind-mounts (read-only) at /.nook/nook-init in
 * every sandbox. Two modes:
 *
 *   nook-init init
 *     PID 1 of the sandbox. Reaps every orphan (without it zombies pile up until the
 *     pids limit refuses all forks). On SIGTERM/SIGINT it forwards SIGTERM to every
 *     process and exits when none is left; its exit makes the kernel kill the rest.
 *
 *   nook-init exec [--user SPEC] [--wait-fd N] -- CMD [ARGS...]
 *     The first process of every `nook exec`. With --wait-fd it writes "r" to fd N and
 *     blocks until the daemon answers "g": in between, the daemon moves this pid into a
 *     per-exec freezer cgroup, so the whole process tree (daemonised children included)
 *     can be frozen and killed on timeout. crun's own `exec --cgroup` does not work with
 *     cgroup v1 controllers, hence this handshake. --user takes NAME, UID, NAME:GROUP or
 *     UID:GID, resolved against the sandbox's own /etc/passwd and /etc/group (never the
 *     host's), because static glibc cannot use NSS.
 *
 * Exit codes follow the shell: 127 command not found, 126 not executable, 125 nook-init
 * itself failed (bad arguments, unknown user).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_NOOK 125
#define MAX_GROUPS 64

static int run_init(void) {
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0) continue;
    if (sig == SIGTERM || sig == SIGINT) {
      /* Pass the stop on to every process, then leave once all have gone: the daemon
       * escalates to SIGKILL after its grace period, so this never blocks a stop. */
      kill(-1, SIGTERM);
      while (wait(NULL) > 0 || errno == EINTR) {
      }
      return 0;
    }
    if (sig == SIGCHLD) {
      while (waitpid(-1, NULL, WNOHANG) > 0) {
      }
    }
  }
}

static int is_number(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

/* Finds field 0 == key (or field 2 == key when by_id) in a passwd/group style file.
 * Copies the matching line into out. Returns 1 when found. */
static int find_entry(const char *path, const char *key, int by_id, char *out, size_t out_len) {
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  char line[1024];
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", line);
    char *save = NULL;
    char *name = strtok_r(copy, ":\n", &save);
    strtok_r(NULL, ":\n", &save);
    char *id = strtok_r(NULL, ":\n", &save);
    if (!name || !id) continue;
    if ((by_id && strcmp(id, key) == 0) || (!by_id && strcmp(name, key) == 0)) {
      snprintf(out, out_len, "%s", line);
      found = 1;
      break;
    }
  }
  fclose(f);
  return found;
}

/* Returns the n-th ':'-separated field of line (0-based) in buf. */
static const char *field(const char *line, int n, char *buf, size_t len) {
  const char *p = line;
  for (int i = 0; i < n && p; i++) {
    p = strchr(p, ':');
    if (p) p++;
  }
  if (!p) return NULL;
  size_t k = strcspn(p, ":\n");
  if (k >= len) k = len - 1;
  memcpy(buf, p, k);
  buf[k] = 0;
  return buf;
}

/* Supplementary groups of user name: every /etc/group line listing it as a member. */
static int member_groups(const char *user, gid_t primary, gid_t *groups) {
  int n = 0;
  groups[n++] = primary;
  FILE *f = fopen("/etc/group", "re");
  if (!f) return n;
  char line[1024];
  while (fgets(line, sizeof line, f) && n < MAX_GROUPS) {
    char gid_buf[32], members[900];
    if (!field(line, 2, gid_buf, sizeof gid_buf) || !field(line, 3, members, sizeof members)) continue;
    char *save = NULL;
    for (char *m = strtok_r(members, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
      if (strcmp(m, user) == 0) {
        groups[n++] = (gid_t)strtoul(gid_buf, NULL, 10);
        break;
      }
    }
  }
  fclose(f);
  return n;
}

static int switch_user(const char *spec) {
  char user[256], group[256] = "";
  snprintf(user, sizeof user, "%s", spec);
  char *colon = strchr(user, ':');
  if (colon) {
    *colon = 0;
    snprintf(group, sizeof group, "%s", colon + 1);
  }
  char line[1024], buf[512];
  uid_t uid;
  gid_t gid = 0;
  int have_entry = find_entry("/etc/passwd", user, is_number(user), line, sizeof line);
  if (have_entry) {
    uid = (uid_t)strtoul(field(line, 2, buf, sizeof buf), NULL, 10);
    gid = (gid_t)strtoul(field(line, 3, buf, sizeof buf), NULL, 10);
    const char *home = field(line, 5, buf, sizeof buf);
    if (home && *home) setenv("HOME", home, 1);
  } else if (is_number(user)) {
    uid = (uid_t)strtoul(user, NULL, 10);
    gid = (gid_t)uid;
  } else {
    fprintf(stderr, "nook: user '%s' does not exist in this sandbox's /etc/passwd\n", user);
    return -1;
  }
  if (*group) {
    char gline[1024];
    if (is_number(group)) {
      gid = (gid_t)strtoul(group, NULL, 10);
    } else if (find_entry("/etc/group", group, 0, gline, sizeof gline)) {
      gid = (gid_t)strtoul(field(gline, 2, buf, sizeof buf), NULL, 10);
    } else {
      fprintf(stderr, "nook: group '%s' does not exist in this sandbox's /etc/group\n", group);
      return -1;
    }
  }
  gid_t groups[MAX_GROUPS];
  int ngroups = have_entry ? member_groups(field(line, 0, buf, sizeof buf), gid, groups) : 1;
  if (!have_entry) groups[0] = gid;
  if (setgroups((size_t)ngroups, groups) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
    fprintf(stderr, "nook: cannot switch to user '%s': %s\n", spec, strerror(errno));
    return -1;
  }
  return 0;
}

static int wait_for_go(int fd) {
  if (write(fd, "r", 1) != 1) return -1;
  char c = 0;
  ssize_t n;
  do {
    n = read(fd, &c, 1);
  } while (n < 0 && errno == EINTR);
  close(fd);
  return (n == 1 && c == 'g') ? 0 : -1;
}

static int run_exec(int argc, char **argv) {
  const char *user = NULL;
  int wait_fd = -1;
  int i = 2;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc) {
      user = argv[++i];
    } else if (strcmp(argv[i], "--wait-fd") == 0 && i + 1 < argc) {
      wait_fd = atoi(argv[++i]);
    } else {
      fprintf(stderr, "nook-init: unknown option %s\n", argv[i]);
      return EXIT_NOOK;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "nook-init: no command given\n");
    return EXIT_NOOK;
  }
  if (wait_fd >= 0 && wait_for_go(wait_fd) != 0) {
    /* The daemon went away before placing us: run nothing rather than run unconfined. */
    return EXIT_NOOK;
  }
  if (user && switch_user(user) != 0) return EXIT_NOOK;
  signal(SIGPIPE, SIG_DFL);
  execvp(argv[i], &argv[i]);
  int err = errno;
  fprintf(stderr, "nook: cannot run '%s': %s\n", argv[i], strerror(err));
  return (err == ENOENT || err == ENOTDIR) ? 127 : 126;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "init") == 0) return run_init();
  if (argc >= 2 && strcmp(argv[1], "exec") == 0) return run_exec(argc, argv);
  fprintf(stderr, "usage: nook-init init | nook-init exec [--user SPEC] [--wait-fd N] -- CMD [ARGS...]\n");
  return EXIT_NOOK;
}
