/* Switching to a sandbox user by name or id, resolved against the sandbox's own
 * /etc/passwd and /etc/group (never the host's): static glibc cannot use NSS. */
#define _GNU_SOURCE
#include "user.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_GROUPS 64

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

int switch_user(const char *spec) {
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

