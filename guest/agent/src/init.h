/* PID-1 duties: mounts, hostname, lo and eth0 (from ip=), shutdown. */
#ifndef VMM_INIT_H
#define VMM_INIT_H
#include "cmdline.h"

/* Mounts /proc if it is not mounted yet (to read /proc/cmdline). */
void init_mount_proc(void);
/* Points fds 0-2 at /dev/console where they are missing or /dev/null (/dev was not mounted at exec). */
void init_console(void);
/* Mounts /proc /sys /dev /dev/pts /dev/shm /tmp /run /sys/fs/cgroup (v2), points fds 0-2 at the console,
 * sets the hostname, brings up lo and eth0. */
void init_system(const cmdline_t *c);
/* Terminates every process, syncs and reboots (Firecracker exits on guest reboot). Never returns. */
void init_shutdown(void) __attribute__((noreturn));
#endif
