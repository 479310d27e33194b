#include "file_request.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "frame.h"

static uint64_t get_be64(const uint8_t *v) { return ((uint64_t)get_be32(v) << 32) | get_be32(v + 4); }

void file_req_free(file_req_t *req) {
  free(req->path);
  free(req->user);
  memset(req, 0, sizeof(*req));
}

/* Copies an absolute path, dropping trailing slashes ("/" stays "/"). */
static char *dup_path(const uint8_t *v, uint32_t len, const char **err) {
  if (len == 0 || v[0] != '/') {
    *err = "path must be absolute";
    return NULL;
  }
  if (len > FILE_PATH_MAX) {
    *err = "path longer than 4096 bytes";
    return NULL;
  }
  if (memchr(v, 0, len)) {
    *err = "path contains NUL";
    return NULL;
  }
  while (len > 1 && v[len - 1] == '/') len--;
  char *s = malloc((size_t)len + 1);
  if (!s) {
    *err = "out of memory";
    return NULL;
  }
  memcpy(s, v, len);
  s[len] = 0;
  return s;
}

int file_req_parse(const uint8_t *p, size_t n, file_req_t *req, const char **err) {
  memset(req, 0, sizeof(*req));
  req->depth = 1;
  tlv_iter_t it = {p, n};
  uint8_t tag;
  const uint8_t *v;
  uint32_t len;
  int r;
  while ((r = tlv_next(&it, &tag, &v, &len)) == 1) {
    switch (tag) {
      case FR_PATH:
        if (req->path) {
          *err = "path given twice";
          goto fail;
        }
        if (!(req->path = dup_path(v, len, err))) goto fail;
        break;
      case FR_MODE:
        if (len != 4) {
          *err = "mode must be u32";
          goto fail;
        }
        req->mode = get_be32(v);
        if (req->mode & ~07777u) {
          *err = "mode has bits outside 07777";
          goto fail;
        }
        break;
      case FR_PARENTS:
      case FR_RECURSIVE:
        if (len != 1) {
          *err = "flag must be u8";
          goto fail;
        }
        if (tag == FR_PARENTS) req->parents = v[0] != 0;
        else req->recursive = v[0] != 0;
        break;
      case FR_USER:
        if (req->user || len == 0 || len > 256 || memchr(v, 0, len)) {
          *err = "user must be given once, 1-256 bytes without NUL";
          goto fail;
        }
        if (!(req->user = malloc((size_t)len + 1))) {
          *err = "out of memory";
          goto fail;
        }
        memcpy(req->user, v, len);
        req->user[len] = 0;
        break;
      case FR_OFFSET:
      case FR_LENGTH:
        if (len != 8) {
          *err = "offset and length must be u64";
          goto fail;
        }
        if (tag == FR_OFFSET) req->offset = get_be64(v);
        else req->length = get_be64(v);
        break;
      case FR_DEPTH:
        if (len != 4) {
          *err = "depth must be u32";
          goto fail;
        }
        req->depth = get_be32(v);
        if (req->depth == 0) req->depth = 1;
        if (req->depth > FILE_DEPTH_MAX) req->depth = FILE_DEPTH_MAX;
        break;
      default: /* unknown tags are ignored (forward compatible) */
        break;
    }
  }
  if (r < 0) {
    *err = "malformed TLV in file request";
    goto fail;
  }
  if (!req->path) {
    *err = "file request needs a path";
    goto fail;
  }
  return 0;
fail:
  file_req_free(req);
  return -1;
}
