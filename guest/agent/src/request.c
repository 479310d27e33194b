#include "request.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "frame.h"

/* Copies a TLV string value; rejects embedded NUL. */
static char *dup_str(const uint8_t *v, uint32_t len) {
  if (memchr(v, 0, len)) return NULL;
  char *s = malloc((size_t)len + 1);
  if (!s) return NULL;
  memcpy(s, v, len);
  s[len] = 0;
  return s;
}

static int push(char ***vec, size_t *n, char *s) {
  char **v = realloc(*vec, (*n + 2) * sizeof(char *));
  if (!v) return -1;
  v[(*n)++] = s;
  v[*n] = NULL;
  *vec = v;
  return 0;
}

void run_req_free(run_req_t *req) {
  for (size_t i = 0; i < req->argc; i++) free(req->argv[i]);
  for (size_t i = 0; i < req->envc; i++) free(req->env[i]);
  free(req->argv);
  free(req->env);
  free(req->cwd);
  free(req->user);
  memset(req, 0, sizeof(*req));
}

int run_req_parse(const uint8_t *p, size_t n, run_req_t *req, const char **err) {
  memset(req, 0, sizeof(*req));
  req->stdin_pipe = 1;
  tlv_iter_t it = {p, n};
  uint8_t tag;
  const uint8_t *v;
  uint32_t len;
  int r;
  while ((r = tlv_next(&it, &tag, &v, &len)) == 1) {
    char *s = NULL;
    switch (tag) {
      case RUN_ARG:
      case RUN_ENV:
      case RUN_CWD:
      case RUN_USER:
        if (!(s = dup_str(v, len))) {
          *err = "string field contains NUL";
          goto fail;
        }
        break;
      default:
        break;
    }
    switch (tag) {
      case RUN_ARG:
        if (push(&req->argv, &req->argc, s) < 0) goto oom;
        break;
      case RUN_ENV:
        if (!strchr(s, '=') || s[0] == '=') {
          free(s);
          *err = "env entry must be KEY=VALUE";
          goto fail;
        }
        if (push(&req->env, &req->envc, s) < 0) goto oom;
        break;
      case RUN_CWD:
        free(req->cwd);
        req->cwd = s;
        break;
      case RUN_USER:
        free(req->user);
        req->user = s;
        break;
      case RUN_TTY:
        if (len != 4) {
          *err = "tty size must be u16 cols, u16 rows";
          goto fail;
        }
        req->tty = 1;
        req->cols = get_be16(v);
        req->rows = get_be16(v + 2);
        break;
      case RUN_TIMEOUT_MS:
        if (len != 4) {
          *err = "timeout must be u32 ms";
          goto fail;
        }
        req->timeout_ms = get_be32(v);
        break;
      case RUN_STDIN:
        if (len != 1) {
          *err = "stdin must be u8";
          goto fail;
        }
        req->stdin_pipe = v[0] != 0;
        break;
      default: /* unknown tags are ignored (forward compatible) */
        break;
    }
    continue;
  oom:
    free(s);
    *err = "out of memory";
    goto fail;
  }
  if (r < 0) {
    *err = "malformed TLV in RUN request";
    goto fail;
  }
  if (req->argc == 0 || req->argv[0][0] == 0) {
    *err = "argv must not be empty";
    goto fail;
  }
  return 0;
fail:
  run_req_free(req);
  return -1;
}

int ident_hostname_valid(const uint8_t *s, size_t n) {
  if (n < 1 || n > ID_HOSTNAME_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return 0;
  }
  return 1;
}

int ident_req_parse(const uint8_t *p, size_t n, ident_req_t *req, const char **err) {
  memset(req, 0, sizeof(*req));
  tlv_iter_t it = {p, n};
  uint8_t tag;
  const uint8_t *v;
  uint32_t len;
  int r, have_host = 0, have_seed = 0;
  while ((r = tlv_next(&it, &tag, &v, &len)) == 1) {
    switch (tag) {
      case ID_HOSTNAME:
        if (have_host) {
          *err = "hostname given twice";
          return -1;
        }
        if (!ident_hostname_valid(v, len)) {
          *err = "hostname must be 1-64 characters of [A-Za-z0-9-]";
          return -1;
        }
        memcpy(req->hostname, v, len);
        req->hostname[len] = 0;
        have_host = 1;
        break;
      case ID_SEED:
        if (have_seed) {
          *err = "entropy seed given twice";
          return -1;
        }
        if (len < ID_SEED_MIN || len > ID_SEED_MAX) {
          *err = "entropy seed must be 16-512 bytes";
          return -1;
        }
        memcpy(req->seed, v, len);
        req->seed_len = len;
        have_seed = 1;
        break;
      case ID_TIME_MS:
        if (req->has_time) {
          *err = "time given twice";
          return -1;
        }
        if (len != 8) {
          *err = "time must be u64 Unix ms";
          return -1;
        }
        req->time_ms = ((uint64_t)get_be32(v) << 32) | get_be32(v + 4);
        req->has_time = 1;
        break;
      default: /* unknown tags are ignored (forward compatible) */
        break;
    }
  }
  if (r < 0) {
    *err = "malformed TLV in SET_IDENTITY request";
    return -1;
  }
  if (!have_host) {
    *err = "SET_IDENTITY needs a hostname";
    return -1;
  }
  if (!have_seed) {
    *err = "SET_IDENTITY needs an entropy seed";
    return -1;
  }
  return 0;
}
