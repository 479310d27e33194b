/* Growable byte buffer with a read offset (queue of bytes). */
#ifndef VMM_BUF_H
#define VMM_BUF_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint8_t *data;
  size_t off; /* first unread byte */
  size_t len; /* end of valid bytes */
  size_t cap;
} buf_t;

/* Bytes queued (len - off). */
static inline size_t buf_size(const buf_t *b) { return b->len - b->off; }
static inline const uint8_t *buf_head(const buf_t *b) { return b->data ? b->data + b->off : (const uint8_t *)""; }

/* Makes room for n more bytes at the end; returns a pointer to them or NULL (ENOMEM). */
uint8_t *buf_reserve(buf_t *b, size_t n);
int buf_append(buf_t *b, const void *p, size_t n);
void buf_consume(buf_t *b, size_t n);
void buf_free(buf_t *b);

static inline void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint16_t get_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t get_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
#endif
