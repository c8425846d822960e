#include "call_sites.hpp"

#include <time.h>

#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace sb {

std::atomic<bool> g_fast_path_enabled{true};

namespace {
// Distinct eval/exec sources each make a site; cap the table so it cannot grow
// without bound. Sites past the cap share one that always runs on the pool.
constexpr size_t kMaxSites = 65536;
std::shared_mutex g_mu;
std::unordered_map<std::string, std::unique_ptr<CallSite>> g_sites;
CallSite g_overflow;
}  // namespace

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

CallSite* call_site(std::string_view key) {
  std::string k(key);
  {
    std::shared_lock<std::shared_mutex> lock(g_mu);
    auto it = g_sites.find(k);
    if (it != g_sites.end()) return it->second.get();
  }
  std::unique_lock<std::shared_mutex> lock(g_mu);
  if (g_sites.size() >= kMaxSites) return &g_overflow;
  auto& slot = g_sites[k];
  if (!slot) slot = std::make_unique<CallSite>();
  return slot.get();
}

void record_pool_run(CallSite* site, uint64_t elapsed_ns) {
  if (site == &g_overflow) return;
  if (elapsed_ns >= kPromoteBelowNs) {
    site->streak.store(0, std::memory_order_relaxed);
    return;
  }
  int s = site->streak.fetch_add(1, std::memory_order_relaxed) + 1;
  if (s >= site->needed.load(std::memory_order_relaxed)) site->fast.store(true, std::memory_order_release);
}

uint64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

bool fast_run_too_long(uint64_t wall_ns, uint64_t cpu_ns) {
  return cpu_ns > kDemoteAboveNs || wall_ns > kDemoteBlockedNs;
}

void record_fast_run(CallSite* site, uint64_t wall_ns, uint64_t cpu_ns) {
  if (fast_run_too_long(wall_ns, cpu_ns)) demote(site);
}

void demote(CallSite* site) {
  if (site == &g_overflow || !site->fast.exchange(false, std::memory_order_acq_rel)) return;
  site->streak.store(0, std::memory_order_relaxed);
  int n = site->needed.load(std::memory_order_relaxed);
  site->needed.store(n >= (1 << 24) ? n : n * 8, std::memory_order_relaxed);
}

}  // namespace sb
