#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int read_all(int fd, void *data, size_t len) {
  char *p = data;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int frame_write(int fd, char type, const void *data, size_t len) {
  unsigned char head[5] = {(unsigned char)type, (unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8), (unsigned char)len};
  if (write_all(fd, head, sizeof head) != 0) return -1;
  return len ? write_all(fd, data, len) : 0;
}

int frame_read(int fd, char *type, char **data, uint32_t *len) {
  unsigned char head[5];
  if (read_all(fd, head, sizeof head) != 0) return -1;
  *type = (char)head[0];
  *len = ((uint32_t)head[1] << 24) | ((uint32_t)head[2] << 16) | ((uint32_t)head[3] << 8) | head[4];
  if (*len > FRAME_MAX) return -1;
  *data = malloc(*len + 1);
  if (!*data) return -1;
  if (*len && read_all(fd, *data, *len) != 0) {
    free(*data);
    return -1;
  }
  (*data)[*len] = 0;
  return 0;
}

int frame_write_fd(int fd, char type, const void *data, size_t len, int passfd) {
  char buf[4200];
  if (len > sizeof buf - 5) return -1;
  buf[0] = type;
  buf[1] = (char)(len >> 24), buf[2] = (char)(len >> 16), buf[3] = (char)(len >> 8), buf[4] = (char)len;
  memcpy(buf + 5, data, len);
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {buf, len + 5};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &passfd, sizeof passfd);
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  return (size_t)n == len + 5 ? 0 : write_all(fd, buf + n, len + 5 - (size_t)n);
}

/* A frame that may carry one fd (SCM_RIGHTS, on its first byte): a copy's file. More than one fd, or a truncated control message, is
 * refused (every fd that came is closed). */
int frame_read_fd(int fd, char *type, char **data, uint32_t *len, int *passed) {
  *passed = -1;
  unsigned char head[5];
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * 4)];
  } ctl;
  struct iovec iov = {head, sizeof head};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  int bad = (msg.msg_flags & MSG_CTRUNC) != 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      if (*passed < 0 && !bad) *passed = got;
      else close(got);
    }
    if (count != 1) bad = 1;
  }
  if (bad && *passed >= 0) close(*passed), *passed = -1;
  if ((size_t)n < sizeof head && read_all(fd, head + n, sizeof head - (size_t)n) != 0) goto fail;
  *type = (char)head[0];
  *len = ((uint32_t)head[1] << 24) | ((uint32_t)head[2] << 16) | ((uint32_t)head[3] << 8) | head[4];
  if (*len > FRAME_MAX || !(*data = malloc(*len + 1))) goto fail;
  if (*len && read_all(fd, *data, *len) != 0) {
    free(*data);
    goto fail;
  }
  (*data)[*len] = 0;
  return 0;
fail:
  if (*passed >= 0) close(*passed), *passed = -1;
  return -1;
}
