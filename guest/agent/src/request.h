/* RUN request: parsed from its TLV payload (pure; fuzzed with the frame decoder). */
#ifndef VMM_REQUEST_H
#define VMM_REQUEST_H
#include <stddef.h>
#include <stdint.h>

enum { RUN_ARG = 1, RUN_ENV = 2, RUN_CWD = 3, RUN_USER = 4, RUN_TTY = 5, RUN_TIMEOUT_MS = 6, RUN_STDIN = 7 };

typedef struct {
  char **argv; /* NULL-terminated */
  size_t argc;
  char **env; /* NULL-terminated, "K=V" */
  size_t envc;
  char *cwd;  /* NULL = default */
  char *user; /* NULL = current user */
  int tty;
  uint16_t cols, rows;
  uint32_t timeout_ms; /* 0 = none */
  int stdin_pipe;      /* 1 = pipe (default), 0 = /dev/null */
} run_req_t;

/* Parses a RUN payload. Returns 0, or -1 with *err set (request invalid; req is freed). */
int run_req_parse(const uint8_t *p, size_t n, run_req_t *req, const char **err);
void run_req_free(run_req_t *req);
#endif
