#include "buf.h"

#include <stdlib.h>
#include <string.h>

uint8_t *buf_reserve(buf_t *b, size_t n) {
  if (b->off > 0 && (b->off == b->len || b->cap - b->len < n)) {
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
  }
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n) cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) return NULL;
    b->data = d;
    b->cap = cap;
  }
  return b->data + b->len;
}

int buf_append(buf_t *b, const void *p, size_t n) {
  uint8_t *dst = buf_reserve(b, n);
  if (!dst) return -1;
  if (n) memcpy(dst, p, n);
  b->len += n;
  return 0;
}

void buf_consume(buf_t *b, size_t n) {
  b->off += n;
  if (b->off >= b->len) b->off = b->len = 0;
}

void buf_free(buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->off = b->len = b->cap = 0;
}
