/*
 * Guest self-test (selftest.h). Runs in a process forked by PID 1 and talks to the agent's request handler
 * (session_serve, forked on a socketpair exactly as main() forks one per vsock connection), so what it
 * checks is the code a host would reach over vsock, minus the transport.
 */
#include "selftest.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "frame.h"
#include "request.h"
#include "users.h"

#define MAX_CHECKS 16
#define STEP_TIMEOUT_MS 10000
#define SELFTEST_HOSTNAME "vmm-selftest"
#define SELFTEST_USER "sandbox"
#define CLOCK_STEP_MS (86400ull * 1000) /* a day ahead: unmistakably a step, not drift */

typedef struct {
  const char *name;
  int ok;
  char detail[160];
} check_t;

static check_t checks[MAX_CHECKS];
static int nchecks;

static void check(const char *name, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(const char *name, int ok, const char *fmt, ...) {
  if (nchecks == MAX_CHECKS) return;
  check_t *c = &checks[nchecks++];
  c->name = name;
  c->ok = ok;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
  va_end(ap);
}

static uint64_t realtime_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- client side of one agent session ---- */

typedef struct {
  int fd;
  pid_t handler;
  buf_t in;
  size_t used; /* size of the frame last returned, consumed on the next receive */
} client_t;

static int client_send(client_t *c, uint8_t type, const buf_t *payload) {
  buf_t out = {0};
  int r = frame_put(&out, type, buf_head(payload), buf_size(payload)) == 0 ? send_all(c->fd, &out, STEP_TIMEOUT_MS)
                                                                             : -1;
  buf_free(&out);
  return r;
}

/* Next frame from the handler: 1, or 0 with *err (timeout, EOF, malformed). */
static int client_recv(client_t *c, frame_t *f, const char **err) {
  buf_consume(&c->in, c->used);
  c->used = 0;
  int64_t deadline = now_ms() + STEP_TIMEOUT_MS;
  for (;;) {
    int r = frame_decode(buf_head(&c->in), buf_size(&c->in), f, &c->used, err);
    if (r == FRAME_OK) return 1;
    if (r == FRAME_ERROR) return 0;
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      *err = "no reply within 10 s";
      return 0;
    }
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, (int)left) <= 0) continue;
    uint8_t *dst = buf_reserve(&c->in, 65536);
    if (!dst) {
      *err = "out of memory";
      return 0;
    }
    ssize_t n = recv(c->fd, dst, 65536, 0);
    if (n == 0) {
      *err = "the handler closed the session";
      return 0;
    }
    if (n > 0) c->in.len += (size_t)n;
    else if (errno != EINTR && errno != EAGAIN) {
      *err = "recv failed";
      return 0;
    }
  }
}

static void client_close(client_t *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  buf_free(&c->in);
  if (c->handler <= 0) return;
  for (int64_t end = now_ms() + 5000; now_ms() < end;) {
    if (waitpid(c->handler, NULL, WNOHANG) != 0) return;
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
  kill(c->handler, SIGKILL);
  waitpid(c->handler, NULL, 0);
}

/* Forks a handler on a socketpair and does the HELLO handshake. 0, or -1 with *err. */
static int client_open(client_t *c, const char **err) {
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    *err = "socketpair failed";
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]);
    close(sv[1]);
    *err = "fork failed";
    return -1;
  }
  if (pid == 0) {
    close(sv[0]);
    session_serve(sv[1]);
  }
  close(sv[1]);
  c->fd = sv[0];
  c->handler = pid;
  buf_t hello = {0};
  uint8_t v[2];
  put_be16(v, PROTOCOL_VERSION);
  buf_append(&hello, v, 2);
  int sent = client_send(c, T_HELLO, &hello);
  buf_free(&hello);
  frame_t f;
  if (sent < 0 || !client_recv(c, &f, err)) {
    if (sent < 0) *err = "HELLO not sent";
    return -1;
  }
  if (f.type != T_HELLO_REPLY) {
    *err = "the first reply is not HELLO_REPLY";
    return -1;
  }
  return 0;
}

/* ---- checks ---- */

/* The mount table line for mount point dir: its type and options; 0 if not mounted. */
static int mounted(const char *dir, char *type, size_t tn, char *opts, size_t on) {
  FILE *f = fopen("/proc/self/mounts", "re");
  if (!f) return 0;
  char line[512], dev[128], mp[256], t[64], o[256];
  int found = 0;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "%127s %255s %63s %255s", dev, mp, t, o) == 4 && strcmp(mp, dir) == 0) {
      snprintf(type, tn, "%s", t);
      snprintf(opts, on, "%s", o);
      found = 1; /* keep going: the last mount on a point is the visible one */
    }
  fclose(f);
  return found;
}

static void check_init(const cmdline_t *cl) {
  char exe[256] = "";
  ssize_t n = readlink("/proc/1/exe", exe, sizeof(exe) - 1);
  if (n > 0) exe[n] = 0;
  check("pid1", getppid() == 1 && strcmp(g_agent.mode, "init") == 0 && g_agent.pid == 1,
        "agent (mode %s) is PID %d, exe %s", g_agent.mode, (int)g_agent.pid, exe);

  char type[64], opts[256];
  int root = mounted("/", type, sizeof(type), opts, sizeof(opts));
  check("root", root && strcmp(type, "rootfs") != 0 && strncmp(opts, "rw", 2) == 0, "/ is %s %s", root ? type : "?",
        root ? opts : "not mounted");

  static const char *const want[][2] = {{"/proc", "proc"},      {"/sys", "sysfs"},  {"/dev", "devtmpfs"},
                                        {"/dev/pts", "devpts"}, {"/dev/shm", "tmpfs"}, {"/tmp", "tmpfs"},
                                        {"/run", "tmpfs"},      {"/sys/fs/cgroup", "cgroup2"}};
  char bad[160] = "";
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    if (!mounted(want[i][0], type, sizeof(type), opts, sizeof(opts)) || strcmp(type, want[i][1]) != 0)
      snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " %s(%s)", want[i][0], want[i][1]);
  check("mounts", !bad[0], bad[0] ? "missing:%s" : "proc sys dev devpts shm tmp run cgroup2", bad);

  char host[65] = "";
  gethostname(host, sizeof(host) - 1);
  check("hostname", strcmp(host, cl->hostname) == 0, "%s (vmm.hostname=%s)", host, cl->hostname);

  /* An orphan: its parent exits first, so it is re-parented to PID 1, which must reap it. */
  int pfd[2];
  pid_t orphan = -1;
  if (pipe(pfd) == 0) {
    pid_t mid = fork();
    if (mid == 0) {
      pid_t g = fork();
      if (g == 0) {
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
        _exit(0);
      }
      (void)!write(pfd[1], &g, sizeof(g));
      _exit(0);
    }
    close(pfd[1]);
    if (mid > 0) {
      if (read(pfd[0], &orphan, sizeof(orphan)) != (ssize_t)sizeof(orphan)) orphan = -1;
      waitpid(mid, NULL, 0);
    }
    close(pfd[0]);
  }
  int reaped = 0;
  int64_t start = now_ms();
  while (orphan > 0 && now_ms() - start < 3000) {
    if (kill(orphan, 0) < 0 && errno == ESRCH) {
      reaped = 1;
      break;
    }
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
  if (orphan > 0)
    check("reaper", reaped, reaped ? "orphan %d reaped by PID 1 in %lld ms" : "orphan %d still a zombie after 3 s",
          (int)orphan, (long long)(now_ms() - start));
  else check("reaper", 0, "could not create an orphan (fork/pipe failed)");
}

static void check_identity(void) {
  const char *err = NULL;
  client_t c;
  if (client_open(&c, &err) < 0) {
    check("identity", 0, "session: %s", err);
    client_close(&c);
    return;
  }
  uint8_t seed[64];
  /* Not a secret: the check is that the kernel accepts it (a host sends bytes from its own CSPRNG). */
  for (size_t i = 0; i < sizeof(seed); i++) seed[i] = (uint8_t)(i * 37 + (unsigned)now_ms());
  uint64_t target = realtime_ms() + CLOCK_STEP_MS;
  buf_t req = {0};
  uint8_t t[8];
  for (int i = 0; i < 8; i++) t[i] = (uint8_t)(target >> (56 - 8 * i));
  tlv_put_str(&req, ID_HOSTNAME, SELFTEST_HOSTNAME);
  tlv_put(&req, ID_SEED, seed, sizeof(seed));
  tlv_put(&req, ID_TIME_MS, t, sizeof(t));
  int sent = client_send(&c, T_SET_IDENTITY, &req);
  buf_free(&req);
  frame_t f;
  if (sent < 0 || !client_recv(&c, &f, &err) || f.type != T_IDENTITY_SET) {
    char why[128];
    if (sent < 0) snprintf(why, sizeof(why), "SET_IDENTITY not sent");
    else if (err && err[0]) snprintf(why, sizeof(why), "SET_IDENTITY: %s", err);
    else if (f.type == T_ERROR && f.len > 1)
      snprintf(why, sizeof(why), "%.*s", (int)(f.len - 1), (const char *)f.payload + 1);
    else snprintf(why, sizeof(why), "SET_IDENTITY: unexpected reply type 0x%02x", f.type);
    check("identity", 0, "%s", why);
    client_close(&c);
    return;
  }
  uint64_t after = realtime_ms();
  int host_set = -1, clock_set = -1;
  char entropy[16] = "?";
  tlv_iter_t it = {f.payload, f.len};
  uint8_t tag;
  const uint8_t *v;
  uint32_t len;
  while (tlv_next(&it, &tag, &v, &len) == 1) {
    if (tag == 4 && len == 1) host_set = v[0];
    if (tag == 6 && len == 1) clock_set = v[0];
    if (tag == 5 && len < sizeof(entropy)) memcpy(entropy, v, len), entropy[len] = 0;
  }
  client_close(&c);

  char host[65] = "";
  gethostname(host, sizeof(host) - 1);
  check("identity.hostname", host_set == 1 && strcmp(host, SELFTEST_HOSTNAME) == 0,
        "hostname_set=%d, gethostname()=%s", host_set, host);
  uint8_t r[16];
  ssize_t got = getrandom(r, sizeof(r), GRND_NONBLOCK);
  check("identity.entropy", strcmp(entropy, "ioctl") == 0 && got == (ssize_t)sizeof(r),
        "seed added by %s (RNDADDENTROPY = ioctl), getrandom nonblocking %s", entropy,
        got == (ssize_t)sizeof(r) ? "ok" : "would block");
  long long off = (long long)after - (long long)target;
  check("identity.clock", clock_set == 1 && off >= 0 && off < 5000,
        "clock_set=%d, CLOCK_REALTIME stepped +%llu s, %lld ms past the requested time", clock_set,
        (unsigned long long)(CLOCK_STEP_MS / 1000), off);
}

/* Runs argv through a RUN session; collects STDOUT; returns the exit code, or -1 with *err. */
static int run(const char *user, int tty, const char *script, char *out, size_t on, const char **err) {
  client_t c;
  if (client_open(&c, err) < 0) {
    client_close(&c);
    return -1;
  }
  buf_t req = {0};
  tlv_put_str(&req, RUN_ARG, "/bin/sh");
  tlv_put_str(&req, RUN_ARG, "-c");
  tlv_put_str(&req, RUN_ARG, script);
  if (user) tlv_put_str(&req, RUN_USER, user);
  if (tty) {
    uint8_t ws[4];
    put_be16(ws, 97);    /* cols */
    put_be16(ws + 2, 23); /* rows */
    tlv_put(&req, RUN_TTY, ws, 4);
  }
  tlv_put_u32(&req, RUN_TIMEOUT_MS, STEP_TIMEOUT_MS);
  tlv_put_u8(&req, RUN_STDIN, 0);
  int code = -1;
  size_t olen = 0;
  out[0] = 0;
  if (client_send(&c, T_RUN, &req) < 0) *err = "RUN not sent";
  else
    for (frame_t f; client_recv(&c, &f, err);) {
      if (f.type == T_STDOUT || f.type == T_STDERR) {
        size_t k = f.len < on - 1 - olen ? f.len : on - 1 - olen;
        memcpy(out + olen, f.payload, k);
        out[olen += k] = 0;
      } else if (f.type == T_EXIT) {
        tlv_iter_t it = {f.payload, f.len};
        uint8_t tag;
        const uint8_t *v;
        uint32_t len;
        *err = "EXIT without an exit code";
        while (tlv_next(&it, &tag, &v, &len) == 1) {
          if (tag == 1 && len == 4) code = (int)get_be32(v), *err = "";
          if (tag == 4) *err = "the process could not start";
        }
        break;
      } else if (f.type == T_ERROR) {
        *err = "agent replied ERROR";
        break;
      }
    }
  buf_free(&req);
  client_close(&c);
  return code;
}

/* Output with newlines and CRs as '|', for the one-line detail. */
static const char *flat(char *s) {
  for (char *p = s; *p; p++)
    if (*p == '\n' || *p == '\r') *p = '|';
  return s;
}

static void check_processes(void) {
  char out[512];
  const char *err = "";
  user_t u;
  const char *uerr = NULL;
  if (user_lookup(SELFTEST_USER, &u, &uerr) < 0) {
    check("user", 0, "user %s: %s", SELFTEST_USER, uerr);
  } else {
    int code = run(SELFTEST_USER, 0, "id -u; id -g; echo $HOME", out, sizeof(out), &err);
    char want[320];
    snprintf(want, sizeof(want), "%u\n%u\n%s\n", (unsigned)u.uid, (unsigned)u.gid, u.home);
    int ok = code == 0 && u.uid != 0 && strcmp(out, want) == 0;
    check("user", ok, "as %s: exit %d, output \"%s\" %s", SELFTEST_USER, code, flat(out), err);
  }
  int code = run(NULL, 1, "tty; stty size; test -t 0 && echo interactive", out, sizeof(out), &err);
  int ok = code == 0 && strstr(out, "/dev/pts/") && strstr(out, "23 97") && strstr(out, "interactive");
  check("pty", ok, "exit %d, output \"%s\" %s", code, flat(out), err);
}

/* Writes s as a JSON string body (quotes added by the caller). */
static void json_str(FILE *f, const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20 || ch == 0x7f) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
}

static void report(int64_t ms) {
  int failed = 0;
  for (int i = 0; i < nchecks; i++) failed += !checks[i].ok;
  char *line = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&line, &n);
  if (!f) return;
  fprintf(f, SELFTEST_PREFIX "{\"ok\":%s,\"passed\":%d,\"failed\":%d,\"ms\":%lld,\"checks\":[",
          failed ? "false" : "true", nchecks - failed, failed, (long long)ms);
  for (int i = 0; i < nchecks; i++) {
    fprintf(f, "%s{\"name\":\"%s\",\"ok\":%s,\"detail\":\"", i ? "," : "", checks[i].name,
            checks[i].ok ? "true" : "false");
    json_str(f, checks[i].detail);
    fputs("\"}", f);
  }
  fputs("]}\n", f);
  fclose(f);
  /* One write: the line must not interleave with other console output. */
  (void)!write(2, line, n);
  free(line);
}

void selftest_start(const cmdline_t *cl) {
  pid_t pid = fork();
  if (pid < 0) logf_err("self-test: fork: %s", strerror(errno));
  if (pid != 0) return;
  logf_err("self-test: vmm.selftest=1, running the guest checks, then shutting the VM down");
  int64_t start = now_ms();
  check_init(cl);
  check_identity();
  check_processes();
  report(now_ms() - start);
  /* The shutdown path under test: PID 1's SIGTERM handling (stop everything, sync, reboot = the VM ends). */
  kill(1, SIGTERM);
  _exit(0);
}
