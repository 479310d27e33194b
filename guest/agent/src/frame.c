#include "frame.h"

#include <string.h>

int frame_decode(const uint8_t *buf, size_t n, frame_t *f, size_t *used, const char **err) {
  if (n < 4) return FRAME_NEED_MORE;
  uint32_t len = get_be32(buf);
  if (len == 0) {
    *err = "bad frame length 0";
    return FRAME_ERROR;
  }
  if (len > FRAME_MAX_LEN) {
    *err = "frame larger than 1 MiB";
    return FRAME_ERROR;
  }
  if (n - 4 < len) return FRAME_NEED_MORE;
  f->type = buf[4];
  f->payload = buf + FRAME_HDR_LEN;
  f->len = len - 1;
  *used = 4 + (size_t)len;
  return FRAME_OK;
}

int frame_put(buf_t *b, uint8_t type, const void *payload, size_t len) {
  if (len > FRAME_MAX_LEN - 1) return -1;
  uint8_t *p = buf_reserve(b, FRAME_HDR_LEN + len);
  if (!p) return -1;
  put_be32(p, (uint32_t)len + 1);
  p[4] = type;
  if (len) memcpy(p + FRAME_HDR_LEN, payload, len);
  b->len += FRAME_HDR_LEN + len;
  return 0;
}

int tlv_next(tlv_iter_t *it, uint8_t *tag, const uint8_t **val, uint32_t *len) {
  if (it->n == 0) return 0;
  if (it->n < 5) return -1;
  uint32_t l = get_be32(it->p + 1);
  if (l > it->n - 5) return -1;
  *tag = it->p[0];
  *val = it->p + 5;
  *len = l;
  it->p += 5 + (size_t)l;
  it->n -= 5 + (size_t)l;
  return 1;
}

int tlv_put(buf_t *b, uint8_t tag, const void *val, uint32_t len) {
  uint8_t *p = buf_reserve(b, 5 + (size_t)len);
  if (!p) return -1;
  p[0] = tag;
  put_be32(p + 1, len);
  if (len) memcpy(p + 5, val, len);
  b->len += 5 + (size_t)len;
  return 0;
}

int tlv_put_u8(buf_t *b, uint8_t tag, uint8_t v) { return tlv_put(b, tag, &v, 1); }

int tlv_put_u16(buf_t *b, uint8_t tag, uint16_t v) {
  uint8_t p[2];
  put_be16(p, v);
  return tlv_put(b, tag, p, 2);
}

int tlv_put_u32(buf_t *b, uint8_t tag, uint32_t v) {
  uint8_t p[4];
  put_be32(p, v);
  return tlv_put(b, tag, p, 4);
}

int tlv_put_u64(buf_t *b, uint8_t tag, uint64_t v) {
  uint8_t p[8];
  put_be32(p, (uint32_t)(v >> 32));
  put_be32(p + 4, (uint32_t)v);
  return tlv_put(b, tag, p, 8);
}

int tlv_put_str(buf_t *b, uint8_t tag, const char *s) { return tlv_put(b, tag, s, (uint32_t)strlen(s)); }
