/*
 * Agent protocol framing (docs/agent-protocol.md): u32 BE length (type +
 * payload, 1..FRAME_MAX_LEN), u8 type, payload. TLV payloads: u8 tag, u32 BE
 * len, value. The only decoder of untrusted bytes, shared with the fuzz target.
 */
#ifndef VMM_FRAME_H
#define VMM_FRAME_H
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PROTOCOL_VERSION 2
#define FRAME_MAX_LEN (1u << 20) /* bytes after the length prefix */
#define FRAME_HDR_LEN 5
#define OUTPUT_CHUNK (64u * 1024u)

enum {
  /* client -> agent */
  T_HELLO = 0x01,
  T_HEALTH = 0x02,
  T_RUN = 0x03,
  T_SET_IDENTITY = 0x04,
  T_WRITE_FILE = 0x05, /* protocol 2: file operations (files.c, watch.c) */
  T_READ_FILE = 0x06,
  T_LIST_DIR = 0x07,
  T_STAT = 0x08,
  T_REMOVE = 0x09,
  T_MKDIR = 0x0a,
  T_WATCH = 0x0b,
  T_STDIN = 0x10,
  T_RESIZE = 0x11,
  T_SIGNAL = 0x12,
  T_FILE_DATA = 0x13, /* WRITE_FILE: file bytes */
  T_FILE_END = 0x14,  /* WRITE_FILE: the last byte was sent; commit */
  /* agent -> client */
  T_HELLO_REPLY = 0x81,
  T_INFO = 0x82,
  T_STARTED = 0x83,
  T_IDENTITY_SET = 0x84,
  T_FILE_INFO = 0x85,  /* TLV, see file_request.h */
  T_OK = 0x86,         /* request accepted / operation complete */
  T_FILE_EVENT = 0x87, /* WATCH: one change */
  T_STDOUT = 0x90,
  T_STDERR = 0x91,
  T_EXIT = 0x92,
  T_FILE_READ_DATA = 0x93, /* READ_FILE: file bytes */
  T_ERROR = 0xff,
};

enum {
  E_PROTOCOL = 1,
  E_VERSION = 2,
  E_INVALID = 3,
  E_UNSUPPORTED = 4,
  E_INTERNAL = 5,
  /* protocol 2 (file operations) */
  E_NOT_FOUND = 6,    /* ENOENT */
  E_PRECONDITION = 7, /* EISDIR, ENOTDIR, ENOTEMPTY, EEXIST, EACCES, EPERM, EROFS, ELOOP, ... */
  E_NO_SPACE = 8,     /* ENOSPC, EDQUOT, EFBIG */
  E_EXHAUSTED = 9,    /* ENOMEM, EMFILE, ENFILE, EAGAIN, EMLINK: the guest ran out of memory, fds or processes */
  E_EVENTS_LOST = 10, /* WATCH: the inotify queue overflowed, events were lost; the watch ended */
};

typedef struct {
  uint8_t type;
  const uint8_t *payload;
  uint32_t len;
} frame_t;

enum { FRAME_ERROR = -1, FRAME_NEED_MORE = 0, FRAME_OK = 1 };

/*
 * Decodes one frame from buf[0..n). FRAME_OK: *f points into buf and *used is
 * the frame's size; FRAME_NEED_MORE: incomplete; FRAME_ERROR: *err says why
 * (bad or oversized length: known from the first 4 bytes).
 */
int frame_decode(const uint8_t *buf, size_t n, frame_t *f, size_t *used, const char **err);

/* Appends a frame to b. Returns 0, or -1 on ENOMEM / payload too large. */
int frame_put(buf_t *b, uint8_t type, const void *payload, size_t len);

typedef struct {
  const uint8_t *p;
  size_t n;
} tlv_iter_t;

/* Next TLV: 1 = got one, 0 = end, -1 = malformed (truncated header or value). */
int tlv_next(tlv_iter_t *it, uint8_t *tag, const uint8_t **val, uint32_t *len);
int tlv_put(buf_t *b, uint8_t tag, const void *val, uint32_t len);
int tlv_put_u8(buf_t *b, uint8_t tag, uint8_t v);
int tlv_put_u16(buf_t *b, uint8_t tag, uint16_t v);
int tlv_put_u32(buf_t *b, uint8_t tag, uint32_t v);
int tlv_put_u64(buf_t *b, uint8_t tag, uint64_t v);
int tlv_put_str(buf_t *b, uint8_t tag, const char *s);
#endif
