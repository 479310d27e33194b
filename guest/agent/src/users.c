#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Splits line at ':' into at most max fields; returns the count. */
static int split(char *line, char **f, int max, char sep) {
  int n = 0;
  f[n++] = line;
  for (char *p = line; *p && n < max; p++) {
    if (*p == sep) {
      *p = 0;
      f[n++] = p + 1;
    }
  }
  return n;
}

static int parse_id(const char *s, unsigned long *out) {
  if (!*s) return -1;
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (*end || s[0] < '0' || s[0] > '9' || v > 0xfffffffeUL) return -1;
  *out = v;
  return 0;
}

static void copy(char *dst, size_t n, const char *src) {
  snprintf(dst, n, "%s", src);
}

static void load_groups(user_t *u) {
  u->ngroups = 0;
  u->groups[u->ngroups++] = u->gid;
  FILE *f = fopen("/etc/group", "re");
  if (!f) return;
  char line[4096];
  while (fgets(line, sizeof(line), f) && u->ngroups < USER_MAX_GROUPS) {
    line[strcspn(line, "\n")] = 0;
    char *fld[4];
    unsigned long gid;
    if (split(line, fld, 4, ':') < 4 || parse_id(fld[2], &gid) < 0 || gid == u->gid) continue;
    char *members[256];
    int m = split(fld[3], members, 256, ',');
    for (int i = 0; i < m; i++) {
      if (strcmp(members[i], u->name) == 0) {
        u->groups[u->ngroups++] = (gid_t)gid;
        break;
      }
    }
  }
  fclose(f);
}

int user_lookup(const char *spec, user_t *u, const char **err) {
  memset(u, 0, sizeof(*u));
  unsigned long want_uid = 0;
  int by_uid = 0;
  if (!spec) {
    want_uid = getuid();
    by_uid = 1;
  } else if (parse_id(spec, &want_uid) == 0) {
    by_uid = 1;
  }
  int found = 0;
  FILE *f = fopen("/etc/passwd", "re");
  if (f) {
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
      line[strcspn(line, "\n")] = 0;
      char *fld[7];
      unsigned long uid, gid;
      if (split(line, fld, 7, ':') < 7) continue;
      if (parse_id(fld[2], &uid) < 0 || parse_id(fld[3], &gid) < 0) continue;
      if (by_uid ? uid != want_uid : strcmp(fld[0], spec) != 0) continue;
      u->uid = (uid_t)uid;
      u->gid = (gid_t)gid;
      copy(u->name, sizeof(u->name), fld[0]);
      copy(u->home, sizeof(u->home), fld[5][0] ? fld[5] : "/");
      copy(u->shell, sizeof(u->shell), fld[6][0] ? fld[6] : "/bin/sh");
      found = 1;
      break;
    }
    fclose(f);
  }
  if (!found) {
    if (!by_uid) {
      *err = "unknown user (not in /etc/passwd)";
      return -1;
    }
    u->uid = (uid_t)want_uid;
    u->gid = (gid_t)want_uid;
    snprintf(u->name, sizeof(u->name), "%lu", want_uid);
    copy(u->home, sizeof(u->home), "/");
    copy(u->shell, sizeof(u->shell), "/bin/sh");
    u->groups[0] = u->gid;
    u->ngroups = 1;
    return 0;
  }
  load_groups(u);
  return 0;
}
