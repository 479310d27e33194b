/*
 * RUN: spawn the process (own session, optional pty, user, cwd, env) and pump
 * frames <-> pipes in one poll loop until it exits (docs/agent-protocol.md).
 * Backpressure: output fds are polled only while < OUT_HIGH bytes wait for the
 * socket; the socket is read only while < STDIN_HIGH bytes wait for stdin.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "frame.h"
#include "users.h"

#define OUT_HIGH (256u * 1024u)
#define STDIN_HIGH (256u * 1024u)
#define DRAIN_QUIET_MS 50
#define HUP_GRACE_MS 1000

extern char **environ;

typedef struct {
  int stage; /* 0 chdir, 1 credentials, 2 exec */
  int err;
} start_failure_t;

typedef struct {
  int sock, sfd;
  buf_t *in;
  buf_t out, stdin_q;
  pid_t pid;
  int tty, master;
  int out_fd, err_fd, in_fd;
  int stdin_closing;
  int exited, status, timed_out, disconnected, killed, exit_sent;
  int64_t deadline, kill_at, last_output;
} run_t;

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* Builds the env: defaults from the user, then request entries override by key. */
static char **build_env(const run_req_t *req, const user_t *u) {
  size_t cap = req->envc + 8, n = 0;
  char **env = calloc(cap, sizeof(char *));
  if (!env) return NULL;
  char tmp[600];
  const char *defaults[6];
  int nd = 0;
  defaults[nd++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  if (req->tty) defaults[nd++] = "TERM=xterm-256color";
  for (int i = 0; i < nd; i++) env[n++] = strdup(defaults[i]);
  snprintf(tmp, sizeof(tmp), "HOME=%s", u->home);
  env[n++] = strdup(tmp);
  snprintf(tmp, sizeof(tmp), "USER=%s", u->name);
  env[n++] = strdup(tmp);
  snprintf(tmp, sizeof(tmp), "LOGNAME=%s", u->name);
  env[n++] = strdup(tmp);
  snprintf(tmp, sizeof(tmp), "SHELL=%s", u->shell);
  env[n++] = strdup(tmp);
  for (size_t i = 0; i < req->envc; i++) {
    const char *kv = req->env[i];
    size_t klen = (size_t)(strchr(kv, '=') - kv) + 1;
    size_t j = 0;
    for (; j < n; j++)
      if (env[j] && strncmp(env[j], kv, klen) == 0) break;
    if (j < n) free(env[j]);
    else n++;
    env[j] = strdup(kv);
  }
  for (size_t i = 0; i < n; i++)
    if (!env[i]) {
      for (size_t k = 0; k < n; k++) free(env[k]);
      free(env);
      return NULL;
    }
  return env;
}

static void free_env(char **env) {
  if (!env) return;
  for (char **p = env; *p; p++) free(*p);
  free(env);
}

static void __attribute__((noreturn)) child_fail(int fd, int stage) {
  start_failure_t f = {stage, errno};
  ssize_t w = write(fd, &f, sizeof(f));
  (void)w;
  _exit(stage == 2 && f.err == ENOENT ? 127 : 126);
}

/* In the forked child: never returns. */
static void __attribute__((noreturn)) child_exec(const run_req_t *req, const user_t *u, char **env, int errfd,
                                                 int in_r, int out_w, int err_w, int slave, int master,
                                                 pid_t parent) {
  sigset_t all;
  sigfillset(&all);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  setsid();
  if (req->tty) {
    close(master);
    ioctl(slave, TIOCSCTTY, 0);
    dup2(slave, 0);
    dup2(slave, 1);
    dup2(slave, 2);
    if (slave > 2) close(slave);
  } else {
    if (in_r < 0) in_r = open("/dev/null", O_RDONLY | O_CLOEXEC);
    dup2(in_r, 0);
    dup2(out_w, 1);
    dup2(err_w, 2);
  }
  if (getuid() == 0 || geteuid() == 0) {
    if (setgroups((size_t)u->ngroups, u->groups) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0)
      child_fail(errfd, 1);
  } else if (u->uid != getuid()) {
    errno = EPERM;
    child_fail(errfd, 1);
  }
  const char *dir = req->cwd ? req->cwd : u->home;
  if (chdir(dir) < 0) {
    if (req->cwd) child_fail(errfd, 0);
    if (chdir("/") < 0) child_fail(errfd, 0);
  }
  /* Set after setuid: a credential change clears it. No process outlives its handler. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(137);
  environ = env;
  execvp(req->argv[0], req->argv);
  child_fail(errfd, 2);
}

static void queue_exit(run_t *r, const char *error, int code_override) {
  buf_t p = {0};
  if (error) {
    tlv_put_u32(&p, 1, (uint32_t)code_override);
    tlv_put_str(&p, 4, error);
  } else if (WIFEXITED(r->status)) {
    tlv_put_u32(&p, 1, (uint32_t)WEXITSTATUS(r->status));
  } else if (WIFSIGNALED(r->status)) {
    tlv_put_u8(&p, 2, (uint8_t)WTERMSIG(r->status));
  }
  tlv_put_u8(&p, 3, (uint8_t)r->timed_out);
  frame_put(&r->out, T_EXIT, buf_head(&p), buf_size(&p));
  buf_free(&p);
  r->exit_sent = 1;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Closes an output fd; on a pty that is the master, which is also stdin. */
static void close_output(run_t *r, int *fd) {
  if (r->tty && *fd >= 0 && *fd == r->master) {
    r->master = -1;
    r->in_fd = -1;
  }
  close_fd(fd);
}

static void disconnect(run_t *r) {
  if (r->disconnected) return;
  r->disconnected = 1;
  shutdown(r->sock, SHUT_RDWR);
  buf_consume(&r->out, buf_size(&r->out));
  buf_consume(&r->stdin_q, buf_size(&r->stdin_q));
  if (!r->tty) close_fd(&r->in_fd);
  kill(-r->pid, SIGHUP);
  r->kill_at = now_ms() + HUP_GRACE_MS;
}

static void protocol_error(run_t *r, const char *msg) {
  send_error(r->sock, E_PROTOCOL, msg);
  disconnect(r);
}

static void handle_frame(run_t *r, const frame_t *f) {
  switch (f->type) {
    case T_STDIN:
      if (r->stdin_closing || r->in_fd < 0) return;
      if (f->len == 0) {
        if (r->tty) buf_append(&r->stdin_q, "\x04", 1);
        else r->stdin_closing = 1;
      } else if (buf_append(&r->stdin_q, f->payload, f->len) < 0) {
        protocol_error(r, "out of memory");
      }
      return;
    case T_RESIZE:
      if (f->len != 4) return protocol_error(r, "RESIZE payload must be u16 cols, u16 rows");
      if (r->tty) {
        struct winsize ws = {.ws_col = get_be16(f->payload), .ws_row = get_be16(f->payload + 2)};
        ioctl(r->master, TIOCSWINSZ, &ws);
      }
      return;
    case T_SIGNAL:
      if (f->len != 1 || f->payload[0] == 0 || f->payload[0] >= NSIG)
        return protocol_error(r, "SIGNAL payload must be u8 signal number 1..64");
      kill(-r->pid, f->payload[0]);
      return;
    default:
      return protocol_error(r, "unexpected frame type in a RUN session");
  }
}

static void read_socket(run_t *r) {
  uint8_t *dst = buf_reserve(r->in, 65536);
  if (!dst) return protocol_error(r, "out of memory");
  ssize_t n = recv(r->sock, dst, 65536, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) return disconnect(r); /* EOF (also mid-frame: truncated) or reset */
  r->in->len += (size_t)n;
  frame_t f;
  size_t used;
  const char *err;
  while (!r->disconnected) {
    int d = frame_decode(buf_head(r->in), buf_size(r->in), &f, &used, &err);
    if (d == FRAME_NEED_MORE) break;
    if (d == FRAME_ERROR) return protocol_error(r, err);
    handle_frame(r, &f);
    buf_consume(r->in, used);
  }
}

/* Reads one chunk of output from *fd into an output frame. */
static void read_output(run_t *r, int *fd, uint8_t type) {
  uint8_t *p = buf_reserve(&r->out, FRAME_HDR_LEN + OUTPUT_CHUNK);
  if (!p) return;
  ssize_t n = read(*fd, p + FRAME_HDR_LEN, OUTPUT_CHUNK);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) { /* EOF, or EIO on a pty whose slave side is gone */
    close_output(r, fd);
    return;
  }
  put_be32(p, (uint32_t)n + 1);
  p[4] = type;
  r->out.len += FRAME_HDR_LEN + (size_t)n;
  r->last_output = now_ms();
}

static void write_stdin(run_t *r) {
  ssize_t n = write(r->in_fd, buf_head(&r->stdin_q), buf_size(&r->stdin_q));
  if (n > 0) buf_consume(&r->stdin_q, (size_t)n);
  else if (n < 0 && errno != EAGAIN && errno != EINTR) { /* EPIPE: the process closed stdin */
    buf_consume(&r->stdin_q, buf_size(&r->stdin_q));
    if (!r->tty) close_fd(&r->in_fd);
  }
}

static void read_signals(run_t *r) {
  struct signalfd_siginfo si;
  while (read(r->sfd, &si, sizeof(si)) == sizeof(si)) {
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) { /* the agent is shutting down */
      kill(-r->pid, SIGKILL);
      r->killed = 1;
      disconnect(r);
    }
  }
  int st;
  if (!r->exited && waitpid(r->pid, &st, WNOHANG) == r->pid) {
    r->exited = 1;
    r->status = st;
    r->last_output = now_ms();
  }
}

static void pump(run_t *r) {
  for (;;) {
    int64_t now = now_ms();
    if (!r->exited && r->deadline && !r->timed_out && now >= r->deadline) {
      kill(-r->pid, SIGKILL);
      r->timed_out = 1;
    }
    if (r->disconnected) {
      if (r->exited) { /* leader gone: take the rest of its group with it */
        kill(-r->pid, SIGKILL);
        return;
      }
      if (!r->killed && now >= r->kill_at) {
        kill(-r->pid, SIGKILL);
        r->killed = 1;
      }
    }
    if (r->exited && (r->out_fd >= 0 || r->err_fd >= 0) && now - r->last_output >= DRAIN_QUIET_MS) {
      close_output(r, &r->out_fd);
      close_output(r, &r->err_fd);
    }
    if (r->exited && r->out_fd < 0 && r->err_fd < 0 && !r->exit_sent) queue_exit(r, NULL, 0);
    if (r->exit_sent && buf_size(&r->out) == 0) return;
    if (!r->tty && r->stdin_closing && buf_size(&r->stdin_q) == 0) close_fd(&r->in_fd);

    struct pollfd p[5];
    int n = 0, isock = -1, iout = -1, ierr = -1, iin = -1;
    p[n++] = (struct pollfd){r->sfd, POLLIN, 0};
    if (!r->disconnected) {
      short ev = 0;
      if (buf_size(&r->out)) ev |= POLLOUT;
      if (buf_size(&r->stdin_q) < STDIN_HIGH && !r->exit_sent) ev |= POLLIN;
      isock = n;
      p[n++] = (struct pollfd){r->sock, ev, 0};
    }
    int room = r->disconnected || buf_size(&r->out) < OUT_HIGH;
    if (r->out_fd >= 0 && room) iout = n, p[n++] = (struct pollfd){r->out_fd, POLLIN, 0};
    if (r->err_fd >= 0 && room) ierr = n, p[n++] = (struct pollfd){r->err_fd, POLLIN, 0};
    if (r->in_fd >= 0 && buf_size(&r->stdin_q)) iin = n, p[n++] = (struct pollfd){r->in_fd, POLLOUT, 0};

    int64_t timeout = -1;
#define MIN_TIMEOUT(t) \
  do {                 \
    int64_t t_ = (t);  \
    if (t_ < 0) t_ = 0; \
    if (timeout < 0 || t_ < timeout) timeout = t_; \
  } while (0)
    if (!r->exited && r->deadline && !r->timed_out) MIN_TIMEOUT(r->deadline - now);
    if (r->disconnected && !r->killed) MIN_TIMEOUT(r->kill_at - now);
    if (r->exited && room && (r->out_fd >= 0 || r->err_fd >= 0)) MIN_TIMEOUT(r->last_output + DRAIN_QUIET_MS - now);
    int polled = poll(p, (nfds_t)n, (int)timeout);
    /* Not polling the pipes (the host reads slowly) is not a quiet pipe: the drain window
     * starts again once there is room, else output still in the pipe at exit is dropped.
     * (The output that filled the buffer was read just before, so the window had not run.) */
    if (!room) r->last_output = now_ms();
    if (polled < 0) {
      if (errno == EINTR) continue;
      logf_err("poll failed: %s", strerror(errno));
      kill(-r->pid, SIGKILL);
      return;
    }
    if (p[0].revents) read_signals(r);
    if (isock >= 0 && !r->disconnected) {
      short rev = p[isock].revents;
      if (rev & POLLOUT) {
        ssize_t w = send(r->sock, buf_head(&r->out), buf_size(&r->out), MSG_NOSIGNAL);
        if (w > 0) buf_consume(&r->out, (size_t)w);
        else if (w < 0 && errno != EAGAIN && errno != EINTR) disconnect(r);
      }
      if (!r->disconnected && (rev & POLLIN)) read_socket(r);
      else if (!r->disconnected && (rev & (POLLHUP | POLLERR)) && !(p[isock].events & POLLIN)) disconnect(r);
    }
    if (iout >= 0 && p[iout].revents && r->out_fd >= 0) read_output(r, &r->out_fd, T_STDOUT);
    if (ierr >= 0 && p[ierr].revents && r->err_fd >= 0) read_output(r, &r->err_fd, T_STDERR);
    if (iin >= 0 && p[iin].revents && r->in_fd >= 0) write_stdin(r);
    if (r->disconnected) { /* nobody reads the output any more */
      buf_consume(&r->out, buf_size(&r->out));
    }
  }
}

void run_session(int sock, buf_t *in, run_req_t *req) {
  const char *err = NULL;
  user_t u;
  if (user_lookup(req->user, &u, &err) < 0) {
    char msg[200];
    snprintf(msg, sizeof(msg), "user %.64s: %s", req->user, err);
    send_error(sock, E_INVALID, msg);
    return;
  }
  char **env = build_env(req, &u);
  if (!env) {
    send_error(sock, E_EXHAUSTED, "out of memory");
    return;
  }
  run_t r = {.sock = sock, .in = in, .master = -1, .out_fd = -1, .err_fd = -1, .in_fd = -1};
  r.tty = req->tty;
  int slave = -1, in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, errp[2];
  if (pipe2(errp, O_CLOEXEC) < 0) goto sys_fail;
  if (req->tty) {
    struct winsize ws = {.ws_col = req->cols, .ws_row = req->rows};
    if (openpty(&r.master, &slave, NULL, NULL, &ws) < 0) goto sys_fail;
    fcntl(r.master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
  } else {
    if ((req->stdin_pipe && pipe2(in_pipe, O_CLOEXEC) < 0) || pipe2(out_pipe, O_CLOEXEC) < 0 ||
        pipe2(err_pipe, O_CLOEXEC) < 0)
      goto sys_fail;
  }
  pid_t parent = getpid();
  r.pid = fork();
  if (r.pid < 0) goto sys_fail;
  if (r.pid == 0) {
    close(errp[0]);
    child_exec(req, &u, env, errp[1], in_pipe[0], out_pipe[1], err_pipe[1], slave, r.master, parent);
  }
  free_env(env);
  env = NULL;
  close(errp[1]);
  close_fd(&slave);
  close_fd(&in_pipe[0]);
  close_fd(&out_pipe[1]);
  close_fd(&err_pipe[1]);
  if (req->tty) {
    r.out_fd = r.in_fd = r.master;
  } else {
    r.in_fd = in_pipe[1];
    r.out_fd = out_pipe[0];
    r.err_fd = err_pipe[0];
  }
  start_failure_t fail;
  ssize_t got;
  do got = read(errp[0], &fail, sizeof(fail));
  while (got < 0 && errno == EINTR);
  close(errp[0]);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  r.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  set_nonblock(sock);

  if (got == (ssize_t)sizeof(fail)) {
    static const char *stage[] = {"chdir", "setting credentials", "exec"};
    char msg[256];
    if (fail.stage == 0) snprintf(msg, sizeof(msg), "chdir %.200s failed: %s", req->cwd, strerror(fail.err));
    else snprintf(msg, sizeof(msg), "%s failed: %s", stage[fail.stage % 3], strerror(fail.err));
    int st;
    while (waitpid(r.pid, &st, 0) < 0 && errno == EINTR) {
    }
    queue_exit(&r, msg, fail.stage == 2 && fail.err == ENOENT ? 127 : 126);
    (void)send_all(sock, &r.out, 5000);
  } else {
    uint8_t pidb[4];
    put_be32(pidb, (uint32_t)r.pid);
    frame_put(&r.out, T_STARTED, pidb, 4);
    if (r.tty) set_nonblock(r.master);
    else {
      set_nonblock(r.out_fd);
      set_nonblock(r.err_fd);
      if (r.in_fd >= 0) set_nonblock(r.in_fd);
    }
    if (req->timeout_ms) r.deadline = now_ms() + req->timeout_ms;
    /* Frames pipelined after RUN (early STDIN) are already in `in`. */
    frame_t f;
    size_t used;
    while (!r.disconnected) {
      int d = frame_decode(buf_head(in), buf_size(in), &f, &used, &err);
      if (d == FRAME_NEED_MORE) break;
      if (d == FRAME_ERROR) {
        protocol_error(&r, err);
        break;
      }
      handle_frame(&r, &f);
      buf_consume(in, used);
    }
    pump(&r);
  }
  close_output(&r, &r.out_fd);
  if (r.master >= 0) close(r.master);
  close_fd(&r.err_fd);
  if (!r.tty) close_fd(&r.in_fd);
  if (r.sfd >= 0) close(r.sfd);
  buf_free(&r.out);
  buf_free(&r.stdin_q);
  return;
sys_fail: {
  int e = errno;
  char msg[128];
  snprintf(msg, sizeof(msg), "could not create pipes or process: %s", strerror(e));
  logf_err("run: %s", strerror(e));
  /* Out of processes, memory or fds is the guest's limit, not an agent fault. */
  send_error(sock, e == EAGAIN || e == ENOMEM || e == EMFILE || e == ENFILE ? E_EXHAUSTED : E_INTERNAL, msg);
}
  free_env(env);
}
