// snakebridge_port: CPython behind a pipe, for SnakeBridge's port backend.
//
// Protocol (docs/protocol.md): requests are read from fd 3 and replies written
// to fd 4, each a 4-byte big-endian length followed by one MessagePack value:
//   request  [id, op, args...]            e.g. [7, "call", "math", "sqrt", [2.0], {}, "auto"]
//   reply    [id, "ok", value] | [id, "error", {"kind": ..., ...}]
//   output   [0, "output", "stdout" | "stderr", text, request_id | nil]
// fd 1 is pointed at fd 2 at start-up, so stray C-level prints cannot corrupt the
// protocol. End-of-file on fd 3 ends the program, and the processes it started.
//
// Environment: SNAKEBRIDGE_PYTHON (interpreter to embed, default /usr/bin/python3),
// SNAKEBRIDGE_PATHS (':'-separated directories put first on sys.path),
// PYTHONPATH (honoured).
#include <fcntl.h>
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

#include "../core/call_sites.hpp"
#include "../core/errors.hpp"
#include "../core/idle_sleep.hpp"
#include "../core/interpreter.hpp"
#include "../core/interrupts.hpp"
#include "../core/operations.hpp"
#include "../core/values.hpp"
#include "../core/spin.hpp"
#include "../core/worker_pool.hpp"
#include "framing.hpp"
#include "server.hpp"

#ifndef SNAKEBRIDGE_LIBPYTHON
#define SNAKEBRIDGE_LIBPYTHON ""
#endif

namespace {

constexpr int kIn = 3;
constexpr int kOut = 4;

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

  static sb::port::Server server(kOut);
  try {
    sb::InterpreterConfig cfg = config_from_env();
    cfg.emit_output = sb::port::port_output_function(&server);
    sb::initialize_interpreter(cfg);
  } catch (const std::exception& e) {
    fprintf(stderr, "snakebridge_port: %s\n", e.what());
    return 2;
  }
  // SNAKEBRIDGE_THREADS: how many threads may run Python (default 128). With
  // 1, every request runs on one and the same thread (for libraries that
  // insist on their creating thread, such as sqlite3).
  const char* threads = getenv("SNAKEBRIDGE_THREADS");
  size_t max_threads = threads && *threads ? strtoull(threads, nullptr, 10) : 128;
  sb::WorkerPool::instance().set_max_threads(max_threads);
  server.set_inline_runs(max_threads > 1);
  // The I/O thread and the pool threads poll for a while after each burst of
  // activity before they block: waking a blocked thread costs ~45 µs on these
  // machines, several times a whole round trip (docs/backends.md, "Latency").
  // SNAKEBRIDGE_SPIN_US sets the window (0: always block).
  const uint64_t spin_ns = spin_window_ns();
  sb::WorkerPool::instance().set_spin_ns(spin_ns);
  sb::WorkerPool::instance().start();

  boost::asio::io_context io;
  boost::asio::posix::stream_descriptor in(io, kIn);
  sb::port::FrameReader reader;

  // At most one read is outstanding, so the reader is never used by two
  // threads at once (`reading` is cleared only once the bytes read are parsed).
  // The next read is issued after the frames just read are handled: issued
  // before, its speculative read() would sit between a request and its reply.
  // While a request run inline turns long, the backup thread below issues it.
  std::atomic<bool> reading{false};
  // The backup thread (below) ticks while requests come, and sleeps once the
  // program has been idle for a second, until input arrives again.
  std::atomic<uint64_t> last_input{sb::monotonic_ns()};
  sb::IdleSleep backup_idle;
  std::function<void()> read_more = [&] {
    if (reading.exchange(true)) return;
    size_t room;
    char* into = reader.space(&room);
    in.async_read_some(boost::asio::buffer(into, room), [&](const boost::system::error_code& ec, size_t n) {
      if (ec) shut_down();  // EOF: the BEAM closed the port or died
      last_input.store(sb::monotonic_ns());
      backup_idle.wake();
      reader.commit(n);
      std::vector<std::string> frames;
      std::vector<uint64_t> oversized;
      while (true) {
        std::string frame;
        uint64_t size = 0;
        auto next = reader.next(&frame, &size);
        if (next == sb::port::FrameReader::Next::NeedMore) break;
        if (next == sb::port::FrameReader::Next::Oversized) oversized.push_back(size);
        else frames.push_back(std::move(frame));
      }
      reading.store(false);
      for (uint64_t size : oversized) {
        server.send_error(0, "bad_request", "frame of " + std::to_string(size) + " bytes is over the 1 GiB limit");
      }
      for (std::string& frame : frames) server.on_frame(std::move(frame));
      read_more();
    });
  };
  read_more();

  // A backup thread: if a request run inline on the I/O thread turns long, its
  // call site is demoted and this thread keeps reading, so cancels, pings and
  // end-of-file are never held up behind it.
  std::thread backup([&] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      bool slept = backup_idle.sleep_while(
          [&] { return sb::monotonic_ns() - last_input.load() > 1'000'000'000 && server.inline_for_ns() == 0; });
      if (slept) continue;
      if (server.inline_for_ns() > 10'000'000) {
        server.demote_inline_site();
        while (server.inline_for_ns() > 0) {
          read_more();
          io.run_one_for(std::chrono::milliseconds(5));
        }
      }
    }
  });
  backup.detach();
  uint64_t last_activity = sb::monotonic_ns();
  for (;;) {
    if (io.poll() > 0) {
      last_activity = sb::monotonic_ns();
    } else if (sb::monotonic_ns() - last_activity < spin_ns) {
      sb::cpu_relax();
    } else {
      io.run_one();
      last_activity = sb::monotonic_ns();
    }
    if (io.stopped()) io.restart();
  }
}
