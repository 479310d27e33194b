/* Process-wide state of the agent and the entry points of its modules. */
#ifndef VMM_AGENT_H
#define VMM_AGENT_H
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "request.h"

#define AGENT_VERSION "0.1.0"
#define DEFAULT_AGENT_PORT 1024u

typedef struct {
  const char *mode;  /* "init", "agent" or "unix" */
  char boot_id[33];  /* random per agent start, hex */
  struct timespec start;
  pid_t pid;         /* of the main (listening) process */
} agent_state_t;

extern agent_state_t g_agent;

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
