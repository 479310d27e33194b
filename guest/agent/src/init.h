/* PID-1 duties: mounts, hostname, lo and eth0 (from ip=), shutdown. */
#ifndef VMM_INIT_H
#define VMM_INIT_H
#include "cmdline.h"

/* Mounts /proc if it is not mounted yet (to read /proc/cmdline). */
void init_mount_proc(void);
/* Mounts /proc /sys /dev /dev/pts /dev/shm /tmp /run, sets the hostname, brings up lo and eth0. */
void init_system(const cmdline_t *c);
/* Terminates every process, syncs and reboots (Firecracker exits on guest reboot). Never returns. */
void init_shutdown(void) __attribute__((noreturn));
#endif
