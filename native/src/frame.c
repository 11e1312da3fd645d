#include "frame.h"

#include <errno.h>
#include <stdlib.h>
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

static int read_all(int fd, void *data, size_t len) {
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
