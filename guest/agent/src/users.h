/* User lookup in /etc/passwd and /etc/group (no NSS: the agent is static). */
#ifndef VMM_USERS_H
#define VMM_USERS_H
#include <sys/types.h>

#define USER_MAX_GROUPS 64

typedef struct {
  uid_t uid;
  gid_t gid;
  char name[64];
  char home[256];
  char shell[256];
  gid_t groups[USER_MAX_GROUPS];
  int ngroups;
} user_t;

/*
 * Resolves spec (a name, a decimal uid, or NULL for the agent's own uid).
 * An unknown name fails (-1, *err); an unknown uid resolves to gid = uid,
 * home "/", no supplementary groups.
 */
int user_lookup(const char *spec, user_t *u, const char **err);
#endif
