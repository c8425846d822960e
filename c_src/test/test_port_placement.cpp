// port/placement.hpp: the port program's threads gathered on one core while
// many short requests come, and given every core back once they stop. Moves
// this test process's own threads, and puts them back. No Python involved.
#include "../port/placement.hpp"

#include <sched.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <thread>

using sb::port::Placement;

namespace {

int cores_of_this_thread() {
  cpu_set_t set;
  REQUIRE(sched_getaffinity(0, sizeof(set), &set) == 0);
  return CPU_COUNT(&set);
}

int cores_of_a_new_thread() {
  int n = 0;
  std::thread t([&] { n = cores_of_this_thread(); });
  t.join();
  return n;
}

constexpr uint64_t W = Placement::kWindowNs;

}  // namespace

TEST_CASE("a busy window gathers every thread on one core; quiet windows give them back", "[placement]") {
  const int all = cores_of_this_thread();
  if (all < 2) {
    SUCCEED("a single core: nothing to gather");
    return;
  }
  Placement p(true);
  uint64_t frames = 0, now = 0;
  // Crowded, but too few frames: not busy.
  p.update(true, frames += Placement::kBusyFrames - 1, now += W);
  CHECK_FALSE(p.gathered());
  CHECK(cores_of_this_thread() == all);
  // Many frames, not crowded (polling serves them): not busy.
  p.update(false, frames += 10 * Placement::kBusyFrames, now += W);
  CHECK_FALSE(p.gathered());
  // Crowded and many frames: gathered, threads started meanwhile too.
  p.update(true, frames += Placement::kBusyFrames, now += W);
  REQUIRE(p.gathered());
  CHECK(cores_of_this_thread() == 1);
  CHECK(cores_of_a_new_thread() == 1);
  // Calls within a window change nothing.
  p.update(false, frames, now + W / 2);
  CHECK(p.gathered());
  // Quiet windows, one short of the count: still gathered; then released.
  for (unsigned i = 1; i < Placement::kReleaseWindows; ++i) p.update(false, frames, now += W);
  CHECK(p.gathered());
  p.update(true, frames += 1, now += W);  // crowded with few frames is not busy either
  CHECK_FALSE(p.gathered());
  CHECK(cores_of_this_thread() == all);
  CHECK(cores_of_a_new_thread() == all);
}

TEST_CASE("a disabled placement never moves a thread", "[placement]") {
  const int all = cores_of_this_thread();
  Placement p(false);
  uint64_t frames = 0, now = 0;
  for (int i = 0; i < 3; ++i) p.update(true, frames += 10 * Placement::kBusyFrames, now += W);
  CHECK_FALSE(p.gathered());
  CHECK(cores_of_this_thread() == all);
}
