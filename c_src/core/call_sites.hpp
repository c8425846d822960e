// Where a call runs. Short calls run right on the calling BEAM scheduler (about a
// microsecond); anything else runs on the worker pool and replies by message.
// A call site (module+function, type+method, ...) starts on the pool; after a run
// of consecutive quick executions it is promoted to the scheduler, and one slow
// execution there demotes it again, each demotion making promotion harder.
#pragma once
#include <atomic>
#include <cstdint>
#include <string_view>

namespace sb {

struct CallSite {
  std::atomic<bool> fast{false};
  std::atomic<int> streak{0};
  std::atomic<int> needed{8};
};

// Quick enough to run on a scheduler: well under the ~1 ms a NIF may take.
constexpr uint64_t kPromoteBelowNs = 100'000;
// A fast-path run longer than this blocked a scheduler; demote the site.
constexpr uint64_t kDemoteAboveNs = 1'000'000;

CallSite* call_site(std::string_view key);
void record_pool_run(CallSite* site, uint64_t elapsed_ns);
void record_fast_run(CallSite* site, uint64_t elapsed_ns);

extern std::atomic<bool> g_fast_path_enabled;

uint64_t monotonic_ns();

}  // namespace sb
