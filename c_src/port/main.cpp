// snakebridge_port: CPython behind a pipe, for SnakeBridge's port backend.
//
// Protocol (docs/protocol.md): requests are read from fd 3 and replies written
// to fd 4, each a 4-byte big-endian length followed by one MessagePack value:
//   request  [id, op, thread, args...]    e.g. [7, "call", 1, "math", "sqrt", [2.0], {}, "auto"]
//   reply    [id, "ok", value] | [id, "error", {"kind": ..., ...}]
//   output   [0, "output", "stdout" | "stderr", text, request_id | nil]
// fd 1 is pointed at fd 2 at start-up, so stray C-level prints cannot corrupt the
// protocol. End-of-file on fd 3 ends the program, and the processes it started.
//
// Environment: SNAKEBRIDGE_PYTHON (interpreter to embed, default /usr/bin/python3),
// SNAKEBRIDGE_PATHS (':'-separated directories put first on sys.path),
// PYTHONPATH (honoured).
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../core/errors.hpp"
#include "../core/interpreter.hpp"
#include "../core/interrupts.hpp"
#include "../core/operations.hpp"
#include "../core/values.hpp"
#include "../core/spin.hpp"
#include "../core/python_threads.hpp"
#include "framing.hpp"
#include "placement.hpp"
#include "server.hpp"

#ifndef SNAKEBRIDGE_LIBPYTHON
#define SNAKEBRIDGE_LIBPYTHON ""
#endif

namespace {

constexpr int kIn = 3;
constexpr int kOut = 4;
// How long a spare large buffer (framing.hpp) is kept unused before it is freed.
constexpr uint64_t kSpareIdleNs = 1'000'000'000;

// Kills what Python started (subprocesses share our process group) and exits.
[[noreturn]] void shut_down() {
  signal(SIGTERM, SIG_IGN);
  kill(0, SIGTERM);
  _exit(0);
}

uint64_t spin_window_ns() {
  const char* v = getenv("SNAKEBRIDGE_SPIN_US");
  if (v == nullptr || *v == '\0') return 100'000;
  return strtoull(v, nullptr, 10) * 1000;
}

sb::InterpreterConfig config_from_env() {
  sb::InterpreterConfig cfg;
  const char* python = getenv("SNAKEBRIDGE_PYTHON");
  cfg.python_executable = python && *python ? python : "/usr/bin/python3";
  cfg.libpython_soname = SNAKEBRIDGE_LIBPYTHON;
  if (const char* paths = getenv("SNAKEBRIDGE_PATHS")) {
    std::stringstream ss(paths);
    for (std::string p; std::getline(ss, p, ':');) {
      if (!p.empty()) cfg.extra_paths.push_back(p);
    }
  }
  if (const char* pp = getenv("PYTHONPATH")) cfg.pythonpath = pp;
  return cfg;
}

// Signals go to the main thread, which runs Python (as in a script: handlers,
// alarms and KeyboardInterrupt interrupt what it runs): every other thread of
// the program blocks them. Faults raised by a thread itself stay unblocked.
sigset_t async_signals() {
  sigset_t set;
  sigfillset(&set);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(&set, sig);
  return set;
}

}  // namespace

int main() {
  // Our own process group: on exit we can end every process Python started.
  setpgid(0, 0);
  dup2(STDERR_FILENO, STDOUT_FILENO);
  // 1 MiB pipe buffers (the default is 64 KiB): a large frame then crosses in
  // a write or two instead of sixteen, each a wake-up of the other side.
  // Best effort: the system may cap pipe sizes.
  fcntl(kIn, F_SETPIPE_SZ, 1 << 20);
  fcntl(kOut, F_SETPIPE_SZ, 1 << 20);
  signal(SIGPIPE, SIG_IGN);
  // Threads started from here on (the I/O thread, the interrupter, Python's
  // threads) inherit the blocked mask; the main thread unblocks before it serves.
  const sigset_t blocked = async_signals();
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);

  static sb::port::Server server(kOut);
  try {
    sb::InterpreterConfig cfg = config_from_env();
    cfg.emit_output = sb::port::port_output_function(&server);
    cfg.owns_process = true;
    sb::initialize_interpreter(cfg);
  } catch (const std::exception& e) {
    fprintf(stderr, "snakebridge_port: %s\n", e.what());
    return 2;
  }
  // SNAKEBRIDGE_THREADS: how many threads may run Python (default 128); each
  // caller gets its own while there are fewer callers (core/python_threads.hpp).
  // With 1, every request runs on the main thread.
  const char* threads = getenv("SNAKEBRIDGE_THREADS");
  size_t max_threads = threads && *threads ? strtoull(threads, nullptr, 10) : 128;
  sb::PythonThreads& python = sb::PythonThreads::instance();
  python.set_max(max_threads);
  // The I/O thread and the Python threads poll for a while after each burst of
  // activity before they block: waking a blocked thread costs ~45 µs on these
  // machines, several times a whole round trip (docs/backends.md, "Latency").
  // SNAKEBRIDGE_SPIN_US sets the window (0: always block).
  const uint64_t spin_ns = spin_window_ns();
  python.set_spin_ns(spin_ns);
  // The main thread is the first Python thread: the first caller's requests,
  // and with SNAKEBRIDGE_THREADS=1 everyone's, run on it.
  python.adopt_this_thread();
  // Python threads poll for their next request only while their caller is
  // the only one about (PythonThreads::quiet).
  python.set_poll_only_when_quiet(true);

  std::thread io_thread([spin_ns, &python] {
    boost::asio::io_context io;
    boost::asio::posix::stream_descriptor in(io, kIn);
    sb::port::FrameReader reader;
    uint64_t frames_read = 0;
    // The next read is issued after the frames just read are handed over:
    // issued before, its speculative read() would sit between a request and
    // its reply.
    std::function<void()> read_more = [&] {
      size_t room;
      char* into = reader.space(&room);
      in.async_read_some(boost::asio::buffer(into, room), [&](const boost::system::error_code& ec, size_t n) {
        if (ec) shut_down();  // EOF: the BEAM closed the port or died
        reader.commit(n);
        while (true) {
          sb::port::Frame frame;
          uint64_t size = 0;
          auto next = reader.next(&frame, &size);
          if (next == sb::port::FrameReader::Next::NeedMore) break;
          if (next == sb::port::FrameReader::Next::Oversized) {
            server.send_error(0, "bad_request", "frame of " + std::to_string(size) + " bytes is over the 1 GiB limit");
          } else {
            ++frames_read;
            server.on_frame(std::move(frame));
          }
        }
        read_more();
      });
    };
    read_more();
    uint64_t last_activity = sb::monotonic_ns();
    sb::port::Placement placement(sb::port::Placement::enabled_by_env());
    for (;;) {
      uint64_t idle = 0;
      placement.update(!python.quiet(), frames_read, sb::monotonic_ns());
      if (io.poll() > 0) {
        last_activity = sb::monotonic_ns();
      } else if ((idle = sb::monotonic_ns() - last_activity) < spin_ns && python.quiet()) {
        // Past the first microseconds, the core goes to whoever else is ready
        // (on a busy machine, maybe the Python thread that is to reply). Only
        // while at most one caller's request is in Python: with several, the
        // next frame is no hurry (the thread running them is busy), and the
        // cores are theirs.
        if (idle < 3'000) sb::cpu_relax();
        else sched_yield();
      } else if (placement.gathered()) {
        // Looked at again soon: the threads get their cores back once quiet.
        io.run_one_for(std::chrono::milliseconds(20));
        last_activity = sb::monotonic_ns();
      } else if (sb::port::drop_spare_buffers(kSpareIdleNs)) {
        // Large buffers kept for the next large frame go after a second unused.
        io.run_one_for(std::chrono::seconds(1));
        last_activity = sb::monotonic_ns();
      } else {
        io.run_one();
        last_activity = sb::monotonic_ns();
      }
      if (io.stopped()) io.restart();
    }
  });
  io_thread.detach();

  pthread_sigmask(SIG_UNBLOCK, &blocked, nullptr);
  python.serve_adopted();
}
