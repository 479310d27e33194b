/*
 * Agent identity: the boot id, and SET_IDENTITY (docs/agent-protocol.md),
 * which gives a clone restored from a snapshot its own hostname, entropy and
 * clock. In simulated mode (--unix, --unix-dir) the agent is a host process:
 * it only records the identity in memory and never touches the host's
 * hostname, entropy pool or clock.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "frame.h"
#include "request.h"

/* Tags of the IDENTITY_SET reply. */
enum { IS_HOSTNAME = 1, IS_BOOT_ID = 2, IS_SIMULATED = 3, IS_HOSTNAME_SET = 4, IS_ENTROPY = 5, IS_CLOCK_SET = 6 };

static agent_identity_t fallback_ident;

static void lock(void) {
  while (atomic_exchange_explicit(&g_agent.ident->lock, 1, memory_order_acquire)) sched_yield();
}

static void unlock(void) { atomic_store_explicit(&g_agent.ident->lock, 0, memory_order_release); }

static void make_boot_id(char out[33]) {
  uint8_t r[16];
  if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
    /* Early boot without entropy: still unique per start in practice. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    for (int i = 0; i < 16; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      r[i] = (uint8_t)x;
    }
  }
  for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", r[i]);
}

void identity_init(void) {
  void *p = mmap(NULL, sizeof(agent_identity_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    logf_err("mmap identity page: %s (SET_IDENTITY changes stay in their handler)", strerror(errno));
    p = &fallback_ident;
  }
  g_agent.ident = p; /* zero-filled: unlocked, no recorded hostname */
  make_boot_id(g_agent.ident->boot_id);
}

void identity_get(char boot_id[33], char hostname[65]) {
  lock();
  memcpy(boot_id, g_agent.ident->boot_id, 33);
  memcpy(hostname, g_agent.ident->hostname, 65);
  unlock();
  if (!g_agent.simulated || !hostname[0]) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    snprintf(hostname, 65, "%s", host);
  }
}

/* Adds the seed to the kernel pool: RNDADDENTROPY (credited), else a plain write (mixed in, not credited). */
static const char *add_entropy(const uint8_t *seed, size_t n, const char **why) {
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    *why = "open /dev/urandom";
    return NULL;
  }
  const char *method = NULL;
  struct rand_pool_info *info = malloc(sizeof(*info) + n);
  if (info) {
    info->entropy_count = (int)(n * 8);
    info->buf_size = (int)n;
    memcpy(info->buf, seed, n);
    if (ioctl(fd, RNDADDENTROPY, info) == 0) method = "ioctl";
    else logf_err("RNDADDENTROPY: %s; writing the seed to /dev/urandom instead", strerror(errno));
    explicit_bzero(info, sizeof(*info) + n);
    free(info);
  }
  if (!method) {
    size_t off = 0;
    while (off < n) {
      ssize_t w = write(fd, seed + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      off += (size_t)w;
    }
    if (off == n) method = "write";
    else *why = "write /dev/urandom";
  }
  int saved = errno;
  close(fd);
  errno = saved;
  return method;
}

static void fail(int fd, const char *step, const char *applied) {
  char msg[256];
  snprintf(msg, sizeof(msg), "SET_IDENTITY: %s failed: %s (already applied: %s)", step, strerror(errno),
           applied[0] ? applied : "nothing");
  send_error(fd, E_INTERNAL, msg);
}

void identity_serve(int fd, const uint8_t *payload, size_t len) {
  ident_req_t req;
  const char *err = NULL;
  if (ident_req_parse(payload, len, &req, &err) < 0) {
    explicit_bzero(&req, sizeof(req));
    send_error(fd, E_INVALID, err);
    return;
  }
  const char *entropy = "none";
  int host_set = 0, clock_set = 0;
  if (!g_agent.simulated) {
    /* In the guest: entropy first (the clone's RNG must diverge from the origin's), then hostname, clock. */
    const char *why = NULL;
    entropy = add_entropy(req.seed, req.seed_len, &why);
    explicit_bzero(req.seed, sizeof(req.seed));
    if (!entropy) {
      fail(fd, why, "");
      return;
    }
    if (sethostname(req.hostname, strlen(req.hostname)) < 0) {
      fail(fd, "sethostname", "entropy");
      return;
    }
    host_set = 1;
    if (req.has_time) {
      struct timespec ts = {.tv_sec = (time_t)(req.time_ms / 1000), .tv_nsec = (long)(req.time_ms % 1000) * 1000000};
      if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
      fail(fd, "clock_settime", "entropy, hostname");
      return;
    }
      clock_set = 1;
    }
  }
  explicit_bzero(req.seed, sizeof(req.seed));

  /* A clone must not share the origin's boot id. Simulated: also record the hostname for INFO. */
  char boot_id[33];
  make_boot_id(boot_id);
  lock();
  memcpy(g_agent.ident->boot_id, boot_id, sizeof(boot_id));
  if (g_agent.simulated) memcpy(g_agent.ident->hostname, req.hostname, sizeof(req.hostname));
  unlock();

  buf_t p = {0}, out = {0};
  int ok = tlv_put_str(&p, IS_HOSTNAME, req.hostname) == 0 && tlv_put_str(&p, IS_BOOT_ID, boot_id) == 0 &&
           tlv_put_u8(&p, IS_SIMULATED, g_agent.simulated ? 1 : 0) == 0 &&
           tlv_put_u8(&p, IS_HOSTNAME_SET, (uint8_t)host_set) == 0 && tlv_put_str(&p, IS_ENTROPY, entropy) == 0 &&
           tlv_put_u8(&p, IS_CLOCK_SET, (uint8_t)clock_set) == 0;
  if (ok && frame_put(&out, T_IDENTITY_SET, buf_head(&p), buf_size(&p)) == 0) (void)send_all(fd, &out, 5000);
  else send_error(fd, E_EXHAUSTED, "out of memory");
  buf_free(&p);
  buf_free(&out);
}
