// The request pipe, read by whichever thread is free to: the I/O thread, or a
// Python thread polling between its tasks (PythonThreads::set_poll_hook). A
// caller calling in a loop then has its next request read by the very thread
// that runs it, with no hand-over between threads (docs/backends.md,
// "Latency"); frames for other threads are dispatched as the I/O thread would.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "framing.hpp"

namespace sb::port {

class Server;

class Input {
 public:
  Input(int fd, Server& server);
  // Reads what the pipe holds (without blocking) and dispatches every complete
  // frame, in order. False when nothing was read, or another thread is
  // reading. End of file ends the program (shut_down).
  bool read_available(bool by_python_thread);
  int fd() const { return fd_; }
  // Frames dispatched so far.
  uint64_t frames() const { return frames_.load(std::memory_order_relaxed); }
  // When a Python thread last read something (monotonic_ns; 0: never).
  uint64_t last_python_read() const { return last_python_read_.load(std::memory_order_relaxed); }

 private:
  int fd_;
  Server& server_;
  std::mutex mu_;  // one reader at a time: frames are dispatched in pipe order
  FrameReader reader_;
  std::atomic<uint64_t> last_python_read_{0};
  std::atomic<uint64_t> frames_{0};
};

// Kills what Python started (subprocesses share our process group) and exits.
[[noreturn]] void shut_down();

}  // namespace sb::port
