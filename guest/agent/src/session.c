/* One connection: version handshake, then one operation (HEALTH, RUN, SET_IDENTITY or a file operation). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "frame.h"
#include "file_request.h"
#include "files.h"
#include "request.h"

#define REQUEST_TIMEOUT_MS 10000
/* How long a finished RUN session waits for the host to close after EXIT. */
#define LINGER_MS 1000

/*
 * Ends a RUN session without a reset: half-closes our side (the host reads EOF
 * right after EXIT), then drops what the host still sends (a STDIN end or a
 * SIGNAL that crossed the EXIT) until it closes or LINGER_MS pass. Closing a
 * socket with unread bytes resets the connection (ECONNRESET at a Unix-socket
 * peer, RST on vsock), and a relay that sees the reset before it forwarded our
 * last frames drops them: the host would see the session end without EXIT.
 */
static void linger_close(int fd) {
  shutdown(fd, SHUT_WR);
  int64_t until = now_ms() + LINGER_MS;
  char sink[4096];
  for (;;) {
    int64_t left = until - now_ms();
    if (left <= 0) break;
    struct pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, (int)left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ssize_t got = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (got <= 0) break;
  }
}

int send_all(int fd, buf_t *b, int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  while (buf_size(b) > 0) {
    ssize_t n = send(fd, buf_head(b), buf_size(b), MSG_NOSIGNAL);
    if (n > 0) {
      buf_consume(b, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return -1;
    int64_t left = deadline - now_ms();
    if (left <= 0) return -1;
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, (int)left) < 0 && errno != EINTR) return -1;
  }
  return 0;
}

void send_error(int fd, uint8_t code, const char *msg) {
  buf_t b = {0};
  size_t n = strlen(msg);
  uint8_t *p = malloc(n + 1);
  if (p) {
    p[0] = code;
    memcpy(p + 1, msg, n);
    if (frame_put(&b, T_ERROR, p, n + 1) == 0) (void)send_all(fd, &b, 1000);
    free(p);
  }
  buf_free(&b);
}

/* Reads until one frame is in `in`. 1 = frame, 0 = EOF/timeout/error (reason in *err). */
static int read_frame(int fd, buf_t *in, frame_t *f, size_t *used, int64_t deadline, const char **err) {
  for (;;) {
    int r = frame_decode(buf_head(in), buf_size(in), f, used, err);
    if (r == FRAME_OK) return 1;
    if (r == FRAME_ERROR) return -1;
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      *err = "no request within 10 s";
      return 0;
    }
    struct pollfd p = {fd, POLLIN, 0};
    int pr = poll(&p, 1, (int)left);
    if (pr < 0 && errno != EINTR) return 0;
    if (pr <= 0) continue;
    uint8_t *dst = buf_reserve(in, 65536);
    if (!dst) return 0;
    ssize_t n = recv(fd, dst, 65536, 0);
    if (n == 0) {
      *err = buf_size(in) ? "stream truncated inside a frame" : "connection closed";
      return buf_size(in) ? -1 : 0;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      *err = "read failed";
      return 0;
    }
    in->len += (size_t)n;
  }
}

static void reply_info(int fd) {
  buf_t p = {0}, out = {0};
  char boot_id[33], host[65];
  identity_get(boot_id, host);
  int64_t up = now_ms() - (int64_t)g_agent.start.tv_sec * 1000 - g_agent.start.tv_nsec / 1000000;
  int ok = tlv_put_str(&p, 1, AGENT_VERSION) == 0 && tlv_put_u16(&p, 2, PROTOCOL_VERSION) == 0 &&
           tlv_put_str(&p, 3, boot_id) == 0 && tlv_put_u64(&p, 4, (uint64_t)(up < 0 ? 0 : up)) == 0 &&
           tlv_put_u32(&p, 5, (uint32_t)g_agent.pid) == 0 && tlv_put_str(&p, 6, host) == 0 &&
           tlv_put_str(&p, 7, g_agent.mode) == 0;
  if (ok && frame_put(&out, T_INFO, buf_head(&p), buf_size(&p)) == 0) (void)send_all(fd, &out, 5000);
  else send_error(fd, E_EXHAUSTED, "out of memory");
  buf_free(&p);
  buf_free(&out);
}

void session_serve(int fd) {
  buf_t in = {0};
  frame_t f;
  size_t used;
  const char *err = NULL;
  int64_t deadline = now_ms() + REQUEST_TIMEOUT_MS;
  int code = 0;

  int r = read_frame(fd, &in, &f, &used, deadline, &err);
  if (r <= 0) goto protocol_error;
  if (f.type != T_HELLO || f.len < 2) {
    err = "first frame must be HELLO {u16 version}";
    goto protocol_error;
  }
  uint16_t version = get_be16(f.payload);
  buf_consume(&in, used);
  if (version > PROTOCOL_VERSION) version = PROTOCOL_VERSION; /* speak min(client, agent) */
  if (version < 1) {
    send_error(fd, E_VERSION, "unsupported protocol version (agent speaks 1-2)");
    goto out;
  }
  {
    buf_t hello = {0};
    uint8_t p[2 + sizeof(AGENT_VERSION)];
    put_be16(p, version);
    memcpy(p + 2, AGENT_VERSION, sizeof(AGENT_VERSION) - 1);
    int sent = frame_put(&hello, T_HELLO_REPLY, p, 2 + sizeof(AGENT_VERSION) - 1) == 0 &&
               send_all(fd, &hello, 5000) == 0;
    buf_free(&hello);
    if (!sent) goto out;
  }

  r = read_frame(fd, &in, &f, &used, deadline, &err);
  if (r <= 0) goto protocol_error;
  switch (f.type) {
    case T_HEALTH:
      reply_info(fd);
      goto out;
    case T_RUN: {
      run_req_t req;
      if (run_req_parse(f.payload, f.len, &req, &err) < 0) {
        send_error(fd, E_INVALID, err);
        goto out;
      }
      buf_consume(&in, used);
      run_session(fd, &in, &req);
      run_req_free(&req);
      linger_close(fd);
      goto out;
    }
    case T_SET_IDENTITY:
      identity_serve(fd, f.payload, f.len);
      if (in.data) explicit_bzero(in.data, in.cap); /* the entropy seed */
      goto out;
    case T_WRITE_FILE:
    case T_READ_FILE:
    case T_LIST_DIR:
    case T_STAT:
    case T_REMOVE:
    case T_MKDIR:
    case T_WATCH: {
      if (version < 2) {
        send_error(fd, E_UNSUPPORTED, "file operations need protocol version 2");
        goto out;
      }
      file_req_t req;
      if (file_req_parse(f.payload, f.len, &req, &err) < 0) {
        send_error(fd, E_INVALID, err);
        goto out;
      }
      uint8_t type = f.type;
      buf_consume(&in, used);
      files_serve(fd, &in, type, &req);
      file_req_free(&req);
      goto out;
    }
    default:
      err = "unknown or unexpected request frame type";
      goto protocol_error;
  }

protocol_error:
  if (r < 0 || (r > 0 && err)) send_error(fd, E_PROTOCOL, err ? err : "protocol error");
  code = r < 0 ? 2 : 0;
out:
  buf_free(&in);
  close(fd);
  exit(code);
}
