/*
 * nook-copy relay SOCKET AGENT tar-in|tar-out PATH - MAXBYTES TIMEOUT_MS IDLE_MS
 *
 * The fast path of a directory copy: a tar stream between the CLI and the sandbox's own tar,
 * past the daemon's event loop. Like the file relay (nook-copy.c) it binds SOCKET, prints
 * "ready" and takes one fd from the CLI: here a pipe or socket end (the read end of the CLI's
 * pack stream for tar-in, the write end feeding the CLI's safe untar for tar-out), never a
 * path. It then runs tar inside the sandbox through the sandbox's exec agent (the same
 * request the daemon sends for a stream copy: `tar -xf - -C PATH`, or `tar -cf - -C PARENT
 * BASE`), so every path in the archive and in the sandbox resolves in the sandbox's root.
 * The bytes go through the hashing ring: counted and bounded here (MAXBYTES; the sandbox is
 * never trusted to stop), sha256-hashed for the audit record. Nothing the sandbox sends names
 * a host path: its stdout is bytes for the CLI's safe untar, its stderr a bounded tail.
 * IDLE_MS without progress ends the copy (code 6). One JSON line out, as the file relay:
 *   {"ok":true,"bytes":N,"sha256":"...","stat":""} or {"ok":false,"code":C,"message":"..."}
 * codes: 3 too large, 4 tar failed, 5 no fast path, 6 no progress, 1 other.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../src/frame.h"
#include "relay.h"

#define TAIL 2000

static long long idle_ms;
static long long last_progress_ms;
static pthread_mutex_t answer_mu = PTHREAD_MUTEX_INITIALIZER;
static int answered;
static char tail[TAIL + 1];
static pthread_mutex_t tail_mu = PTHREAD_MUTEX_INITIALIZER;

static long long mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void touch(void) {
  __atomic_store_n(&last_progress_ms, mono_ms(), __ATOMIC_RELAXED);
}

/* One answer line only: the watchdog and the copy may both want to answer. code 0: the
 * success line for `total` bytes. */
static int answer(int code, const char *message, long long total) {
  pthread_mutex_lock(&answer_mu);
  if (!answered) {
    answered = 1;
    if (code == 0) {
      print_ok(total);
      printf(",\"stat\":\"\"}\n");
    } else failed(code, message);
    fflush(stdout);
  }
  pthread_mutex_unlock(&answer_mu);
  return 0;
}

/* No progress for IDLE_MS (a tar that never ends, a CLI that stops reading): answer and exit.
 * The exit hangs up on the agent, which kills tar and everything it started. */
static void *watchdog(void *arg) {
  (void)arg;
  for (;;) {
    usleep(100 * 1000);
    if (mono_ms() - __atomic_load_n(&last_progress_ms, __ATOMIC_RELAXED) > idle_ms) {
      char m[128];
      snprintf(m, sizeof m, "the copy made no progress for %lld ms: stopped", idle_ms);
      answer(6, m, 0);
      _exit(0);
    }
  }
  return NULL;
}

static void keep_tail(const char *data, size_t len) {
  pthread_mutex_lock(&tail_mu);
  size_t have = strlen(tail);
  if (len >= TAIL) {
    data += len - TAIL;
    len = TAIL;
  }
  if (have + len > TAIL) {
    memmove(tail, tail + (have + len - TAIL), TAIL - len);
    have = TAIL - len;
  }
  memcpy(tail + have, data, len);
  tail[have + len] = 0;
  /* What a sandbox writes is text for a message: no NULs to cut it short. */
  for (size_t i = have; i < have + len; i++)
    if (!tail[i]) tail[i] = '?';
  pthread_mutex_unlock(&tail_mu);
}

/* Reads one frame's head; its payload is the caller's to read. */
static int frame_head(int conn, char *type, uint32_t *len) {
  unsigned char h[5];
  if (read_all(conn, h, sizeof h) != 0) return -1;
  *type = (char)h[0];
  *len = ((uint32_t)h[1] << 24) | ((uint32_t)h[2] << 16) | ((uint32_t)h[3] << 8) | h[4];
  return *len > FRAME_MAX ? -1 : 0;
}

/* A payload that is not archive bytes: its text into the tail (stderr), the exit code parsed. */
static int frame_rest(int conn, char type, uint32_t len, int *exit_code) {
  char b[4096];
  char first[32] = "";
  while (len > 0) {
    size_t k = len < sizeof b ? len : sizeof b;
    if (read_all(conn, b, k) != 0) return -1;
    if (type == F_STDERR) keep_tail(b, k);
    if (type == F_EXIT && !first[0]) snprintf(first, sizeof first, "%.*s", (int)(k < 31 ? k : 31), b);
    len -= (uint32_t)k;
  }
  if (type == F_EXIT) *exit_code = atoi(first);
  return 0;
}

/* The agent's request for `tar ARGS...`, with the stream copy's PATH, cwd and user. */
static int send_request(int conn, const char *const *argv, int argc) {
  char req[9000];
  size_t n = (size_t)snprintf(req, sizeof req, "%d", argc) + 1;
  for (int i = 0; i < argc; i++) n += (size_t)snprintf(req + n, sizeof req - n, "%s", argv[i]) + 1;
  n += (size_t)snprintf(req + n, sizeof req - n, "1") + 1;
  n += (size_t)snprintf(req + n, sizeof req - n, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") + 1;
  n += (size_t)snprintf(req + n, sizeof req - n, "/") + 1;
  req[n++] = 0; /* user: the sandbox's default */
  if (n >= sizeof req) return -1;
  return frame_write(conn, F_REQUEST, req, n);
}

struct reader {
  int conn;
  int exit_code; /* -1: the agent went away without one */
};

/* tar-in: the agent's frames while we feed it (drained, so it never blocks writing to us). */
static void *read_agent(void *arg) {
  struct reader *r = arg;
  char type;
  uint32_t len;
  r->exit_code = -1;
  while (frame_head(r->conn, &type, &len) == 0) {
    int code = -1;
    /* Not progress: only archive bytes are (a tar that chatters would hold the copy open). */
    if (frame_rest(r->conn, type, len, &code) != 0) break;
    if (type == F_EXIT) {
      r->exit_code = code;
      break;
    }
  }
  return NULL;
}

static int stdin_sink(void *ctx, const char *b, size_t n) {
  touch();
  return frame_write(*(int *)ctx, F_STDIN, b, n);
}

/* Host pipe -> F_STDIN frames, then F_STDIN_EOF. Returns bytes, or -1 (errno); *over past max. */
static long long feed(int from, int conn, long long max, int *over) {
  long long total = ring_pump(from, max, over, stdin_sink, &conn);
  if (total < 0 || *over) return total;
  return frame_write(conn, F_STDIN_EOF, "", 0) == 0 ? total : -1;
}

/* F_STDOUT frames -> host pipe, until the exit. Returns bytes, or -1; *over past max. */
static long long drain(int conn, int to, long long max, int *over, int *exit_code) {
  long long total = 0;
  *over = 0;
  *exit_code = -1;
  char type;
  uint32_t len;
  while (frame_head(conn, &type, &len) == 0) {
    if (type != F_STDOUT) {
      /* stderr and the exit are not progress: only archive bytes are (touched below). */
      if (frame_rest(conn, type, len, exit_code) != 0) return -1;
      if (type == F_EXIT) return total;
      continue;
    }
    while (len > 0) {
      size_t k = len < SLOT_BYTES ? len : SLOT_BYTES;
      char *b = slot_free();
      if (read_all(conn, b, k) != 0) return -1;
      total += (long long)k;
      if (total > max) {
        *over = 1;
        return total;
      }
      if (write_all(to, b, k) != 0) return -1;
      touch();
      slot_hash(k);
      len -= (uint32_t)k;
    }
  }
  return -1;
}

/* The handed-over fd: a pipe or socket, open the right way; never a file or device to hang on. */
static int stream_fd(int fd, int in) {
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return 0;
  if (S_ISSOCK(st.st_mode)) return 1;
  int acc = fcntl(fd, F_GETFL) & O_ACCMODE;
  return S_ISFIFO(st.st_mode) && (in ? acc != O_WRONLY : acc != O_RDONLY);
}

/* The one answer line for how the copy ended. */
static void verdict(int in, int over, long long max, long long total, int exit_code) {
  char m[TAIL + 200];
  if (over) {
    snprintf(m, sizeof m, "the archive is more than %lld bytes: stopped%s", max, in ? "" : ", nothing written");
    answer(3, m, 0);
    return;
  }
  pthread_mutex_lock(&tail_mu);
  size_t n = strlen(tail);
  while (n && tail[n - 1] == '\n') tail[--n] = 0;
  snprintf(m, sizeof m, "tar in the sandbox failed (%s, exit %d): %s", in ? "unpacking the archive" : "archiving", exit_code, tail[0] ? tail : "no message");
  pthread_mutex_unlock(&tail_mu);
  if (exit_code == 127) answer(5, "the sandbox's image has no tar", 0);
  else if (exit_code > 0) answer(4, m, 0);
  else if (total < 0 || exit_code < 0) answer(1, in ? "the copy into the sandbox broke off" : "the copy out of the sandbox broke off", 0);
  else answer(0, "", total);
}

int run_tar_relay(char **a) {
  const char *sock = a[2], *agent = a[3], *path = a[5];
  int in = strcmp(a[4], "tar-in") == 0;
  long long max = atoll(a[7]);
  idle_ms = atoll(a[9]);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_un addr;
  int listener = unix_socket(sock, &addr);
  mode_t old = umask(0177);
  if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 1) != 0) return failed(5, "cannot listen for the stream");
  umask(old);
  printf("ready\n");
  fflush(stdout);
  int fd = take_fd(listener, atoi(a[8]));
  close(listener);
  unlink(sock);
  if (!stream_fd(fd, in)) return failed(5, "no pipe was handed over");

  /* tar-out: the archive's one top entry is PATH's last part, as on the stream path. */
  char parent[4200], base[4200];
  snprintf(parent, sizeof parent, "%s", path);
  size_t pl = strlen(parent);
  while (pl > 1 && parent[pl - 1] == '/') parent[--pl] = 0;
  char *slash = strrchr(parent, '/');
  if (!slash) return failed(4, "path must be absolute");
  snprintf(base, sizeof base, "%s", slash[1] ? slash + 1 : ".");
  if (slash == parent) slash[1] = 0;
  else *slash = 0;
  const char *x[] = {"tar", "-xf", "-", "-C", path};
  const char *c[] = {"tar", "-cf", "-", "-C", parent, base};

  int conn = unix_socket(agent, &addr);
  if (conn < 0 || connect(conn, (struct sockaddr *)&addr, sizeof addr) != 0) return failed(5, "cannot reach the sandbox's agent");
  if ((in ? send_request(conn, x, 5) : send_request(conn, c, 6)) != 0) return failed(5, "cannot reach the sandbox's agent");
  if (!in && frame_write(conn, F_STDIN_EOF, "", 0) != 0) return failed(5, "cannot reach the sandbox's agent");

  touch();
  pthread_t dog;
  pthread_create(&dog, NULL, watchdog, NULL);
  pthread_t hash = ring_start();
  int over = 0, exit_code = -1;
  long long total;
  if (in) {
    struct reader r = {.conn = conn, .exit_code = -1};
    pthread_t rt;
    pthread_create(&rt, NULL, read_agent, &r);
    total = feed(fd, conn, max, &over);
    /* Past the bound, or the CLI broke off: hang up, the agent kills tar. */
    if (over || total < 0) shutdown(conn, SHUT_RDWR);
    pthread_join(rt, NULL);
    exit_code = r.exit_code;
  } else {
    total = drain(conn, fd, max, &over, &exit_code);
  }
  ring_stop(hash);
  /* The answer goes first: the CLI (which sees the stream end when fd closes) and the daemon
   * (which may kill us once the CLI hangs up) must never see a cut stream without it. A cut
   * stream also never ends with tar's end blocks. */
  verdict(in, over, max, total, exit_code);
  close(fd);
  close(conn);
  return 0;
}
