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
// A fast-path run that used more CPU than this, or was blocked (a sleep, a lock)
// longer than kDemoteBlockedNs, held its scheduler: demote the site. Wall time
// alone would also count the OS preempting the thread mid-call, which says
// nothing about the call and would demote quick sites at random.
constexpr uint64_t kDemoteAboveNs = 1'000'000;
constexpr uint64_t kDemoteBlockedNs = 20'000'000;

CallSite* call_site(std::string_view key);
void record_pool_run(CallSite* site, uint64_t elapsed_ns);
// wall_ns and cpu_ns: the run's elapsed time and this thread's CPU time in it.
void record_fast_run(CallSite* site, uint64_t wall_ns, uint64_t cpu_ns);
// Demotes at once (a run still in progress that is already too long).
void demote(CallSite* site);
bool fast_run_too_long(uint64_t wall_ns, uint64_t cpu_ns);

extern std::atomic<bool> g_fast_path_enabled;

uint64_t monotonic_ns();
uint64_t thread_cpu_ns();

}  // namespace sb
