#include "placement.hpp"

#include <dirent.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sb::port {
namespace {

// Decided per window: a busy window (crowded at its end, and at least
// kBusyFrames read in it: 10,000 a second) gathers the threads on one core;
// kReleaseWindows windows in a row that are not busy give the cores back.

// Sets the allowed cores of every thread of the process (those Python and
// libraries started included).
void set_all_threads(const cpu_set_t& set) {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    pid_t tid = static_cast<pid_t>(strtol(entry->d_name, nullptr, 10));
    sched_setaffinity(tid, sizeof(set), &set);
  }
  closedir(dir);
}

}  // namespace

Placement::Placement(bool enabled) {
  enabled_ = enabled && sched_getaffinity(0, sizeof(all_), &all_) == 0 && CPU_COUNT(&all_) > 1;
}

bool Placement::enabled_by_env() {
  const char* v = getenv("SNAKEBRIDGE_GATHER");
  return !(v && v[0] == '0');
}

void Placement::update(bool crowded, uint64_t frames, uint64_t now) {
  if (!enabled_ || now - window_start_ < kWindowNs) return;
  bool busy = crowded && frames - window_frames_ >= kBusyFrames;
  window_start_ = now;
  window_frames_ = frames;
  idle_windows_ = busy ? 0 : idle_windows_ + 1;
  if (busy && !gathered_) gather();
  else if (gathered_ && idle_windows_ >= kReleaseWindows) release();
}

void Placement::gather() {
  int cpu = sched_getcpu();
  if (cpu < 0 || !CPU_ISSET(cpu, &all_)) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  set_all_threads(one);
  gathered_ = true;
}

void Placement::release() {
  set_all_threads(all_);
  gathered_ = false;
}

}  // namespace sb::port
