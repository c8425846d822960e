// call_sites.hpp: promotion of quick call sites to the scheduler and demotion of slow ones.
// Pure C++: no Python involved.
#include "../core/call_sites.hpp"

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace sb;
using namespace sbtest;

namespace {
constexpr uint64_t kQuick = kPromoteBelowNs - 1;  // the slowest run that still counts as quick
constexpr uint64_t kSlowPool = kPromoteBelowNs;   // the quickest that does not
constexpr uint64_t kSlowFast = kDemoteAboveNs + 1;

void quick_pool_runs(CallSite* site, int n) {
  for (int i = 0; i < n; ++i) record_pool_run(site, kQuick);
}
}  // namespace

TEST_CASE("a new call site starts on the pool", "[call_sites]") {
  CallSite* site = call_site("test:new-site");
  REQUIRE(site != nullptr);
  CHECK_FALSE(site->fast.load());
  CHECK(site->streak.load() == 0);
  CHECK(site->needed.load() == 8);
  CHECK(g_fast_path_enabled.load());
}

TEST_CASE("a site is promoted after `needed` consecutive quick pool runs", "[call_sites]") {
  CallSite* site = call_site("test:promote");
  const int needed = site->needed.load();
  REQUIRE(needed == 8);
  quick_pool_runs(site, needed - 1);
  CHECK_FALSE(site->fast.load());
  CHECK(site->streak.load() == needed - 1);
  record_pool_run(site, kQuick);
  CHECK(site->fast.load());

  // A fast-path run within budget keeps it fast, right up to the limit.
  record_fast_run(site, 0, 0);
  record_fast_run(site, kDemoteAboveNs, kDemoteAboveNs);
  CHECK(site->fast.load());
  CHECK(site->needed.load() == needed);
}

TEST_CASE("a slow pool run resets the streak", "[call_sites]") {
  CallSite* site = call_site("test:reset");
  quick_pool_runs(site, 7);
  REQUIRE(site->streak.load() == 7);
  record_pool_run(site, kSlowPool);
  CHECK(site->streak.load() == 0);
  CHECK_FALSE(site->fast.load());
  // The streak starts over: a full `needed` quick runs are required again.
  quick_pool_runs(site, 7);
  CHECK_FALSE(site->fast.load());
  record_pool_run(site, kQuick);
  CHECK(site->fast.load());
}

TEST_CASE("a slow fast-path run demotes the site and raises `needed`", "[call_sites]") {
  CallSite* site = call_site("test:demote");
  quick_pool_runs(site, 8);
  REQUIRE(site->fast.load());

  record_fast_run(site, kSlowFast, kSlowFast);
  CHECK_FALSE(site->fast.load());
  CHECK(site->streak.load() == 0);
  CHECK(site->needed.load() == 64);

  // Promotion is now harder: 63 quick runs are not enough, 64 are.
  quick_pool_runs(site, 63);
  CHECK_FALSE(site->fast.load());
  record_pool_run(site, kQuick);
  CHECK(site->fast.load());

  record_fast_run(site, kSlowFast, kSlowFast);
  CHECK_FALSE(site->fast.load());
  CHECK(site->needed.load() == 512);
}

TEST_CASE("preemption is not slowness; blocking is", "[call_sites]") {
  CallSite* site = call_site("test:preempted");
  quick_pool_runs(site, 8);
  REQUIRE(site->fast.load());
  // 10 ms of wall time but 10 us of CPU: the OS preempted the thread mid-call.
  record_fast_run(site, 10'000'000, 10'000);
  CHECK(site->fast.load());
  // Blocked past kDemoteBlockedNs (a sleep, a lock): it held the scheduler.
  record_fast_run(site, kDemoteBlockedNs + 1, 10'000);
  CHECK_FALSE(site->fast.load());
}

TEST_CASE("repeated demotions cap `needed` without overflowing", "[call_sites]") {
  CallSite* site = call_site("test:cap");
  for (int i = 0; i < 40; ++i) {
    site->fast = true;  // promoted again, then slow again
    record_fast_run(site, kSlowFast, kSlowFast);
  }
  CHECK(site->needed.load() == (1 << 24));
  CHECK_FALSE(site->fast.load());
  quick_pool_runs(site, 1000);
  CHECK_FALSE(site->fast.load());
}

TEST_CASE("distinct keys give distinct sites, the same key the same site", "[call_sites]") {
  CallSite* a = call_site("test:key:json.dumps");
  CallSite* b = call_site("test:key:json.loads");
  CHECK(a != b);
  CHECK(call_site("test:key:json.dumps") == a);
  CHECK(call_site(std::string("test:key:") + "json.loads") == b);

  // Keys are compared as whole byte strings, embedded NULs included.
  CallSite* nul1 = call_site(std::string_view("test:key:a\0b", 12));
  CallSite* nul2 = call_site(std::string_view("test:key:a\0c", 12));
  CallSite* prefix = call_site("test:key:a");
  CHECK(nul1 != nul2);
  CHECK(nul1 != prefix);
  CHECK(call_site(std::string_view("test:key:a\0b", 12)) == nul1);

  // State belongs to one site only.
  quick_pool_runs(a, 8);
  CHECK(a->fast.load());
  CHECK_FALSE(b->fast.load());
}

TEST_CASE("concurrent lookups of the same keys agree", "[call_sites][stress]") {
  constexpr int kThreads = 8, kKeys = 200;
  std::vector<std::vector<CallSite*>> seen(kThreads, std::vector<CallSite*>(kKeys));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&seen, t] {
      for (int k = 0; k < kKeys; ++k) {
        int key = (k * 7 + t * 13) % kKeys;  // each thread in its own order
        seen[t][key] = call_site("test:concurrent:" + std::to_string(key));
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<CallSite*> distinct;
  for (int k = 0; k < kKeys; ++k) {
    INFO("key " << k);
    for (int t = 1; t < kThreads; ++t) CHECK(seen[t][k] == seen[0][k]);
    distinct.insert(seen[0][k]);
  }
  CHECK(distinct.size() == kKeys);
}

TEST_CASE("monotonic_ns follows the steady clock", "[call_sites]") {
  uint64_t t0 = monotonic_ns();
  std::this_thread::sleep_for(20ms);
  uint64_t t1 = monotonic_ns();
  CHECK(t1 > t0);
  CHECK(t1 - t0 >= 20'000'000u);
  CHECK(t1 - t0 < 5'000'000'000u);
}

// Fills the site table; runs in a fresh process (see below) so it disturbs no other test.
TEST_CASE("hidden call site table overflow", "[.][call_sites_overflow]") {
  CallSite* first = call_site("ovf:0");
  std::set<CallSite*> distinct;
  CallSite* overflow = nullptr;
  for (int i = 0; i < 70000; ++i) {
    CallSite* s = call_site("ovf:" + std::to_string(i));
    if (!distinct.insert(s).second) {
      overflow = s;
      break;
    }
  }
  REQUIRE(overflow != nullptr);
  CHECK(distinct.size() <= 65536 + 1);
  // Every new key past the cap shares the overflow site, which never leaves the pool.
  CHECK(call_site("ovf:another-new-key") == overflow);
  quick_pool_runs(overflow, 1000);
  CHECK_FALSE(overflow->fast.load());
  // Keys made before the cap keep their own sites.
  CHECK(call_site("ovf:0") == first);
  CHECK(first != overflow);
}

TEST_CASE("the site table is capped and shares one pool-only site past the cap", "[call_sites]") {
  CHECK(run_self("hidden call site table overflow") == 0);
}
