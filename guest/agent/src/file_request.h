/*
 * File operation requests of protocol 2 (WRITE_FILE, READ_FILE, LIST_DIR,
 * STAT, REMOVE, MKDIR, WATCH): one TLV tag space, parsed by one pure function
 * (fuzzed with the frame decoder). docs/agent-protocol.md, "File operations".
 */
#ifndef VMM_FILE_REQUEST_H
#define VMM_FILE_REQUEST_H
#include <stddef.h>
#include <stdint.h>

enum {
  FR_PATH = 1,      /* str, required: absolute, no NUL, at most FILE_PATH_MAX bytes */
  FR_MODE = 2,      /* u32 permission bits (07777); 0/absent = default (0644 files, 0755 dirs) */
  FR_PARENTS = 3,   /* u8: create missing parent directories */
  FR_USER = 4,      /* str: owner (name or uid), looked up like RUN's USER */
  FR_OFFSET = 5,    /* u64: READ_FILE start */
  FR_LENGTH = 6,    /* u64: READ_FILE byte count, 0 = to the end */
  FR_DEPTH = 7,     /* u32: LIST_DIR levels, 0 = 1 */
  FR_RECURSIVE = 8, /* u8: REMOVE a tree / WATCH subdirectories */
};

/* FILE_INFO reply tags. */
enum {
  FI_PATH = 1,   /* str */
  FI_NAME = 2,   /* str, last path component */
  FI_TYPE = 3,   /* u8: 1 file, 2 dir, 3 symlink, 4 other */
  FI_SIZE = 4,   /* u64 bytes */
  FI_MODE = 5,   /* u32 permission bits (07777) */
  FI_MTIME = 6,  /* u64 Unix ns */
  FI_TARGET = 7, /* str, symlink target (symlinks only) */
};

/* FILE_EVENT tags. */
enum { FE_PATH = 1, FE_KIND = 2, FE_TIME = 3 };
/* FILE_EVENT kinds (u8). */
enum { FK_CREATE = 1, FK_WRITE = 2, FK_REMOVE = 3, FK_RENAME = 4, FK_CHMOD = 5 };

#define FILE_PATH_MAX 4096
#define FILE_DEPTH_MAX 64

typedef struct {
  char *path; /* absolute, NUL-free, without trailing '/' unless "/" */
  uint32_t mode;
  int parents;
  char *user; /* NULL = the agent's user */
  uint64_t offset, length;
  uint32_t depth; /* 1..FILE_DEPTH_MAX */
  int recursive;
} file_req_t;

/* Parses a file request payload. Returns 0, or -1 with *err set (req is freed). */
int file_req_parse(const uint8_t *p, size_t n, file_req_t *req, const char **err);
void file_req_free(file_req_t *req);
#endif
