// The floor of a wake-up: two threads handing a token back and forth through a
// futex, pinned to given cores (-1: not pinned). Usage: handoff CPU_A CPU_B
// (docs/benchmarks.md, "Where a worker's time goes").
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
std::atomic<int> turn{0};
static void fwait(std::atomic<int>* a, int v) { syscall(SYS_futex, a, FUTEX_WAIT_PRIVATE, v, nullptr, nullptr, 0); }
static void fwake(std::atomic<int>* a) { syscall(SYS_futex, a, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0); }
void pin(int c) { cpu_set_t s; CPU_ZERO(&s); CPU_SET(c, &s); pthread_setaffinity_np(pthread_self(), sizeof s, &s); }
int main(int argc, char** argv) {
  int n = 200000; int c0 = atoi(argv[1]), c1 = atoi(argv[2]);
  auto body = [&](int me, int cpu) {
    if (cpu >= 0) pin(cpu);
    for (int i = 0; i < n; ++i) {
      while (turn.load() != me) fwait(&turn, 1 - me);
      turn.store(1 - me); fwake(&turn);
    }
  };
  auto t0 = std::chrono::steady_clock::now();
  std::thread a(body, 0, c0), b(body, 1, c1);
  a.join(); b.join();
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  printf("cpus %d,%d: %.2f us per hand-off\n", c0, c1, us / (2.0 * n));
}
