// The floor of a port round trip (docs/benchmarks.md, "Where a worker's time goes"):
// a {packet, 4} echo program on fds 0/1. SPIN_US: how long it polls its pipe
// (non-blocking reads) after a frame before it blocks in poll(); 0: never.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static uint64_t now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
static char buf[1 << 22];
int main(void) {
  const char* s = getenv("SPIN_US"); uint64_t spin = s ? strtoull(s, 0, 10) * 1000 : 0;
  fcntl(0, F_SETFL, O_NONBLOCK);
  size_t have = 0;
  for (;;) {
    uint64_t t0 = now();
    ssize_t n;
    for (;;) {
      n = read(0, buf + have, sizeof buf - have);
      if (n > 0) break;
      if (n == 0) return 0;
      if (now() - t0 < spin) { if (now() - t0 > 3000) sched_yield(); continue; }
      struct pollfd p = {0, POLLIN, 0}; poll(&p, 1, -1);
    }
    have += n;
    size_t off = 0;
    while (have - off >= 4) {
      uint32_t len = ((unsigned char)buf[off] << 24) | ((unsigned char)buf[off+1] << 16) | ((unsigned char)buf[off+2] << 8) | (unsigned char)buf[off+3];
      if (have - off < 4 + len) break;
      size_t w = 0; while (w < 4 + len) { ssize_t k = write(1, buf + off + w, 4 + len - w); if (k > 0) w += k; }
      off += 4 + len;
    }
    memmove(buf, buf + off, have - off); have -= off;
  }
}
