#include "cmdline.h"

#include <stdlib.h>
#include <string.h>

#include "agent.h"

int cmdline_parse(const char *s, cmdline_t *c, const char **err) {
  memset(c, 0, sizeof(*c));
  c->port = DEFAULT_AGENT_PORT;
  strcpy(c->hostname, "sandbox");
  while (*s) {
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    const char *e = s;
    while (*e && *e != ' ' && *e != '\t' && *e != '\n') e++;
    size_t n = (size_t)(e - s);
    if (n > 15 && strncmp(s, "vmm.agent_port=", 15) == 0) {
      char num[16] = {0};
      if (n - 15 >= sizeof(num)) goto badport;
      memcpy(num, s + 15, n - 15);
      char *end;
      unsigned long v = strtoul(num, &end, 10);
      if (*end || num[0] < '0' || num[0] > '9' || v == 0 || v > 0xffffffffUL) goto badport;
      c->port = (unsigned)v;
    } else if (n > 13 && strncmp(s, "vmm.hostname=", 13) == 0) {
      if (n - 13 >= sizeof(c->hostname)) {
        *err = "vmm.hostname longer than 64 bytes";
        return -1;
      }
      memcpy(c->hostname, s + 13, n - 13);
      c->hostname[n - 13] = 0;
    } else if (n == 14 && strncmp(s, "vmm.selftest=", 13) == 0 && (s[13] == '0' || s[13] == '1')) {
      c->selftest = s[13] == '1';
    } else if (n > 3 && strncmp(s, "ip=", 3) == 0 && n - 3 < sizeof(c->ip)) {
      memcpy(c->ip, s + 3, n - 3);
      c->ip[n - 3] = 0;
    }
    s = e;
  }
  return 0;
badport:
  *err = "vmm.agent_port must be a decimal port number 1..4294967295";
  return -1;
}
