/*
 * WRITE_FILE, READ_FILE, LIST_DIR, STAT, REMOVE, MKDIR. Blocking I/O on the
 * connection's socket: a send blocks until the host reads, so the agent holds
 * at most one data frame of a file in memory in either direction
 * (FILE_CHUNK bytes out, one ≤ 1 MiB frame plus one receive in).
 * WRITE_FILE writes an unnamed temp file (O_TMPFILE) in the target's
 * directory, fsyncs it, applies mode and owner, names it and renames it over
 * the target: a reader sees the old file or the whole new one. Any failure, a
 * connection that ends before FILE_END, or the agent dying leaves nothing.
 */
#include "files.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "frame.h"
#include "users.h"

#define FILE_CHUNK (256u * 1024u)
#define RECV_CHUNK (256u * 1024u)
#define LIST_FLUSH (64u * 1024u)


uint8_t files_errno_code(int e) {
  switch (e) {
    case ENOENT:
      return E_NOT_FOUND;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return E_NO_SPACE;
    case EISDIR:
    case ENOTDIR:
    case ENOTEMPTY:
    case EEXIST:
    case EACCES:
    case EPERM:
    case EROFS:
    case ELOOP:
    case ENAMETOOLONG:
    case ETXTBSY:
    case EBUSY:
    case EXDEV:
      return E_PRECONDITION;
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EAGAIN:
    case EMLINK:
      return E_EXHAUSTED;
    default:
      return E_INTERNAL;
  }
}

void files_fail(int sock, int e, const char *what, const char *path) {
  char msg[FILE_PATH_MAX + 256];
  snprintf(msg, sizeof(msg), "%s %s: %s", what, path, strerror(e));
  send_error(sock, files_errno_code(e), msg);
}

int files_send(int sock, uint8_t type, const buf_t *payload) {
  buf_t out = {0};
  int r = frame_put(&out, type, buf_head(payload), buf_size(payload));
  if (r == 0) r = send_all(sock, &out, 60000);
  buf_free(&out);
  return r;
}

static int send_empty(int sock, uint8_t type) {
  buf_t none = {0};
  return files_send(sock, type, &none);
}

/* FILE_INFO payload for path (lstat result st). */
static int put_info(buf_t *p, const char *path, const struct stat *st) {
  const char *slash = strrchr(path, '/');
  const char *name = slash && slash[1] ? slash + 1 : path;
  uint8_t type = S_ISREG(st->st_mode) ? 1 : S_ISDIR(st->st_mode) ? 2 : S_ISLNK(st->st_mode) ? 3 : 4;
  uint64_t mtime = (uint64_t)st->st_mtim.tv_sec * 1000000000ull + (uint64_t)st->st_mtim.tv_nsec;
  int r = tlv_put_str(p, FI_PATH, path) | tlv_put_str(p, FI_NAME, name) | tlv_put_u8(p, FI_TYPE, type) |
          tlv_put_u64(p, FI_SIZE, (uint64_t)st->st_size) | tlv_put_u32(p, FI_MODE, st->st_mode & 07777) |
          tlv_put_u64(p, FI_MTIME, mtime);
  if (type == 3) {
    char target[FILE_PATH_MAX + 1];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n >= 0) r |= tlv_put(p, FI_TARGET, target, (uint32_t)n);
  }
  return r ? -1 : 0;
}

static int send_info(int sock, const char *path) {
  struct stat st;
  if (lstat(path, &st) < 0) {
    files_fail(sock, errno, "stat", path);
    return -1;
  }
  buf_t p = {0};
  int r = put_info(&p, path, &st) == 0 ? files_send(sock, T_FILE_INFO, &p) : -1;
  buf_free(&p);
  return r;
}

/* mkdir -p: creates missing directories of path (mode, owner if u). 0, or -1 with errno. */
static int mkdir_parents(const char *path, mode_t mode, const user_t *u) {
  char tmp[FILE_PATH_MAX + 1];
  snprintf(tmp, sizeof(tmp), "%s", path);
  for (char *p = tmp + 1;; p++) {
    if (*p != '/' && *p != 0) continue;
    char c = *p;
    *p = 0;
    if (mkdir(tmp, mode) == 0) {
      if (chmod(tmp, mode) < 0 || (u && chown(tmp, u->uid, u->gid) < 0)) return -1;
    } else if (errno != EEXIST) {
      return -1;
    } else {
      struct stat st;
      if (stat(tmp, &st) < 0) return -1;
      if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
      }
    }
    if (c == 0) return 0;
    *p = c;
  }
}

/* Reads until a whole frame is in `in`. 1 = frame, 0 = EOF or a failed read, -1 = bad frame. */
static int recv_frame(int sock, buf_t *in, frame_t *f, size_t *used, const char **err) {
  for (;;) {
    int r = frame_decode(buf_head(in), buf_size(in), f, used, err);
    if (r == FRAME_OK) return 1;
    if (r == FRAME_ERROR) return -1;
    uint8_t *dst = buf_reserve(in, RECV_CHUNK);
    if (!dst) return 0;
    ssize_t n = recv(sock, dst, RECV_CHUNK, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    in->len += (size_t)n;
  }
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/*
 * After an ERROR in the middle of an upload: the host may still be sending.
 * Closing now could reset the connection before the host read the ERROR, so
 * stop sending, discard what arrives, and close once the host does (≤ 2 s).
 */
static void drain_after_error(int sock) {
  shutdown(sock, SHUT_WR);
  int64_t deadline = now_ms() + 2000;
  uint8_t scratch[65536];
  for (;;) {
    int64_t left = deadline - now_ms();
    struct pollfd p = {sock, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) return;
    if (recv(sock, scratch, sizeof(scratch), 0) <= 0) return;
  }
}

/*
 * The upload's temp file. Preferably unnamed (O_TMPFILE: nothing is left in the
 * directory if the agent or the guest dies mid-upload) and given a name only at
 * commit, just before the rename; where the filesystem has no O_TMPFILE, a
 * named `.<name>.vmm-upload-XXXXXX` from the start.
 */
typedef struct {
  int fd, named; /* named: tmp exists in the directory and must be unlinked on abandon */
  char tmp[FILE_PATH_MAX + 256];
} upload_tmp_t;

static int upload_tmp_open(upload_tmp_t *t, const char *dir, const char *base) {
  snprintf(t->tmp, sizeof(t->tmp), "%s/.%.200s.vmm-upload-XXXXXX", strcmp(dir, "/") == 0 ? "" : dir, base);
  t->named = 0;
  t->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (t->fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)) return t->fd;
  t->fd = mkostemp(t->tmp, O_CLOEXEC);
  if (t->fd >= 0) t->named = 1;
  return t->fd;
}

/* Gives an unnamed temp file its name (a fresh XXXXXX each try) so it can be renamed. */
static int upload_tmp_link(upload_tmp_t *t) {
  if (t->named) return 0;
  char proc[64];
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
  size_t len = strlen(t->tmp);
  for (int attempt = 0; attempt < 100; attempt++) {
    uint8_t rnd[6];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) return -1;
    static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int i = 0; i < 6; i++) t->tmp[len - 6 + i] = set[rnd[i] % 62];
    /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (the agent runs as root); /proc works without. */
    if (linkat(t->fd, "", AT_FDCWD, t->tmp, AT_EMPTY_PATH) == 0 ||
        linkat(AT_FDCWD, proc, AT_FDCWD, t->tmp, AT_SYMLINK_FOLLOW) == 0) {
      t->named = 1;
      return 0;
    }
    if (errno != EEXIST) return -1;
  }
  return -1;
}

static void serve_write(int sock, buf_t *in, const file_req_t *req) {
  const char *path = req->path;
  if (strcmp(path, "/") == 0) {
    send_error(sock, E_PRECONDITION, "write /: is a directory");
    return;
  }
  user_t user, *u = NULL;
  const char *err = NULL;
  if (req->user) {
    if (user_lookup(req->user, &user, &err) < 0) {
      send_error(sock, E_INVALID, err);
      return;
    }
    u = &user;
  }
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    files_fail(sock, EISDIR, "write", path);
    return;
  }
  const char *slash = strrchr(path, '/');
  char dir[FILE_PATH_MAX + 1];
  snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
  if (req->parents && mkdir_parents(dir, 0755, u) < 0) {
    files_fail(sock, errno, "create parent directories of", path);
    return;
  }
  upload_tmp_t t;
  int fd = upload_tmp_open(&t, dir, slash + 1);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) {
      char msg[FILE_PATH_MAX + 128];
      snprintf(msg, sizeof(msg), "write %s: parent directory %s does not exist (set make_parents)", path, dir);
      send_error(sock, E_NOT_FOUND, msg);
    } else {
      files_fail(sock, e, "create a temp file for", path);
    }
    return;
  }
  int replied = 0; /* an ERROR went out: drain before closing */
  if (send_empty(sock, T_OK) < 0) goto abandon;
  for (;;) {
    frame_t f;
    size_t used;
    int r = recv_frame(sock, in, &f, &used, &err);
    if (r == 0) goto abandon; /* the host went away before FILE_END */
    if (r < 0) {
      send_error(sock, E_PROTOCOL, err);
      replied = 1;
      goto abandon;
    }
    if (f.type == T_FILE_END) {
      buf_consume(in, used);
      break;
    }
    if (f.type != T_FILE_DATA) {
      send_error(sock, E_PROTOCOL, "expected FILE_DATA or FILE_END");
      replied = 1;
      goto abandon;
    }
    if (write_all(fd, f.payload, f.len) < 0) {
      files_fail(sock, errno, "write", path);
      replied = 1;
      goto abandon;
    }
    buf_consume(in, used);
  }
  if (fchmod(fd, req->mode ? req->mode : 0644) < 0 || (u && fchown(fd, u->uid, u->gid) < 0)) {
    files_fail(sock, errno, "set mode/owner of", path);
    goto abandon;
  }
  if (fsync(fd) < 0) {
    files_fail(sock, errno, "write", path);
    goto abandon;
  }
  if (upload_tmp_link(&t) < 0) {
    files_fail(sock, errno, "name the temp file of", path);
    goto abandon;
  }
  close(fd);
  fd = -1;
  if (rename(t.tmp, path) < 0) {
    files_fail(sock, errno, "rename into", path);
    goto abandon;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd); /* the rename is durable; failing here loses nothing already visible */
    close(dfd);
  }
  (void)send_info(sock, path);
  return;
abandon:
  if (fd >= 0) close(fd);
  if (t.named) unlink(t.tmp);
  if (replied) drain_after_error(sock);
}

static void serve_read(int sock, const file_req_t *req) {
  const char *path = req->path;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    files_fail(sock, errno, "read", path);
    return;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    files_fail(sock, errno, "stat", path);
    goto out;
  }
  if (S_ISDIR(st.st_mode)) {
    files_fail(sock, EISDIR, "read", path);
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    char msg[FILE_PATH_MAX + 64];
    snprintf(msg, sizeof(msg), "read %s: not a regular file", path);
    send_error(sock, E_PRECONDITION, msg);
    goto out;
  }
  {
    buf_t p = {0};
    int r = put_info(&p, path, &st) == 0 ? files_send(sock, T_FILE_INFO, &p) : -1;
    buf_free(&p);
    if (r < 0) goto out;
  }
  uint8_t *frame = malloc(FRAME_HDR_LEN + FILE_CHUNK);
  if (!frame) {
    send_error(sock, E_EXHAUSTED, "out of memory");
    goto out;
  }
  uint64_t off = req->offset, left = req->length ? req->length : UINT64_MAX;
  while (left > 0) {
    size_t want = left < FILE_CHUNK ? (size_t)left : FILE_CHUNK;
    ssize_t n = pread(fd, frame + FRAME_HDR_LEN, want, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      files_fail(sock, errno, "read", path);
      free(frame);
      goto out;
    }
    if (n == 0) break;
    put_be32(frame, (uint32_t)n + 1);
    frame[4] = T_FILE_READ_DATA;
    buf_t b = {frame, 0, FRAME_HDR_LEN + (size_t)n, FRAME_HDR_LEN + FILE_CHUNK};
    if (send_all(sock, &b, 60000) < 0) {
      free(frame);
      goto out;
    }
    off += (uint64_t)n;
    left -= (uint64_t)n;
  }
  free(frame);
  (void)send_empty(sock, T_OK);
out:
  close(fd);
}

typedef struct {
  int sock;
  buf_t out;
  int failed;
} lister_t;

static void list_flush(lister_t *l) {
  if (!l->failed && buf_size(&l->out) && send_all(l->sock, &l->out, 60000) < 0) l->failed = 1;
  buf_consume(&l->out, buf_size(&l->out));
}

/* Lists dir's entries (sorted by readdir order), descending `depth - 1` more levels. */
static void list_dir(lister_t *l, const char *dir, uint32_t depth) {
  DIR *d = opendir(dir);
  if (!d) return; /* vanished or unreadable meanwhile: listed as far as possible */
  struct dirent *e;
  while (!l->failed && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char path[FILE_PATH_MAX + 256];
    int n = snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, e->d_name);
    if (n < 0 || (size_t)n >= sizeof(path)) continue;
    struct stat st;
    if (lstat(path, &st) < 0) continue;
    buf_t p = {0};
    if (put_info(&p, path, &st) < 0 || frame_put(&l->out, T_FILE_INFO, buf_head(&p), buf_size(&p)) < 0) l->failed = 1;
    buf_free(&p);
    if (buf_size(&l->out) >= LIST_FLUSH) list_flush(l);
    if (depth > 1 && S_ISDIR(st.st_mode)) list_dir(l, path, depth - 1);
  }
  closedir(d);
}

static void serve_list(int sock, const file_req_t *req) {
  struct stat st;
  if (stat(req->path, &st) < 0) {
    files_fail(sock, errno, "list", req->path);
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    files_fail(sock, ENOTDIR, "list", req->path);
    return;
  }
  lister_t l = {sock, {0}, 0};
  list_dir(&l, req->path, req->depth);
  list_flush(&l);
  buf_free(&l.out);
  if (!l.failed) (void)send_empty(sock, T_OK);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

static void serve_remove(int sock, const file_req_t *req) {
  const char *path = req->path;
  if (strcmp(path, "/") == 0) {
    send_error(sock, E_PRECONDITION, "remove /: refusing to remove the root directory");
    return;
  }
  struct stat st;
  if (lstat(path, &st) < 0) {
    files_fail(sock, errno, "remove", path);
    return;
  }
  int r;
  if (!S_ISDIR(st.st_mode)) r = unlink(path);
  else if (req->recursive) r = nftw(path, remove_one, 64, FTW_DEPTH | FTW_PHYS);
  else r = rmdir(path);
  if (r < 0) {
    if (errno == ENOTEMPTY || errno == EEXIST) {
      char msg[FILE_PATH_MAX + 64];
      snprintf(msg, sizeof(msg), "remove %s: directory not empty (set recursive)", path);
      send_error(sock, E_PRECONDITION, msg);
    } else {
      files_fail(sock, errno, "remove", path);
    }
    return;
  }
  (void)send_empty(sock, T_OK);
}

static void serve_mkdir(int sock, const file_req_t *req) {
  mode_t mode = req->mode ? req->mode : 0755;
  if (req->parents) {
    if (mkdir_parents(req->path, mode, NULL) < 0) {
      files_fail(sock, errno, "mkdir", req->path);
      return;
    }
  } else if (mkdir(req->path, mode) < 0 || chmod(req->path, mode) < 0) {
    files_fail(sock, errno, "mkdir", req->path);
    return;
  }
  (void)send_info(sock, req->path);
}

void files_serve(int sock, buf_t *in, uint8_t type, const file_req_t *req) {
  switch (type) {
    case T_WRITE_FILE:
      serve_write(sock, in, req);
      break;
    case T_READ_FILE:
      serve_read(sock, req);
      break;
    case T_LIST_DIR:
      serve_list(sock, req);
      break;
    case T_STAT:
      (void)send_info(sock, req->path);
      break;
    case T_REMOVE:
      serve_remove(sock, req);
      break;
    case T_MKDIR:
      serve_mkdir(sock, req);
      break;
    case T_WATCH:
      watch_serve(sock, req);
      break;
    default:
      send_error(sock, E_PROTOCOL, "not a file operation");
      break;
  }
}
