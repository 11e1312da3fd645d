/*
 * nook-copy: the host side of `nook cp`'s fast path (bytes past the daemon's event loop).
 *
 *   nook-copy send | replace: the CLI's side, in cli-side.c.
 *
 *   nook-copy relay SOCKET AGENT in|out PATH MODE MAXBYTES TIMEOUT_MS
 *     Run by the daemon (as root), one per copy: binds SOCKET (0600, a one-time name beside
 *     the daemon's own socket), prints "ready", takes one fd from one connection, then
 *     connects to the sandbox's agent socket AGENT and sends it an F_COPY frame. nook-init
 *     resolves PATH inside the sandbox and hands back the open sandbox file (an unnamed
 *     O_TMPFILE to fill, or the source to read; native/src/fastcopy.c): the host file never
 *     enters the sandbox and the host never resolves a sandbox path. Bytes go host file ->
 *     sandbox file (in) or back (out) through one buffer here, with this process's (the
 *     host's) page cache and CPU, counted and bounded here (MAXBYTES; the sandbox is never
 *     trusted to stop), and hashed (sha256, for the audit record) on a second thread over
 *     the same buffers, so the digest is of exactly the bytes that moved. One JSON line out:
 *       {"ok":true,"bytes":N,"sha256":"..."}  or  {"ok":false,"code":C,"message":"..."}
 *     with fs.c's codes (2 not found, 3 too large, 4 wrong type, 1 other, 5 no fast path).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "../src/frame.h"
#include "relay.h"

#define SLOTS 8

/* A ring of buffers: the copying thread fills and writes one, the hasher hashes it behind. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *buf[SLOTS];
  size_t len[SLOTS];
  unsigned long long filled, hashed;
  int done;
  EVP_MD_CTX *md;
} ring = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* NOOK_COPY_TRACE=FILE: phase timestamps (ms since start) appended there, for measuring. */
static FILE *trace_file;
static struct timespec trace_t0;
static double waited_copy_ms, waited_hash_ms, hash_cpu_ms;
static double thread_cpu_ms(void);
static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - trace_t0.tv_sec) * 1e3 + (double)(t.tv_nsec - trace_t0.tv_nsec) / 1e6;
}
static void trace(const char *what) {
  if (trace_file) fprintf(trace_file, "%8.2f %s\n", now_ms(), what);
}

static void *hasher(void *arg) {
  (void)arg;
  pthread_mutex_lock(&ring.mu);
  for (;;) {
    double w = now_ms();
    while (ring.hashed == ring.filled && !ring.done) pthread_cond_wait(&ring.cv, &ring.mu);
    waited_hash_ms += now_ms() - w;
    if (ring.hashed == ring.filled) break;
    unsigned slot = (unsigned)(ring.hashed % SLOTS);
    pthread_mutex_unlock(&ring.mu);
    EVP_DigestUpdate(ring.md, ring.buf[slot], ring.len[slot]);
    if (trace_file) hash_cpu_ms = thread_cpu_ms();
    pthread_mutex_lock(&ring.mu);
    ring.hashed++;
    pthread_cond_broadcast(&ring.cv);
  }
  pthread_mutex_unlock(&ring.mu);
  return NULL;
}

pthread_t ring_start(void) {
  ring.md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ring.md, EVP_sha256(), NULL);
  for (int i = 0; i < SLOTS; i++) ring.buf[i] = malloc(SLOT_BYTES);
  pthread_t t;
  pthread_create(&t, NULL, hasher, NULL);
  return t;
}

void ring_stop(pthread_t t) {
  pthread_mutex_lock(&ring.mu);
  ring.done = 1;
  pthread_cond_broadcast(&ring.cv);
  pthread_mutex_unlock(&ring.mu);
  pthread_join(t, NULL);
}

/* The start of the success line: {"ok":true,"bytes":N,"sha256":"..." (the caller closes it). */
void print_ok(long long total) {
  unsigned char digest[32];
  unsigned dlen = 0;
  EVP_DigestFinal_ex(ring.md, digest, &dlen);
  printf("{\"ok\":true,\"bytes\":%lld,\"sha256\":\"", total);
  for (unsigned i = 0; i < dlen; i++) printf("%02x", digest[i]);
  printf("\"");
}

/* The next free buffer (waits while the hasher is SLOTS behind). */
char *slot_free(void) {
  pthread_mutex_lock(&ring.mu);
  double w = now_ms();
  while (ring.filled - ring.hashed >= SLOTS) pthread_cond_wait(&ring.cv, &ring.mu);
  waited_copy_ms += now_ms() - w;
  char *b = ring.buf[ring.filled % SLOTS];
  pthread_mutex_unlock(&ring.mu);
  return b;
}

void slot_hash(size_t len) {
  pthread_mutex_lock(&ring.mu);
  ring.len[ring.filled % SLOTS] = len;
  ring.filled++;
  pthread_cond_broadcast(&ring.cv);
  pthread_mutex_unlock(&ring.mu);
}

void json_text(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20 || c > 0x7e) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

int failed(int code, const char *message) {
  printf("{\"ok\":false,\"code\":%d,\"message\":", code);
  json_text(message);
  printf("}\n");
  return 0;
}

static int failed_errno(int code, const char *what) {
  char m[512];
  snprintf(m, sizeof m, "%s: %s", what, strerror(errno));
  return failed(code, m);
}

int unix_socket(const char *path, struct sockaddr_un *addr) {
  *addr = (struct sockaddr_un){.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr->sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(addr->sun_path, path);
  return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Takes one fd from the first connection to a listening socket, or -1 (timeout, nothing sent). */
int take_fd(int listener, int timeoutMs) {
  struct pollfd p = {listener, POLLIN, 0};
  if (poll(&p, 1, timeoutMs) != 1) return -1;
  int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) return -1;
  int fd = -1;
  /* The sender writes one byte; frame_read_fd wants five, so read it by hand. */
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * 4)];
  } ctl;
  char b;
  struct iovec iov = {&b, 1};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) == 1 && !(msg.msg_flags & MSG_CTRUNC)) {
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) memcpy(&fd, CMSG_DATA(c), sizeof fd);
  }
  close(conn);
  return fd;
}

/* Reads the agent's frames to its exit; stderr text into msg, stdout into out (64 bytes at
 * least). Returns the exit code, or -1. */
static int agent_exit(int conn, char *msg, size_t cap, char *out) {
  msg[0] = 0;
  out[0] = 0;
  for (;;) {
    char type;
    char *data;
    uint32_t len;
    if (frame_read(conn, &type, &data, &len) != 0) return -1;
    if (type == F_STDERR) snprintf(msg + strlen(msg), cap - strlen(msg), "%s", data);
    if (type == F_STDOUT) snprintf(out, 64, "%s", data);
    int code = type == F_EXIT ? atoi(data) : -2;
    free(data);
    if (code != -2) {
      size_t n = strlen(msg);
      while (n && msg[n - 1] == '\n') msg[--n] = 0;
      return code;
    }
  }
}

/*
 * Reads `from` into the ring and hands each chunk to `sink` (then to the hasher), until EOF or
 * past max. Returns bytes, or -1 with errno; *over past max (that chunk is neither sunk nor
 * hashed). Shared by the file relay and the tar relay's copy-in.
 */
long long ring_pump(int from, long long max, int *over, int (*sink)(void *ctx, const char *b, size_t n), void *ctx) {
  long long total = 0;
  *over = 0;
  for (;;) {
    char *b = slot_free();
    ssize_t n = read(from, b, SLOT_BYTES);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) return total;
    total += n;
    if (total > max) {
      *over = 1;
      return total;
    }
    if (sink(ctx, b, (size_t)n) != 0) return -1;
    slot_hash((size_t)n);
  }
}

static int write_sink(void *ctx, const char *b, size_t n) {
  return write_all(*(int *)ctx, b, n);
}

/* Copy-out into an ext4 host file: one allocation up front instead of a delayed-allocation
 * reservation per page (measured on 1 GiB: ~250 -> ~180 ms of system time). The size is the
 * sandbox file's, already checked against MAXBYTES. btrfs gained nothing (measured), so
 * other file systems are left as they are. Returns 1 when the file was extended. */
static int preallocate(int to, off_t size) {
  struct statfs fs;
  if (size <= 0 || fstatfs(to, &fs) != 0 || fs.f_type != EXT4_SUPER_MAGIC) return 0;
  return fallocate(to, 0, 0, size) == 0;
}

static double thread_cpu_ms(void) {
  struct rusage r;
  getrusage(RUSAGE_THREAD, &r);
  return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e3 + (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e3;
}

/* The agent's answer to F_COPY: the sandbox file's fd, or -1 with its exit code and message. */
static int sandbox_file(int conn, int *code, char *msg, size_t cap) {
  msg[0] = 0;
  for (;;) {
    char type;
    char *data;
    uint32_t len;
    int fd;
    if (frame_read_fd(conn, &type, &data, &len, &fd) != 0) {
      *code = -1;
      return -1;
    }
    if (type == F_STDERR) snprintf(msg + strlen(msg), cap - strlen(msg), "%s", data);
    int exit_code = type == F_EXIT ? atoi(data) : -2;
    free(data);
    if (type == F_COPY_FILE && fd >= 0) return fd;
    if (fd >= 0) close(fd);
    if (exit_code != -2) {
      size_t n = strlen(msg);
      while (n && msg[n - 1] == '\n') msg[--n] = 0;
      *code = exit_code == 0 ? 1 : exit_code;
      return -1;
    }
  }
}

static int run_relay(char **a) {
  const char *sock = a[2], *agent = a[3], *dir = a[4], *path = a[5], *mode = a[6];
  long long max = atoll(a[7]);
  int in = strcmp(dir, "in") == 0;
  clock_gettime(CLOCK_MONOTONIC, &trace_t0);
  if (getenv("NOOK_COPY_TRACE")) trace_file = fopen(getenv("NOOK_COPY_TRACE"), "a");
  trace(in ? "start in" : "start out");
  /* Dies with the daemon: the agent sees the hang-up and drops its temp file, as on a stream. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_un addr;
  int listener = unix_socket(sock, &addr);
  mode_t old = umask(0177);
  if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 1) != 0) return failed_errno(5, "cannot listen for the file");
  umask(old);
  printf("ready\n");
  fflush(stdout);
  trace("ready");
  int fd = take_fd(listener, atoi(a[8]));
  trace("fd taken");
  close(listener);
  unlink(sock);
  if (fd < 0) return failed(5, "no file was handed over");
  struct stat st;
  int acc = fcntl(fd, F_GETFL) & O_ACCMODE;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (in ? acc == O_WRONLY : acc == O_RDONLY)) return failed(5, "the handed-over fd is not a regular file open the right way");
  char m[4600];
  if (in && st.st_size > max) {
    snprintf(m, sizeof m, "the file is %lld bytes, more than the limit of %lld; nothing was written", (long long)st.st_size, max);
    return failed(3, m);
  }
  int conn = unix_socket(agent, &addr);
  if (conn < 0 || connect(conn, (struct sockaddr *)&addr, sizeof addr) != 0) return failed_errno(5, "cannot reach the sandbox's agent");
  char req[4200];
  int plen = snprintf(req, sizeof req, "%s%c%s%c%s%c", dir, 0, path, 0, in ? mode : a[7], 0);
  if (plen <= 0 || plen >= (int)sizeof req) return failed(4, "path too long");
  if (frame_write(conn, F_COPY, req, (size_t)plen) != 0) return failed_errno(5, "cannot reach the sandbox's agent");
  int code;
  trace("F_COPY sent");
  int sfd = sandbox_file(conn, &code, m, sizeof m);
  trace("sandbox fd");
  if (sfd < 0) return failed(code < 0 ? 5 : code, code < 0 ? "the sandbox's agent took no copy" : m);
  /* What the sandbox handed over is checked like any untrusted input: a regular file, open
   * the right way, empty (in) or within the bound (out); never a FIFO or device to hang on. */
  struct stat sst;
  int sacc = fcntl(sfd, F_GETFL) & O_ACCMODE;
  if (fstat(sfd, &sst) != 0 || !S_ISREG(sst.st_mode) || (in ? sacc == O_RDONLY || sst.st_size != 0 : sacc == O_WRONLY)) return failed(1, "the sandbox handed over something that is not the file asked for");
  if (!in && sst.st_size > max) {
    snprintf(m, sizeof m, "%s is %lld bytes, more than the limit of %lld", path, (long long)sst.st_size, max);
    return failed(3, m);
  }
  int from = in ? fd : sfd, to = in ? sfd : fd;
  posix_fadvise(from, 0, 0, POSIX_FADV_SEQUENTIAL);
  int extended = in ? 0 : preallocate(to, sst.st_size);

  pthread_t t = ring_start();
  int over;
  trace("pump");
  long long total = ring_pump(from, max, &over, write_sink, &to);
  int e = errno;
  trace("pump done");
  double copy_cpu_ms = thread_cpu_ms();
  ring_stop(t);
  trace("hash done");
  close(sfd);
  trace("sandbox fd closed");
  /* On any failure here we hang up without F_COPY_DONE: the sandbox drops its unnamed temp file. */
  if (over) {
    snprintf(m, sizeof m, "more than %lld bytes: stopped, nothing was written", max);
    return failed(3, m);
  }
  if (total < 0) {
    errno = e;
    return failed_errno(1, in ? "copying into the sandbox" : "copying out of the sandbox");
  }
  /* The sandbox file shrank mid-copy: the host file holds what moved, no preallocated tail. */
  if (extended && total < sst.st_size && ftruncate(to, total) != 0) return failed_errno(1, "copying out of the sandbox");
  if (in) {
    char n[32];
    frame_write(conn, F_COPY_DONE, n, (size_t)snprintf(n, sizeof n, "%lld", total));
  }
  char info[64];
  code = agent_exit(conn, m, sizeof m, info);
  trace("agent exit");
  if (trace_file)
    fprintf(trace_file, "copy thread: %.1f ms CPU, waited %.1f ms for the hasher; hasher: %.1f ms CPU, waited %.1f ms for bytes; preallocated %d\n", copy_cpu_ms, waited_copy_ms, hash_cpu_ms, waited_hash_ms, extended);
  if (code != 0) return failed(code < 0 ? 1 : code, code < 0 ? "the sandbox's agent went away mid-copy" : m);
  print_ok(total);
  printf(",\"stat\":");
  json_text(info);
  printf("}\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "send") == 0) return run_send(argv[2]);
  if (argc == 4 && strcmp(argv[1], "replace") == 0) return run_replace(argv[2], argv[3]);
  if (argc == 9 && strcmp(argv[1], "relay") == 0 && (strcmp(argv[4], "in") == 0 || strcmp(argv[4], "out") == 0)) return run_relay(argv);
  if (argc == 10 && strcmp(argv[1], "relay") == 0 && (strcmp(argv[4], "tar-in") == 0 || strcmp(argv[4], "tar-out") == 0)) return run_tar_relay(argv);
  fprintf(stderr, "usage: nook-copy send SOCKET|- | replace TMP TARGET | relay SOCKET AGENT in|out PATH MODE MAXBYTES TIMEOUT_MS | relay SOCKET AGENT tar-in|tar-out PATH - MAXBYTES TIMEOUT_MS IDLE_MS\n");
  return 2;
}
