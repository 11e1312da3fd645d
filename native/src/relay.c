/*
 * nook-init relay IDLE_MS [SANDBOX]   (host side, run by the daemon: one per sandbox with egress)
 *
 * SANDBOX only names the helper in ps.
 *
 * The egress proxy's data path. The daemon reads each request head, decides, connects to the
 * destination and then hands both sockets here over its Node IPC channel (NODE_CHANNEL_FD,
 * SCM_RIGHTS, one NODE_HANDLE message per socket: {"nookRelay":ID,"side":"c"|"u"}). From then
 * on the bytes move by splice(2) through a pipe per direction, inside the kernel: no copy into
 * any process, one hop instead of Node's read + write. When a relay ends its byte counts go
 * back as {"nookRelayDone":ID,"up":N,"down":N,"error":"..."} for the decision record.
 *
 * Bounds: the daemon caps relays per sandbox (it counts them until the report); a relay with
 * no traffic either way for IDLE_MS is closed; {"nook":"stop"} (the sandbox's egress stopped)
 * closes every relay and exits; so do the channel's end and the daemon's death (PDEATHSIG).
 * The process runs as nobody with no privileges: it only ever holds sockets it was given.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define EXIT_NOOK 125
#define PIPE_BYTES (1 << 20)
#define MAX_LINE 65536
#define MAX_FDS 64
#define NOBODY 65534
#define PARTNER_WAIT_MS 5000

struct relay;
struct end {
  struct relay *r;
  int fd;
};
struct dir {
  int from, to;
  int pipe[2];
  size_t queued;
  int eof, done;
  unsigned long long bytes;
};
struct relay {
  long id;
  struct end client, upstream;
  struct dir up, down; /* up: client -> destination; down: destination -> client */
  int running;
  long long last_ms;
  struct relay *next;
};

static int channel = -1, ep = -1;
static struct relay *relays;
static int fifo[MAX_FDS], fifo_len;

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The channel is the daemon's: a write waits (2 s at most) rather than drop a report. */
static void send_line(const char *line) {
  size_t len = strlen(line), off = 0;
  while (off < len) {
    ssize_t n = write(channel, line + off, len - off);
    if (n > 0) off += (size_t)n;
    else if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = channel, .events = POLLOUT};
      if (poll(&p, 1, 2000) <= 0) _exit(EXIT_NOOK);
    } else if (n < 0 && errno == EINTR) continue;
    else _exit(0); /* the daemon is gone */
  }
}

static void close_dir(struct dir *d) {
  if (d->pipe[0] >= 0) close(d->pipe[0]);
  if (d->pipe[1] >= 0) close(d->pipe[1]);
  d->pipe[0] = d->pipe[1] = -1;
}

/* Ends a relay: both sockets closed, the counts reported, the memory freed. */
static void finish(struct relay *r, const char *error) {
  for (struct relay **p = &relays; *p; p = &(*p)->next)
    if (*p == r) {
      *p = r->next;
      break;
    }
  if (r->client.fd >= 0) close(r->client.fd);
  if (r->upstream.fd >= 0) close(r->upstream.fd);
  close_dir(&r->up);
  close_dir(&r->down);
  char line[256];
  snprintf(line, sizeof line, "{\"nookRelayDone\":%ld,\"up\":%llu,\"down\":%llu,\"error\":\"%s\"}\n", r->id, r->up.bytes, r->down.bytes, error ? error : "");
  send_line(line);
  free(r);
}

/* Moves what it can one way; -1 on a socket error. */
static int pump(struct dir *d, long long *last_ms) {
  for (;;) {
    int progress = 0;
    if (!d->eof && d->queued < PIPE_BYTES) {
      ssize_t n = splice(d->from, NULL, d->pipe[1], NULL, PIPE_BYTES - d->queued, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (n > 0) d->queued += (size_t)n, progress = 1;
      else if (n == 0) d->eof = 1, progress = 1;
      else if (errno != EAGAIN && errno != EINTR) return -1;
    }
    if (d->queued > 0) {
      ssize_t n = splice(d->pipe[0], NULL, d->to, NULL, d->queued, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (n > 0) d->queued -= (size_t)n, d->bytes += (unsigned long long)n, progress = 1;
      else if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
    }
    if (d->eof && d->queued == 0 && !d->done) {
      /* Half-close, as the proxy always did: the other side still gets its answer. */
      shutdown(d->to, SHUT_WR);
      d->done = 1;
    }
    if (progress) *last_ms = now_ms();
    else return 0;
  }
}

/* A hangup alone is no reason to stop: a half-closed peer may still be owed bytes. An error is. */
static void step(struct relay *r, int error) {
  if (pump(&r->up, &r->last_ms) < 0 || pump(&r->down, &r->last_ms) < 0) return finish(r, "connection reset");
  if (r->up.done && r->down.done) return finish(r, NULL);
  if (error) finish(r, "connection reset");
}

static int open_dir(struct dir *d, int from, int to) {
  d->from = from;
  d->to = to;
  if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) != 0) return -1;
  (void)fcntl(d->pipe[1], F_SETPIPE_SZ, PIPE_BYTES);
  return 0;
}

static void start(struct relay *r) {
  r->running = 1;
  r->last_ms = now_ms();
  int fds[2] = {r->client.fd, r->upstream.fd};
  for (int i = 0; i < 2; i++) {
    int fl = fcntl(fds[i], F_GETFL);
    if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0) return finish(r, "bad socket");
  }
  if (open_dir(&r->up, r->client.fd, r->upstream.fd) != 0 || open_dir(&r->down, r->upstream.fd, r->client.fd) != 0) return finish(r, "out of descriptors");
  struct epoll_event ce = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &r->client};
  struct epoll_event ue = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &r->upstream};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, r->client.fd, &ce) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, r->upstream.fd, &ue) != 0) return finish(r, "cannot watch the sockets");
  step(r, 0);
}

static struct relay *find_or_add(long id) {
  for (struct relay *r = relays; r; r = r->next)
    if (r->id == id) return r;
  struct relay *r = calloc(1, sizeof *r);
  if (!r) _exit(EXIT_NOOK);
  r->id = id;
  r->last_ms = now_ms();
  r->client = (struct end){r, -1};
  r->upstream = (struct end){r, -1};
  r->up.pipe[0] = r->up.pipe[1] = r->down.pipe[0] = r->down.pipe[1] = -1;
  r->next = relays;
  relays = r;
  return r;
}

static long field_number(const char *line, const char *key) {
  const char *p = strstr(line, key);
  if (!p) return -1;
  p += strlen(key);
  long v = 0;
  int digits = 0;
  for (; *p >= '0' && *p <= '9' && digits < 15; p++, digits++) v = v * 10 + (*p - '0');
  return digits ? v : -1;
}

static void on_line(const char *line) {
  if (strstr(line, "{\"nook\":\"stop\"}") == line) {
    while (relays) finish(relays, "the sandbox's egress stopped");
    _exit(0);
  }
  long id = field_number(line, "\"nookRelay\":");
  int handle = strstr(line, "\"cmd\":\"NODE_HANDLE\"") != NULL;
  int fd = -1;
  if (handle) {
    if (fifo_len > 0) {
      fd = fifo[0];
      memmove(fifo, fifo + 1, sizeof(int) * (size_t)--fifo_len);
    }
    send_line("{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
  }
  if (id < 0) {
    if (fd >= 0) close(fd);
    return;
  }
  struct relay *r = find_or_add(id);
  if (fd < 0 || r->running) {
    /* The daemon could not send this socket (it closed first): the relay never starts. */
    if (fd >= 0) close(fd);
    return finish(r, "no socket");
  }
  int client = strstr(line, "\"side\":\"c\"") != NULL;
  int *slot = client ? &r->client.fd : &r->upstream.fd;
  if (*slot >= 0) {
    close(fd);
    return finish(r, "socket sent twice");
  }
  *slot = fd;
  if (r->client.fd >= 0 && r->upstream.fd >= 0) start(r);
}

static char line_buf[MAX_LINE];
static size_t line_len;

static void read_channel(void) {
  for (;;) {
    char data[16384];
    union {
      char buf[CMSG_SPACE(sizeof(int) * 8)];
      struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    ssize_t n = recvmsg(channel, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) _exit(0); /* the daemon closed the channel: every relay goes with it */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (fifo_len < MAX_FDS) fifo[fifo_len++] = fd;
        else close(fd);
      }
    }
    for (ssize_t i = 0; i < n; i++) {
      if (data[i] != '\n') {
        if (line_len + 1 >= sizeof line_buf) _exit(EXIT_NOOK);
        line_buf[line_len++] = data[i];
        continue;
      }
      line_buf[line_len] = 0;
      line_len = 0;
      on_line(line_buf);
    }
  }
}

/* Nobody, no privileges, dies with the daemon (after the uid change, which clears PDEATHSIG). */
static int drop_privileges(void) {
  if (getuid() == 0 && (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)) return -1;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return -1;
  return getppid() == 1 ? -1 : 0;
}

int run_relay(int argc, char **argv) {
  long idle_ms = argc == 3 || argc == 4 ? atol(argv[2]) : 0;
  const char *ch = getenv("NODE_CHANNEL_FD");
  if (idle_ms <= 0 || !ch || !*ch) {
    fprintf(stderr, "usage: nook-init relay IDLE_MS [SANDBOX] (with a Node IPC channel)\n");
    return EXIT_NOOK;
  }
  channel = atoi(ch);
  signal(SIGPIPE, SIG_IGN);
  /* Six descriptors per relay (two sockets, two pipes): as many as the hard limit allows. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (drop_privileges() != 0) {
    fprintf(stderr, "nook-init relay: cannot drop privileges: %s\n", strerror(errno));
    return EXIT_NOOK;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  int fl = fcntl(channel, F_GETFL);
  if (ep < 0 || fl < 0 || fcntl(channel, F_SETFL, fl | O_NONBLOCK) != 0) return EXIT_NOOK;
  struct epoll_event ce = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, channel, &ce) != 0) return EXIT_NOOK;
  long long swept = now_ms();
  for (;;) {
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, 1000);
    if (n < 0 && errno != EINTR) return EXIT_NOOK;
    for (int i = 0; i < n; i++) {
      if (!evs[i].data.ptr) {
        read_channel();
        continue;
      }
      struct end *e = evs[i].data.ptr;
      struct relay *r = e->r;
      /* A relay finished by an earlier event in this batch is freed: look it up first (a new one
       at the same address is not running yet, or is stepped harmlessly). */
      int live = 0;
      for (struct relay *x = relays; x; x = x->next) live |= x == r;
      if (live && r->running) step(r, (evs[i].events & EPOLLERR) != 0);
    }
    long long t = now_ms();
    if (t - swept >= 1000) {
      swept = t;
      for (struct relay *r = relays, *next; r; r = next) {
        next = r->next;
        /* A relay whose second socket never came is dropped too (the daemon sends both at once). */
        if (t - r->last_ms >= (r->running ? idle_ms : PARTNER_WAIT_MS)) finish(r, r->running ? "idle timeout" : "no socket");
      }
    }
  }
}
