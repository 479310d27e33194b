/* RUN and SET_IDENTITY requests: parsed from their TLV payloads (pure; fuzzed with the frame decoder). */
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

/* SET_IDENTITY request (docs/agent-protocol.md). */
enum { ID_HOSTNAME = 1, ID_SEED = 2, ID_TIME_MS = 3 };
#define ID_HOSTNAME_MAX 64
#define ID_SEED_MIN 16
#define ID_SEED_MAX 512

typedef struct {
  char hostname[ID_HOSTNAME_MAX + 1]; /* 1..64 of [A-Za-z0-9-], NUL-terminated */
  uint8_t seed[ID_SEED_MAX];
  size_t seed_len; /* ID_SEED_MIN..ID_SEED_MAX */
  int has_time;
  uint64_t time_ms; /* wall clock to set, Unix ms (if has_time) */
} ident_req_t;

/* Parses a SET_IDENTITY payload. Returns 0, or -1 with *err set (request invalid). No allocation. */
int ident_req_parse(const uint8_t *p, size_t n, ident_req_t *req, const char **err);
/* 1 if s[0..n) is a valid hostname for SET_IDENTITY: 1..64 characters of [A-Za-z0-9-]. */
int ident_hostname_valid(const uint8_t *s, size_t n);
#endif
