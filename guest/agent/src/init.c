#include "init.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

/* Skips dst when something is mounted there already (kernel devtmpfs automount, second call). */
static void mnt(const char *src, const char *dst, const char *type, unsigned long flags, const char *data,
                mode_t mode) {
  mkdir(dst, mode);
  char parent[64];
  snprintf(parent, sizeof(parent), "%s/..", dst);
  struct stat a, b;
  if (stat(dst, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev) return;
  if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
    logf_err("mount %s on %s: %s", type, dst, strerror(errno));
}

static int set_addr(int s, unsigned long req, const char *ifname, const char *ip) {
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
  struct sockaddr_in *sa = (struct sockaddr_in *)&ifr.ifr_addr;
  sa->sin_family = AF_INET;
  if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1) return -1;
  return ioctl(s, req, &ifr);
}

static int link_up(int s, const char *ifname) {
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) return -1;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  return ioctl(s, SIOCSIFFLAGS, &ifr);
}

/* ip=<client>:<server>:<gw>:<mask>:<host>:<dev>:<autoconf> (kernel nfsroot.rst), static only. */
static void setup_ip(int s, const char *spec) {
  char buf[256], *f[7] = {0};
  snprintf(buf, sizeof(buf), "%s", spec);
  int n = 0;
  f[n++] = buf;
  for (char *p = buf; *p && n < 7; p++)
    if (*p == ':') *p = 0, f[n++] = p + 1;
  const char *client = f[0], *gw = n > 2 ? f[2] : "", *mask = n > 3 ? f[3] : "", *dev = n > 5 ? f[5] : "";
  if (!client[0] || strcmp(client, "dhcp") == 0 || strcmp(client, "off") == 0) return;
  if (!dev[0]) dev = "eth0";
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
  if (ioctl(s, SIOCGIFADDR, &ifr) == 0) return; /* the kernel (CONFIG_IP_PNP) configured it */
  if (set_addr(s, SIOCSIFADDR, dev, client) < 0) logf_err("%s: address %s: %s", dev, client, strerror(errno));
  if (mask[0] && set_addr(s, SIOCSIFNETMASK, dev, mask) < 0) logf_err("%s: netmask: %s", dev, strerror(errno));
  if (link_up(s, dev) < 0) logf_err("%s: up: %s", dev, strerror(errno));
  if (gw[0]) {
    struct rtentry rt = {0};
    struct sockaddr_in *g = (struct sockaddr_in *)&rt.rt_gateway, *d = (struct sockaddr_in *)&rt.rt_dst,
                       *m = (struct sockaddr_in *)&rt.rt_genmask;
    g->sin_family = d->sin_family = m->sin_family = AF_INET;
    if (inet_pton(AF_INET, gw, &g->sin_addr) != 1) return;
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = (char *)dev;
    if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST) logf_err("default route via %s: %s", gw, strerror(errno));
  }
}

void init_console(void) {
  struct stat null_st, st;
  if (stat("/dev/null", &null_st) < 0) return;
  int con = -1;
  for (int fd = 0; fd <= 2; fd++) {
    /* Missing, or the /dev/null main() put there because /dev was not mounted yet. */
    if (fstat(fd, &st) == 0 && !(S_ISCHR(st.st_mode) && st.st_rdev == null_st.st_rdev)) continue;
    if (con < 0 && (con = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) return;
    dup2(con, fd);
  }
  if (con > 2) close(con);
}

void init_mount_proc(void) { mnt("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555); }

void init_system(const cmdline_t *c) {
  init_mount_proc();
  mnt("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555);
  mnt("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755);
  mnt("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666", 0755);
  mnt("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777);
  mnt("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777);
  mnt("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", 0755);
  mnt("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate", 0755);
  init_console();
  if (access("/dev/ptmx", F_OK) != 0) symlink("pts/ptmx", "/dev/ptmx");
  if (sethostname(c->hostname, strlen(c->hostname)) < 0) logf_err("sethostname: %s", strerror(errno));
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  if (link_up(s, "lo") < 0) logf_err("lo up: %s", strerror(errno));
  if (c->ip[0]) setup_ip(s, c->ip);
  close(s);
}

void init_shutdown(void) {
  logf_err("shutdown: stopping every process, syncing, then reboot (reboot=k: the VMM ends the VM)");
  kill(-1, SIGTERM);
  int64_t end = now_ms() + 2000;
  while (now_ms() < end) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    if (kill(-1, 0) < 0 && errno == ESRCH) break;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
  }
  kill(-1, SIGKILL);
  sync();
  logf_err("shutdown: filesystems synced, rebooting");
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}
