/*
 * libFuzzer target: the agent's only decoders of untrusted bytes, driven the
 * way a session drives them. The input is a byte stream fed in chunks (first
 * byte = chunk size) into a buf_t; every decoded frame whose type is RUN goes
 * through run_req_parse, SET_IDENTITY through ident_req_parse, the file
 * operations (WRITE_FILE..WATCH) through file_req_parse, others through the
 * TLV iterator.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "file_request.h"
#include "frame.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = (size_t)data[0] + 1;
  data++, size--;
  buf_t in = {0};
  for (size_t off = 0; off < size; off += chunk) {
    size_t n = size - off < chunk ? size - off : chunk;
    if (buf_append(&in, data + off, n) < 0) break;
    for (;;) {
      frame_t f;
      size_t used;
      const char *err = NULL;
      int r = frame_decode(buf_head(&in), buf_size(&in), &f, &used, &err);
      if (r == FRAME_NEED_MORE) break;
      if (r == FRAME_ERROR) {
        if (!err) __builtin_trap();
        goto done;
      }
      if (used > buf_size(&in) || f.len + FRAME_HDR_LEN != used) __builtin_trap();
      if (f.type == T_RUN) {
        run_req_t req;
        const char *e = NULL;
        if (run_req_parse(f.payload, f.len, &req, &e) == 0) {
          if (!req.argv || !req.argv[0] || req.argv[req.argc]) __builtin_trap();
          run_req_free(&req);
        } else if (!e) {
          __builtin_trap();
        }
      } else if (f.type == T_SET_IDENTITY) {
        ident_req_t req;
        const char *e = NULL;
        if (ident_req_parse(f.payload, f.len, &req, &e) == 0) {
          size_t hl = strlen(req.hostname);
          if (!ident_hostname_valid((const uint8_t *)req.hostname, hl)) __builtin_trap();
          if (req.seed_len < ID_SEED_MIN || req.seed_len > ID_SEED_MAX) __builtin_trap();
        } else if (!e) {
          __builtin_trap();
        }
      } else if (f.type >= T_WRITE_FILE && f.type <= T_WATCH) {
        file_req_t req;
        const char *e = NULL;
        if (file_req_parse(f.payload, f.len, &req, &e) == 0) {
          size_t pl = strlen(req.path);
          if (req.path[0] != '/' || pl > FILE_PATH_MAX || (pl > 1 && req.path[pl - 1] == '/')) __builtin_trap();
          if (req.mode & ~07777u || req.depth < 1 || req.depth > FILE_DEPTH_MAX) __builtin_trap();
          if (req.user && (req.user[0] == 0 || strlen(req.user) > 256)) __builtin_trap();
          file_req_free(&req);
        } else if (!e) {
          __builtin_trap();
        }
      } else {
        tlv_iter_t it = {f.payload, f.len};
        uint8_t tag;
        const uint8_t *v;
        uint32_t len;
        while (tlv_next(&it, &tag, &v, &len) == 1) {
          if (v + len > f.payload + f.len) __builtin_trap();
        }
      }
      buf_consume(&in, used);
    }
  }
done:
  buf_free(&in);
  return 0;
}
