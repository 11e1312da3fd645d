/*
 * nook-init netns-listen PID PORT   (host side, run by the daemon)
 *
 * Creates a TCP listener on 127.0.0.1:PORT inside the network namespace of process PID and
 * hands the listening descriptor to the daemon over its Node IPC channel (NODE_CHANNEL_FD,
 * SCM_RIGHTS, Node's NODE_HANDLE message), then exits. The daemon accepts connections made
 * inside the sandbox itself: no host process per connection, nothing left behind when the
 * daemon exits (the listener dies with it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netns.h"

#define EXIT_NOOK 125

static long parse_number(const char *s, long max) {
  if (!s || !*s || strlen(s) > 10) return -1;
  long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  return v > max ? -1 : v;
}

/* Node's IPC framing: one JSON object per line; a handle travels with the NODE_HANDLE line. */
static int send_handle(int channel, int fd) {
  static const char msg[] = "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{\"nook\":\"netns-listener\"}}\n";
  struct iovec iov = {.iov_base = (void *)msg, .iov_len = sizeof msg - 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  ssize_t n;
  do n = sendmsg(channel, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == (ssize_t)iov.iov_len ? 0 : -1;
}

int run_netns_listen(int argc, char **argv) {
  long pid = argc == 4 ? parse_number(argv[2], 4194304) : -1;
  long port = argc == 4 ? parse_number(argv[3], 65535) : -1;
  long channel = parse_number(getenv("NODE_CHANNEL_FD"), 1024);
  if (pid <= 0 || port <= 0 || channel < 0) {
    fprintf(stderr, "usage: nook-init netns-listen PID PORT (with a Node IPC channel)\n");
    return EXIT_NOOK;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/ns/net", pid);
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
    fprintf(stderr, "nook-init: cannot enter the network namespace of %ld: %s\n", pid, strerror(errno));
    return EXIT_NOOK;
  }
  close(ns);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int on = 1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 511) != 0) {
    fprintf(stderr, "nook-init: cannot listen on 127.0.0.1:%ld in the sandbox: %s\n", port, strerror(errno));
    return EXIT_NOOK;
  }
  if (send_handle((int)channel, fd) != 0) {
    fprintf(stderr, "nook-init: cannot hand the listener over: %s\n", strerror(errno));
    return EXIT_NOOK;
  }
  /* Wait (5 s at most) for Node's acknowledgement or the channel's end, so the descriptor
   * is received before this process goes away. */
  struct pollfd p = {.fd = (int)channel, .events = POLLIN};
  char ack[256];
  if (poll(&p, 1, 5000) > 0) (void)!read((int)channel, ack, sizeof ack);
  return 0;
}
