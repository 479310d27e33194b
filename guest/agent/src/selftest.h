/*
 * Guest self-test (kernel command line vmm.selftest=1): exercises, once, the paths that only run in a real
 * guest — PID-1 duties, SET_IDENTITY applied (hostname, RNDADDENTROPY, clock step), a process spawned as a
 * non-root user, a PTY session — through the agent's own request handler, prints one result line on the
 * console, then ends the VM through the agent's shutdown path. scripts/guest-smoke.sh reads that line.
 *
 * Result line (one line, JSON after the prefix):
 *   VMM-SELFTEST {"ok":true,"passed":N,"failed":0,"ms":T,"checks":[{"name":"…","ok":true,"detail":"…"},…]}
 */
#ifndef VMM_SELFTEST_H
#define VMM_SELFTEST_H
#include "cmdline.h"

#define SELFTEST_PREFIX "VMM-SELFTEST "

/* Forks the self-test process (call from PID 1 after init_system). It sends SIGTERM to PID 1 when done. */
void selftest_start(const cmdline_t *cl);
#endif
