#include "interrupter.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "interpreter.hpp"
#include "interrupts.hpp"

namespace sb {
namespace {

class Interrupter {
 public:
  static Interrupter& instance() {
    static Interrupter* i = new Interrupter();  // never destroyed: its thread outlives statics
    return *i;
  }

  void add(std::shared_ptr<InterruptTarget> target) {
    target->interrupted.store(true);
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_) {
      std::thread([this] { loop(); }).detach();
      started_ = true;
    }
    incoming_.push_back({std::move(target), std::chrono::steady_clock::now()});
    cv_.notify_one();
  }

  size_t wedged() {
    std::lock_guard<std::mutex> lock(mu_);
    auto now = std::chrono::steady_clock::now();
    auto stuck = [&](const Active& a) { return !a.target->finished && now - a.since > std::chrono::seconds(1); };
    return std::count_if(active_.begin(), active_.end(), stuck) + std::count_if(incoming_.begin(), incoming_.end(), stuck);
  }

 private:
  struct Active {
    std::shared_ptr<InterruptTarget> target;
    std::chrono::steady_clock::time_point since;
  };

  void loop() {
    bool fast_switching = false;
    unsigned long saved_interval = 5000;
    while (true) {
      std::vector<std::shared_ptr<InterruptTarget>> targets;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (active_.empty()) {
          cv_.wait(lock, [&] { return !incoming_.empty(); });
        } else {
          cv_.wait_for(lock, std::chrono::milliseconds(5), [&] { return !incoming_.empty(); });
        }
        for (auto& a : incoming_) active_.push_back(std::move(a));
        incoming_.clear();
        for (const Active& a : active_) targets.push_back(a.target);
      }
      if (!fast_switching) {
        saved_interval = _PyEval_GetSwitchInterval();
        _PyEval_SetSwitchInterval(500);
        fast_switching = true;
      }
      {
        Gil gil;  // (a wedged call holds it: then this waits, and wedged() tells)
        for (const auto& t : targets) {
          PyThreadState* ts = t->tstate.load();
          if (!t->finished && ts) interrupt_thread(ts);
        }
      }
      bool none_left;
      {
        std::lock_guard<std::mutex> lock(mu_);
        active_.erase(std::remove_if(active_.begin(), active_.end(),
                                     [](const Active& a) { return a.target->finished.load(); }),
                      active_.end());
        none_left = active_.empty();
      }
      if (none_left) {
        _PyEval_SetSwitchInterval(saved_interval);
        fast_switching = false;
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Active> incoming_;
  bool started_ = false;
  std::vector<Active> active_;  // under mu_: being interrupted, with since when
};

}  // namespace

void interrupt_until_finished(std::shared_ptr<InterruptTarget> target) { Interrupter::instance().add(std::move(target)); }

size_t wedged_calls() { return Interrupter::instance().wedged(); }

}  // namespace sb
