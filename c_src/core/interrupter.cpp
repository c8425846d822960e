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
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_) {
      std::thread([this] { loop(); }).detach();
      started_ = true;
    }
    incoming_.push_back(std::move(target));
    cv_.notify_one();
  }

 private:
  void loop() {
    std::vector<std::shared_ptr<InterruptTarget>> active;
    bool fast_switching = false;
    unsigned long saved_interval = 5000;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (active.empty()) {
          cv_.wait(lock, [&] { return !incoming_.empty(); });
        } else {
          cv_.wait_for(lock, std::chrono::milliseconds(5), [&] { return !incoming_.empty(); });
        }
        active.insert(active.end(), incoming_.begin(), incoming_.end());
        incoming_.clear();
      }
      if (!fast_switching) {
        saved_interval = _PyEval_GetSwitchInterval();
        _PyEval_SetSwitchInterval(500);
        fast_switching = true;
      }
      {
        Gil gil;
        for (const auto& t : active) {
          PyThreadState* ts = t->tstate.load();
          if (!t->finished && ts) interrupt_thread(ts);
        }
        active.erase(std::remove_if(active.begin(), active.end(), [](const auto& t) { return t->finished; }),
                     active.end());
      }
      if (active.empty()) {
        _PyEval_SetSwitchInterval(saved_interval);
        fast_switching = false;
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<InterruptTarget>> incoming_;
  bool started_ = false;
};

}  // namespace

void interrupt_until_finished(std::shared_ptr<InterruptTarget> target) { Interrupter::instance().add(std::move(target)); }

}  // namespace sb
