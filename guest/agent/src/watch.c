/*
 * WATCH: inotify on a path (and, with recursive, on every directory below
 * it, including directories created later). Events become FILE_EVENT frames
 * {path, kind, Unix ns}. The inotify fd is read only while < WATCH_OUT_HIGH
 * bytes of events wait for the socket, so a slow client makes the kernel's
 * queue fill instead of the agent's memory. When it overflows (IN_Q_OVERFLOW)
 * the events already queued are sent, then ERROR(EVENTS_LOST): a client must
 * never take a gap for "nothing changed". Ends when the client closes the
 * connection, or with OK once the watched path itself is removed or moved away.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "files.h"
#include "frame.h"

#define WATCH_OUT_HIGH (256u * 1024u)
#define WATCH_MASK                                                                                      \
  (IN_CREATE | IN_MODIFY | IN_DELETE | IN_DELETE_SELF | IN_MOVED_FROM | IN_MOVED_TO | IN_MOVE_SELF | \
   IN_ATTRIB | IN_DONT_FOLLOW | IN_EXCL_UNLINK)
#define WATCH_DIR_DEPTH_MAX 64

typedef struct {
  int wd;
  char *path;
} wd_path_t;

typedef struct {
  int sock, ino, recursive, root_wd, ended, lost;
  wd_path_t *wds;
  size_t n, cap;
  buf_t out;
} watcher_t;

static const char *path_of(watcher_t *w, int wd) {
  for (size_t i = 0; i < w->n; i++)
    if (w->wds[i].wd == wd) return w->wds[i].path;
  return NULL;
}

static void forget(watcher_t *w, int wd) {
  for (size_t i = 0; i < w->n; i++) {
    if (w->wds[i].wd != wd) continue;
    free(w->wds[i].path);
    w->wds[i] = w->wds[--w->n];
    return;
  }
}

static int add_watch(watcher_t *w, const char *path) {
  int wd = inotify_add_watch(w->ino, path, WATCH_MASK);
  if (wd < 0) return -1;
  if (path_of(w, wd)) return wd; /* already watched (same inode) */
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 16;
    wd_path_t *v = realloc(w->wds, cap * sizeof(*v));
    if (!v) return -1;
    w->wds = v;
    w->cap = cap;
  }
  char *copy = strdup(path);
  if (!copy) return -1;
  w->wds[w->n++] = (wd_path_t){wd, copy};
  return wd;
}

static void queue_event(watcher_t *w, const char *path, uint8_t kind) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  buf_t p = {0};
  if (tlv_put_str(&p, FE_PATH, path) == 0 && tlv_put_u8(&p, FE_KIND, kind) == 0 &&
      tlv_put_u64(&p, FE_TIME, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) == 0)
    (void)frame_put(&w->out, T_FILE_EVENT, buf_head(&p), buf_size(&p));
  buf_free(&p);
}

/*
 * Watches the directories below dir. With `announce` (dir was just created)
 * entries already inside are reported as created: they may have appeared
 * before the new watch existed.
 */
static void add_tree(watcher_t *w, const char *dir, int announce, int depth) {
  if (depth > WATCH_DIR_DEPTH_MAX) return;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char path[FILE_PATH_MAX + 256];
    int n = snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, e->d_name);
    if (n < 0 || (size_t)n >= sizeof(path)) continue;
    if (announce) queue_event(w, path, FK_CREATE);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && add_watch(w, path) >= 0)
      add_tree(w, path, announce, depth + 1);
  }
  closedir(d);
}

static void handle(watcher_t *w, const struct inotify_event *ev) {
  if (w->ended) return;
  if (ev->mask & IN_Q_OVERFLOW) {
    w->lost = w->ended = 1;
    return;
  }
  if (ev->mask & IN_IGNORED) {
    forget(w, ev->wd);
    if (ev->wd == w->root_wd) w->ended = 1;
    return;
  }
  const char *base = path_of(w, ev->wd);
  if (!base) return;
  char path[FILE_PATH_MAX + 256];
  if (ev->len && ev->name[0]) snprintf(path, sizeof(path), "%s/%s", strcmp(base, "/") == 0 ? "" : base, ev->name);
  else snprintf(path, sizeof(path), "%s", base);
  uint32_t m = ev->mask;
  if (m & (IN_DELETE_SELF | IN_MOVE_SELF)) {
    /* A subdirectory's removal is reported by its parent's IN_DELETE/IN_MOVED_FROM. */
    if (ev->wd == w->root_wd) {
      queue_event(w, path, m & IN_DELETE_SELF ? FK_REMOVE : FK_RENAME);
      w->ended = 1;
    }
    return;
  }
  if (m & IN_CREATE) {
    queue_event(w, path, FK_CREATE);
    if ((m & IN_ISDIR) && w->recursive && add_watch(w, path) >= 0) add_tree(w, path, 1, 1);
  } else if (m & IN_MODIFY) {
    queue_event(w, path, FK_WRITE);
  } else if (m & IN_DELETE) {
    queue_event(w, path, FK_REMOVE);
  } else if (m & (IN_MOVED_FROM | IN_MOVED_TO)) {
    queue_event(w, path, FK_RENAME);
    if ((m & IN_MOVED_TO) && (m & IN_ISDIR) && w->recursive && add_watch(w, path) >= 0) add_tree(w, path, 0, 1);
  } else if (m & IN_ATTRIB) {
    queue_event(w, path, FK_CHMOD);
  }
}

static void read_events(watcher_t *w) {
  char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t n = read(w->ino, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      handle(w, ev);
      p += sizeof(*ev) + ev->len;
    }
    if (buf_size(&w->out) >= WATCH_OUT_HIGH) return;
  }
}

void watch_serve(int sock, const file_req_t *req) {
  struct stat st;
  if (lstat(req->path, &st) < 0) {
    files_fail(sock, errno, "watch", req->path);
    return;
  }
  watcher_t w = {.sock = sock, .recursive = req->recursive && S_ISDIR(st.st_mode), .root_wd = -1};
  w.ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (w.ino < 0 || (w.root_wd = add_watch(&w, req->path)) < 0) {
    files_fail(sock, errno, "watch", req->path);
    goto out;
  }
  if (w.recursive) add_tree(&w, req->path, 0, 1);
  {
    buf_t none = {0};
    if (files_send(sock, T_OK, &none) < 0) goto out;
  }
  fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
  while (!w.ended || buf_size(&w.out) > 0) {
    struct pollfd p[2] = {{sock, POLLIN, 0}, {w.ino, 0, 0}};
    if (buf_size(&w.out) > 0) p[0].events |= POLLOUT;
    if (!w.ended && buf_size(&w.out) < WATCH_OUT_HIGH) p[1].events = POLLIN;
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      goto out;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      uint8_t scratch[512];
      ssize_t n = recv(sock, scratch, sizeof(scratch), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) goto out; /* the client is gone */
      if (n > 0) {
        send_error(sock, E_PROTOCOL, "no frames are expected during WATCH");
        goto out;
      }
    }
    if (p[1].revents & POLLIN) read_events(&w);
    if (buf_size(&w.out) > 0) {
      ssize_t n = send(sock, buf_head(&w.out), buf_size(&w.out), MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) goto out;
      if (n > 0) buf_consume(&w.out, (size_t)n);
    }
  }
  if (w.lost) {
    send_error(sock, E_EVENTS_LOST,
               "events were lost: the guest's inotify queue overflowed (the client read too slowly); list the "
               "path again and start a new watch");
  } else {
    buf_t ok = {0};
    if (frame_put(&ok, T_OK, NULL, 0) == 0) (void)send_all(sock, &ok, 1000);
    buf_free(&ok);
  }
out:
  for (size_t i = 0; i < w.n; i++) free(w.wds[i].path);
  free(w.wds);
  buf_free(&w.out);
  if (w.ino >= 0) close(w.ino);
}
