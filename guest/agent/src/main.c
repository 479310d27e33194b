/*
 * vmm-agent entry point: picks the mode, listens, and forks one handler
 * process per connection (docs/agent-protocol.md, "Agent process model").
 *
 *   vmm-agent [--init] [--cmdline "..."]        guest agent on AF_VSOCK (PID 1 implies --init)
 *   vmm-agent --unix-dir DIR --cmdline "..."    simulator: listen on DIR/<port>.sock
 *   vmm-agent --unix PATH                       listen on PATH (tests)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cmdline.h"
#include "frame.h"
#include "init.h"
#include "selftest.h"
#include "vsock.h"

agent_state_t g_agent;

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void logf_err(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  dprintf(2, "vmm-agent: %s\n", msg);
}

static void usage_exit(const char *why) {
  logf_err("%s", why);
  dprintf(2,
          "usage: vmm-agent [--init] [--cmdline CMDLINE]\n"
          "       vmm-agent --unix-dir DIR --cmdline CMDLINE   (listen on DIR/<port>.sock)\n"
          "       vmm-agent --unix PATH\n");
  exit(2);
}

static int listen_unix(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path)) {
    logf_err("socket path longer than %zu bytes: %s", sizeof(sa.sun_path) - 1, path);
    return -1;
  }
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  unlink(path);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
    logf_err("listen on %s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static int listen_vsock(unsigned port) {
  struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
    int saved = errno;
    if (fd >= 0) close(fd);
    errno = saved;
    return -1; /* the caller reports it (rate-limited: PID 1 retries every second) */
  }
  return fd;
}

static char *read_proc_cmdline(void) {
  static char buf[4096];
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n < 0) return NULL;
  buf[n] = 0;
  return buf;
}

/* Handler pids (children serving a connection). */
static pid_t *handlers;
static size_t nhandlers, caphandlers;

static void track(pid_t pid) {
  if (nhandlers == caphandlers) {
    size_t cap = caphandlers ? caphandlers * 2 : 64;
    pid_t *h = realloc(handlers, cap * sizeof(pid_t));
    if (!h) return;
    handlers = h;
    caphandlers = cap;
  }
  handlers[nhandlers++] = pid;
}

static void untrack(pid_t pid) {
  for (size_t i = 0; i < nhandlers; i++)
    if (handlers[i] == pid) {
      handlers[i] = handlers[--nhandlers];
      return;
    }
}

static void reap(void) {
  pid_t pid;
  while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) untrack(pid);
}

/* Kills the children reparented to us (we are a subreaper) that are not handlers. */
static void kill_orphans(void) {
  char path[64], buf[4096];
  snprintf(path, sizeof(path), "/proc/%d/task/%d/children", getpid(), getpid());
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = 0;
  for (char *p = buf; *p;) {
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p) break;
    if (pid > 0) kill((pid_t)pid, SIGKILL);
    p = end;
  }
}

static void terminate(const char *unlink_path) {
  for (size_t i = 0; i < nhandlers; i++) kill(handlers[i], SIGTERM);
  int64_t end = now_ms() + 2000;
  while (nhandlers > 0 && now_ms() < end) {
    reap();
    struct timespec ts = {0, 5 * 1000000};
    nanosleep(&ts, NULL);
  }
  for (size_t i = 0; i < nhandlers; i++) kill(handlers[i], SIGKILL);
  kill_orphans();
  reap();
  if (unlink_path) unlink(unlink_path);
  free(handlers);
  exit(0);
}

/* Drains the signalfd: reaps children; SIGTERM/SIGINT end the agent (as init: the VM). */
static void on_signals(int sfd, int init_mode, int lfd, const char *listen_path) {
  struct signalfd_siginfo si;
  while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
      if (init_mode) init_shutdown();
      if (lfd >= 0) close(lfd);
      terminate(listen_path);
    }
  }
  reap();
}

#define REPORT_EVERY_MS 60000

int main(int argc, char **argv) {
  const char *unix_dir = NULL, *unix_path = NULL, *cmdline_arg = NULL;
  int init_mode = getpid() == 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--init") == 0) init_mode = 1;
    else if (strcmp(argv[i], "--unix-dir") == 0 && i + 1 < argc) unix_dir = argv[++i];
    else if (strcmp(argv[i], "--unix") == 0 && i + 1 < argc) unix_path = argv[++i];
    else if (strcmp(argv[i], "--cmdline") == 0 && i + 1 < argc) cmdline_arg = argv[++i];
    else if (strcmp(argv[i], "--version") == 0) {
      printf("vmm-agent %s (protocol %d)\n", AGENT_VERSION, PROTOCOL_VERSION);
      return 0;
    } else usage_exit("unknown or incomplete argument");
  }
  int sim = unix_dir || unix_path;
  if (sim && init_mode) usage_exit("--init cannot be combined with --unix/--unix-dir");
  if (unix_dir && unix_path) usage_exit("use either --unix or --unix-dir");
  if (unix_dir && !cmdline_arg) usage_exit("--unix-dir needs --cmdline");

  /* fds 0-2 must exist, or a socket could become someone's stdout. */
  for (int fd = open("/dev/null", O_RDWR); fd >= 0 && fd <= 2; fd = open("/dev/null", O_RDWR)) {
  }
  clock_gettime(CLOCK_MONOTONIC, &g_agent.start);
  g_agent.pid = getpid();
  g_agent.mode = init_mode ? "init" : sim ? "unix" : "agent";
  g_agent.simulated = sim;
  identity_init();

  pid_t parent = getppid();
  if (sim) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) return 1;
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

  if (init_mode) {
    /* The kernel sends SIGINT to PID 1 on Ctrl-Alt-Del once this is set. */
    if (getpid() == 1) reboot(0); /* RB_DISABLE_CAD == 0 */
  }

  const char *cmd = cmdline_arg;
  cmdline_t cl;
  const char *err = NULL;
  if (init_mode) init_mount_proc();
  if (!cmd && !unix_path) cmd = read_proc_cmdline();
  if (cmdline_parse(cmd ? cmd : "", &cl, &err) < 0) {
    logf_err("%s; using port %u", err, DEFAULT_AGENT_PORT);
    cmdline_parse("", &cl, &err);
  }
  if (init_mode) init_system(&cl);
  if (cl.selftest) {
    if (init_mode) selftest_start(&cl);
    else logf_err("vmm.selftest=1 ignored: the self-test runs only as the guest's init (PID 1)");
  }

  char sock_path[4096];
  const char *listen_path = NULL;
  int lfd;
  if (unix_dir) {
    snprintf(sock_path, sizeof(sock_path), "%s/%u.sock", unix_dir, cl.port);
    listen_path = sock_path;
  } else if (unix_path) {
    listen_path = unix_path;
  }
  int64_t next_report = 0;
  for (;;) {
    lfd = listen_path ? listen_unix(listen_path) : listen_vsock(cl.port);
    if (lfd >= 0) break;
    if (!listen_path && (!init_mode || now_ms() >= next_report)) {
      logf_err("cannot listen on vsock port %u: %s%s", cl.port, strerror(errno),
               init_mode ? "; the host cannot reach this agent; retrying every second" : "");
      next_report = now_ms() + REPORT_EVERY_MS;
    }
    if (!init_mode) return 1;
    /* PID 1 must not exit: retry (the vsock driver may still be probing), still reaping and obeying SIGTERM. */
    struct pollfd p = {sfd, POLLIN, 0};
    if (poll(&p, 1, 1000) > 0) on_signals(sfd, init_mode, -1, NULL);
  }

  /* Listening works without a transport (the socket is bound to VMADDR_CID_ANY), but nobody can connect:
   * say so on the console, and again when a device appears, rather than wait in silence. */
  const char *why = "";
  unsigned cid = listen_path ? 0 : vsock_guest_cid(&why);
  int64_t no_transport_since = now_ms();
  if (!listen_path) {
    if (cid) logf_err("listening on vsock port %u (guest CID %u)", cl.port, cid);
    else
      logf_err("no vsock transport: %s; the host cannot reach this agent; listening on port %u anyway, "
               "checking every second",
               why, cl.port);
    next_report = now_ms() + REPORT_EVERY_MS;
  }

  for (;;) {
    int waiting = !listen_path && !cid;
    struct pollfd p[2] = {{lfd, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(p, 2, waiting ? 1000 : -1) < 0) {
      if (errno == EINTR) continue;
      logf_err("poll: %s", strerror(errno));
      continue;
    }
    if (waiting) {
      if ((cid = vsock_guest_cid(&why)) != 0) {
        logf_err("vsock transport up: guest CID %u, listening on port %u", cid, cl.port);
      } else if (now_ms() >= next_report) {
        logf_err("still no vsock transport after %lld s: %s", (long long)((now_ms() - no_transport_since) / 1000),
                 why);
        next_report = now_ms() + REPORT_EVERY_MS;
      }
    }
    if (p[1].revents) on_signals(sfd, init_mode, lfd, listen_path);
    if (p[0].revents) {
      int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
      if (cfd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
          logf_err("accept: %s", strerror(errno));
          struct timespec ts = {0, 50 * 1000000};
          nanosleep(&ts, NULL);
        }
        continue;
      }
      pid_t pid = fork();
      if (pid == 0) {
        close(lfd);
        close(sfd);
        free(handlers);
        handlers = NULL;
        nhandlers = caphandlers = 0;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        prctl(PR_SET_CHILD_SUBREAPER, 0);
        session_serve(cfd);
      }
      if (pid < 0) logf_err("fork: %s", strerror(errno));
      else track(pid);
      close(cfd);
    }
  }
}
