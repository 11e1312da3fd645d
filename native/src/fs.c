/*
 * File operations, run by the exec agent inside the sandbox (as /.nook/nook-init fs ...):
 * every path is resolved in the sandbox's own mount namespace and root, so a symlink can
 * never lead to a host file. Output is JSON (stat, ls) or raw bytes (cat).
 *
 *   fs stat PATH            fs ls PATH             fs cat PATH MAXBYTES
 *   fs write PATH MODE      fs mkdir PATH [-p]         fs rm PATH [-r]
 *
 * Exit codes: 0 ok, 2 not found, 3 too large, 4 wrong type, 1 other (message on stderr).
 */
#define _GNU_SOURCE
#include "fs.h"
#include "frame.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what, const char *path) {
  int e = errno;
  fprintf(stderr, "%s %s: %s\n", what, path, strerror(e));
  return e == ENOENT || e == ENOTDIR ? 2 : 1;
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static const char *kind(mode_t m) {
  return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" : "other";
}

static void print_entry(const char *name, const char *path, const struct stat *st) {
  printf("{\"name\":");
  json_string(name);
  printf(",\"type\":\"%s\",\"mode\":%u,\"uid\":%u,\"gid\":%u,\"size\":%lld,\"mtimeMs\":%lld", kind(st->st_mode), st->st_mode & 07777, st->st_uid, st->st_gid,
         (long long)st->st_size, (long long)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000);
  if (S_ISLNK(st->st_mode)) {
    char target[4096];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n >= 0) {
      target[n] = 0;
      printf(",\"target\":");
      json_string(target);
    }
  }
  printf("}\n");
}

static int do_stat(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return fail("stat", path);
  const char *base = strrchr(path, '/');
  print_entry(base && base[1] ? base + 1 : path, path, &st);
  return 0;
}

static int do_ls(const char *path) {
  DIR *d = opendir(path);
  if (!d) return fail("ls", path);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char full[8192];
    snprintf(full, sizeof full, "%s/%s", path, e->d_name);
    struct stat st;
    if (lstat(full, &st) == 0) print_entry(e->d_name, full, &st);
  }
  closedir(d);
  return 0;
}

static int do_cat(const char *path, long long max) {
  /* O_NONBLOCK: a FIFO must not hang us; only regular files are read. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return fail("read", path);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    fprintf(stderr, "read %s: not a regular file\n", path);
    return 4;
  }
  if (st.st_size > max) {
    fprintf(stderr, "read %s: %lld bytes is more than the limit of %lld\n", path, (long long)st.st_size, max);
    return 3;
  }
  /* Large reads written straight to the pipe (not through stdio): fewer wake-ups of the
   * agent per megabyte on the streaming copy-out. */
  static char buf[1 << 20];
  long long total = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    total += n;
    if (total > max) {
      fprintf(stderr, "read %s: grew past the limit of %lld bytes while being read\n", path, max);
      return 3;
    }
    if (write_all(1, buf, (size_t)n) != 0) return 1;
  }
  return n < 0 ? fail("read", path) : 0;
}

static int do_write(const char *path, mode_t mode) {
  /* Written beside the target and renamed over it: a symlink at the path is replaced,
   * never followed, and a reader never sees half a file. The data goes first into an
   * unnamed O_TMPFILE, so a write killed part-way (a client that went away) leaves nothing;
   * it gets a name only once every byte is in. */
  char tmp[8192], dir[8192];
  const char *slash = strrchr(path, '/');
  snprintf(dir, sizeof dir, "%.*s", slash ? (slash == path ? 1 : (int)(slash - path)) : 1, slash ? path : ".");
  snprintf(tmp, sizeof tmp, "%.*s/.nook-write-%d", slash ? (int)(slash - path) : 1, slash ? path : ".", getpid());
  int unnamed = 1;
  int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode & 0777);
  if (fd < 0) {
    unnamed = 0;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
  }
  if (fd < 0) return fail("write", path);
  char buf[262144];
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) {
    if (write(fd, buf, (size_t)n) != n) {
      int r = fail("write", path);
      if (!unnamed) unlink(tmp);
      close(fd);
      return r;
    }
  }
  fchmod(fd, mode & 0777);
  if (unnamed) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0) {
      int r = fail("write", path);
      close(fd);
      return r;
    }
  }
  close(fd);
  if (rename(tmp, path) != 0) {
    int r = fail("write", path);
    unlink(tmp);
    return r;
  }
  return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

static int do_rm(const char *path, int recursive) {
  struct stat st;
  if (lstat(path, &st) != 0) return fail("rm", path);
  if (S_ISDIR(st.st_mode)) {
    if (!recursive) {
      if (rmdir(path) != 0) return fail("rm", path);
      return 0;
    }
    /* FTW_PHYS: never follow a symlink out of the tree being removed. */
    if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) != 0) return fail("rm", path);
    return 0;
  }
  return unlink(path) == 0 ? 0 : fail("rm", path);
}

/* mkdir -p: every missing parent too (paths resolve in the sandbox's own root). */
static int do_mkdir(const char *path, int parents) {
  if (!parents) return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : fail("mkdir", path);
  char buf[4096];
  size_t n = strlen(path);
  if (n >= sizeof buf) {
    fprintf(stderr, "path too long\n");
    return 4;
  }
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return fail("mkdir", buf);
    *p = '/';
  }
  return mkdir(buf, 0755) == 0 || errno == EEXIST ? 0 : fail("mkdir", buf);
}

int run_fs(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: nook-init fs stat|ls|cat|write|mkdir|rm PATH ...\n");
    return 1;
  }
  const char *verb = argv[2], *path = argv[3];
  if (strcmp(verb, "stat") == 0) return do_stat(path);
  if (strcmp(verb, "ls") == 0) return do_ls(path);
  if (strcmp(verb, "cat") == 0) return do_cat(path, argc > 4 ? atoll(argv[4]) : (16LL << 20));
  if (strcmp(verb, "write") == 0) return do_write(path, argc > 4 ? (mode_t)strtoul(argv[4], NULL, 8) : 0644);
  if (strcmp(verb, "mkdir") == 0) return do_mkdir(path, argc > 4 && strcmp(argv[4], "-p") == 0);
  if (strcmp(verb, "rm") == 0) return do_rm(path, argc > 4 && strcmp(argv[4], "-r") == 0);
  fprintf(stderr, "nook-init fs: unknown verb %s\n", verb);
  return 1;
}
