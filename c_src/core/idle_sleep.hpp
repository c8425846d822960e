// Lets a watcher thread that ticks while there is work sleep through idle
// periods instead of ticking forever: the watcher calls sleep_while(idle) on a
// tick; whoever brings work makes it visible to `idle` (a sequentially
// consistent store) and then calls wake().
//
// The announce-then-recheck order makes the pair race-free: work that starts
// while the watcher is deciding either sees the announcement (and wakes it) or
// is seen by the recheck.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>

namespace sb {

class IdleSleep {
 public:
  // Watcher: if idle() holds (checked twice, around the announcement), sleeps
  // until wake(). Returns whether it slept.
  template <typename Idle>
  bool sleep_while(Idle idle) {
    if (!idle()) return false;
    asleep_.store(true);
    if (!idle()) {
      asleep_.store(false);
      return false;
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !asleep_.load(); });
    return true;
  }

  // Worker side, after making its work visible: cheap when the watcher is awake.
  void wake() {
    if (!asleep_.load()) return;
    std::lock_guard<std::mutex> lock(mu_);
    asleep_.store(false);
    cv_.notify_one();
  }

 private:
  std::atomic<bool> asleep_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace sb
