/* File operations of protocol 2 (docs/agent-protocol.md, "File operations"). */
#ifndef VMM_FILES_H
#define VMM_FILES_H
#include <stdint.h>
#include <sys/stat.h>

#include "buf.h"
#include "file_request.h"

/*
 * Serves WRITE_FILE, READ_FILE, LIST_DIR, STAT, REMOVE or MKDIR (`type`) on
 * sock; `in` holds bytes already read after the request frame. Replies and
 * errors go to sock; the caller closes it.
 */
void files_serve(int sock, buf_t *in, uint8_t type, const file_req_t *req);
/* Serves WATCH until the client closes the connection or the watched path goes away. */
void watch_serve(int sock, const file_req_t *req);

/* Shared by files.c and watch.c. */
/* ERROR code for an errno (E_NOT_FOUND, E_PRECONDITION, E_NO_SPACE, else E_INTERNAL). */
uint8_t files_errno_code(int e);
/* Sends ERROR "<what> <path>: <strerror(e)>" with the code for e. */
void files_fail(int sock, int e, const char *what, const char *path);
/* Sends one frame (blocking; the peer's reading paces it). 0 ok, -1 the connection failed. */
int files_send(int sock, uint8_t type, const buf_t *payload);
#endif
