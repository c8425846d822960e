/* Two processes handing a small message back and forth, both always polling
 * (never blocking), through a pair of pipes or through shared memory: the
 * floor of a round trip between the BEAM and a port program if both sides
 * polled, with no BEAM and no Python in it (docs/benchmarks.md, issue 15).
 * bench/floor.exs builds and runs it.
 *
 *     pingpong pipe|shm [rounds]
 *
 * pipe: each side reads its non-blocking pipe in a loop (as the port
 * program's I/O thread and a polling caller do) and writes its answer.
 * shm: a sequence number in a shared cache line, read in a loop with the
 * CPU's pause instruction.
 * Prints the median round trip over the rounds, in microseconds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static int cmp(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

static void read_polling(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r > 0) got += (size_t)r;
    else relax();
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: pingpong pipe|shm [rounds]\n");
    return 2;
  }
  int shm = strcmp(argv[1], "shm") == 0;
  long rounds = argc > 2 ? atol(argv[2]) : 200000;
  uint64_t* samples = malloc(sizeof(uint64_t) * (size_t)rounds);
  char msg[16] = "hello, program!";

  if (shm) {
    _Atomic uint64_t* cell = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    _Atomic uint64_t* ping = cell;
    _Atomic uint64_t* pong = cell + 16; /* another cache line */
    pid_t child = fork();
    if (child == 0) {
      for (uint64_t i = 1; i <= (uint64_t)rounds; i++) {
        while (atomic_load_explicit(ping, memory_order_acquire) != i) relax();
        atomic_store_explicit(pong, i, memory_order_release);
      }
      _exit(0);
    }
    for (long i = 1; i <= rounds; i++) {
      uint64_t t0 = now_ns();
      atomic_store_explicit(ping, (uint64_t)i, memory_order_release);
      while (atomic_load_explicit(pong, memory_order_acquire) != (uint64_t)i) relax();
      samples[i - 1] = now_ns() - t0;
    }
    waitpid(child, NULL, 0);
  } else {
    int there[2], back[2];
    if (pipe(there) != 0 || pipe(back) != 0) return 1;
    fcntl(there[0], F_SETFL, O_NONBLOCK);
    fcntl(back[0], F_SETFL, O_NONBLOCK);
    pid_t child = fork();
    if (child == 0) {
      char buf[sizeof msg];
      for (long i = 0; i < rounds; i++) {
        read_polling(there[0], buf, sizeof buf);
        if (write(back[1], buf, sizeof buf) != (ssize_t)sizeof buf) _exit(1);
      }
      _exit(0);
    }
    char buf[sizeof msg];
    for (long i = 0; i < rounds; i++) {
      uint64_t t0 = now_ns();
      if (write(there[1], msg, sizeof msg) != (ssize_t)sizeof msg) return 1;
      read_polling(back[0], buf, sizeof buf);
      samples[i] = now_ns() - t0;
    }
    waitpid(child, NULL, 0);
  }
  qsort(samples, (size_t)rounds, sizeof *samples, cmp);
  printf("%s, both sides polling: %.2f µs a round trip (median of %ld)\n", shm ? "shared memory" : "pipes",
         (double)samples[rounds / 2] / 1000.0, rounds);
  return 0;
}
