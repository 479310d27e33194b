/* Kernel command line options the agent reads (vmm.agent_port, vmm.hostname, vmm.selftest, ip=). */
#ifndef VMM_CMDLINE_H
#define VMM_CMDLINE_H

typedef struct {
  unsigned port;      /* vmm.agent_port=N, default DEFAULT_AGENT_PORT */
  char hostname[65];  /* vmm.hostname=, default "sandbox" */
  char ip[256];       /* value of ip=, "" if absent */
  int selftest;       /* vmm.selftest=1: run the guest self-test once, then power off (selftest.h) */
} cmdline_t;

/* Parses a kernel command line. Returns 0, or -1 with *err (bad vmm.* value). */
int cmdline_parse(const char *s, cmdline_t *c, const char **err);
#endif
