/* Process-wide state of the agent and the entry points of its modules. */
#ifndef VMM_AGENT_H
#define VMM_AGENT_H
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "request.h"

#define AGENT_VERSION "0.3.0"
#define DEFAULT_AGENT_PORT 1024u

/*
 * Identity that SET_IDENTITY changes at run time. It lives in a MAP_SHARED
 * page created before any handler is forked, so a change made by one handler
 * process is seen by the main process and every later handler.
 */
typedef struct {
  _Atomic int lock;  /* spin lock, held only while copying the fields */
  char boot_id[33];  /* random per agent start and per SET_IDENTITY, hex */
  char hostname[65]; /* simulated mode: hostname recorded by SET_IDENTITY ("" = none) */
} agent_identity_t;

typedef struct {
  const char *mode;  /* "init", "agent" or "unix" */
  int simulated;     /* --unix/--unix-dir: a host process that must never change the host's identity */
  struct timespec start;
  pid_t pid;         /* of the main (listening) process */
  agent_identity_t *ident; /* shared page (see identity_init) */
} agent_state_t;

extern agent_state_t g_agent;

/* Creates the shared identity page and the first boot id. Call before forking handlers. */
void identity_init(void);
/* Copies the current boot id and the hostname to report (the recorded one in simulated mode, else gethostname). */
void identity_get(char boot_id[33], char hostname[65]);
/* Serves a SET_IDENTITY request (payload of the frame) and replies IDENTITY_SET or ERROR. */
void identity_serve(int fd, const uint8_t *payload, size_t len);

int64_t now_ms(void);
/* Prints "vmm-agent: <msg>" to stderr. */
void logf_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Serves one accepted connection in a handler process; never returns. */
void session_serve(int fd) __attribute__((noreturn));
/* Runs a RUN session on sock; in holds bytes already read after the RUN frame. */
void run_session(int sock, buf_t *in, run_req_t *req);
/* Sends all of b on non-blocking fd within timeout_ms. 0 ok, -1 failed. */
int send_all(int fd, buf_t *b, int timeout_ms);
/* Queues an ERROR frame and sends it best effort. */
void send_error(int fd, uint8_t code, const char *msg);
#endif
