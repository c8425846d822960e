// Polling loops on a busy machine (core/spin.hpp): a yield that loses the
// core for long marks the machine busy, and polls then stop instead of
// yielding again.
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "../core/spin.hpp"

namespace {

struct BusyDetection {
  explicit BusyDetection(bool on) { sb::g_busy_detection.store(on); }
  ~BusyDetection() {
    sb::g_busy_detection.store(false);
    sb::g_busy_until.store(0);
  }
};

bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

}  // namespace

TEST_CASE("a poll pauses first, then yields while the machine is not busy", "[spin]") {
  BusyDetection detection(true);
  uint64_t found_before = sb::g_busy_found.load();
  uint64_t t0 = sb::monotonic_ns();
  CHECK(sb::poll_pause(t0, t0));  // within the eager pause
  // Past it, a yield: given back at once unless something else ran on this
  // core for a millisecond meanwhile (a busy CI machine), which it counts.
  bool went_on = sb::poll_pause(t0, t0 + 10'000);
  CHECK(went_on == (sb::g_busy_found.load() == found_before));
  CHECK(went_on != sb::machine_busy(sb::monotonic_ns()));
}

TEST_CASE("on a machine found busy, a poll stops after its eager pause", "[spin]") {
  BusyDetection detection(true);
  uint64_t now = sb::monotonic_ns();
  sb::g_busy_until.store(now + sb::kBusyHoldNs);
  CHECK(sb::poll_pause(now, now));               // the first microseconds still pause
  CHECK_FALSE(sb::poll_pause(now, now + 10'000));  // then the poller blocks instead

  // A 50 ms poll gives up at once (its first steps only pause the core).
  uint64_t t0 = sb::monotonic_ns();
  sb::Poll poll(t0 + 50'000'000, 0);
  while (!poll.expired()) {
  }
  CHECK(sb::monotonic_ns() - t0 < 10'000'000);
}

TEST_CASE("a yield that loses the core to a busy thread marks the machine busy", "[spin]") {
  BusyDetection detection(true);
  uint64_t found_before = sb::g_busy_found.load();
  int cpu = sched_getcpu();
  REQUIRE(cpu >= 0);
  std::atomic<bool> spinning{false};
  std::atomic<bool> stop{false};
  // A thread that never yields, on this thread's core.
  std::thread busy([&] {
    pin_to(cpu);
    spinning.store(true);
    uint64_t until = sb::monotonic_ns() + 2'000'000'000;
    while (!stop.load(std::memory_order_relaxed) && sb::monotonic_ns() < until) {
    }
  });
  REQUIRE(pin_to(cpu));
  while (!spinning.load()) sched_yield();
  uint64_t t0 = sb::monotonic_ns();
  bool stopped = false;
  while (sb::monotonic_ns() - t0 < 1'000'000'000) {
    if (!sb::poll_pause(t0, sb::monotonic_ns())) {
      stopped = true;
      break;
    }
  }
  stop.store(true);
  busy.join();
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int i = 0; i < CPU_SETSIZE; ++i) CPU_SET(i, &all);
  pthread_setaffinity_np(pthread_self(), sizeof all, &all);
  CHECK(stopped);
  CHECK(sb::g_busy_found.load() > found_before);
}

TEST_CASE("without busy detection (the port program), polls keep yielding", "[spin]") {
  BusyDetection detection(false);
  uint64_t t0 = sb::monotonic_ns();
  CHECK(sb::poll_pause(t0, t0 + 10'000));
  CHECK_FALSE(sb::machine_busy(sb::monotonic_ns()));
}
