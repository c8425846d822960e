// snakebridge_port: CPython behind a pipe, for SnakeBridge's port backend.
//
// Protocol (docs/protocol.md): requests are read from fd 3 and replies written
// to fd 4, each a 4-byte big-endian length followed by one MessagePack value:
//   request  [id, op, thread, args...]    e.g. [7, "call", 1, "math", "sqrt", [2.0], {}, "auto"]
//   reply    [id, "ok", value] | [id, "error", {"kind": ..., ...}]
//   output   [0, "output", "stdout" | "stderr", text, request_id | nil]
// fd 1 is pointed at fd 2 at start-up, so stray C-level prints cannot corrupt the
// protocol. End-of-file on fd 3 ends the program, and the processes it started.
// With SNAKEBRIDGE_REPLY_FIFO set, replies go to that FIFO instead of fd 4: the
// BEAM's side of it is read by the NIF, which hands each reply straight to its
// caller (c_src/nif/reply_channel.hpp). The program unlinks the path once open.
// With SNAKEBRIDGE_REQUEST_FIFO set, requests come from that FIFO, written by
// the NIF (each caller writes its own frame there, without the port); fd 3
// then only tells that the BEAM closed the port (end of file). Frames that
// still come on fd 3 are served too.
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
#include <algorithm>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
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
#include "input.hpp"
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

// Where replies go: the FIFO the BEAM named, else fd 4. -1: the FIFO cannot be opened.
int open_output() {
  const char* fifo = getenv("SNAKEBRIDGE_REPLY_FIFO");
  if (fifo == nullptr || *fifo == '\0') return kOut;
  // (Not blocking: with no reader, the BEAM side is gone, and the program ends.)
  int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  unlink(fifo);
  return fd;
}

// Where requests come from: the FIFO the BEAM named, else fd 3. -1: the FIFO
// cannot be opened.
int open_input() {
  const char* fifo = getenv("SNAKEBRIDGE_REQUEST_FIFO");
  if (fifo == nullptr || *fifo == '\0') return kIn;
  int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  unlink(fifo);
  return fd;
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
  // The request FIFO first: once the BEAM finds the reply FIFO open, it
  // knows this program reads its requests (c_src/nif/reply_channel.cpp).
  const int in_fd = open_input();
  if (in_fd < 0) {
    if (errno != ENOENT) perror("snakebridge_port: the request FIFO");
    return 2;
  }
  const int out = open_output();
  if (out < 0) {
    // (Gone, or no reader: the worker stopped before the program started.)
    if (errno != ENOENT && errno != ENXIO) perror("snakebridge_port: the reply FIFO");
    return 2;
  }
  fcntl(kIn, F_SETPIPE_SZ, 1 << 20);
  fcntl(out, F_SETPIPE_SZ, 1 << 20);
  signal(SIGPIPE, SIG_IGN);
  // Threads started from here on (the I/O thread, the interrupter, Python's
  // threads) inherit the blocked mask; the main thread unblocks before it serves.
  const sigset_t blocked = async_signals();
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);

  static sb::port::Server server(out);
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

  // Requests are read by the I/O thread, or by a Python thread polling
  // between its tasks (input.hpp): a lone caller's next request then runs on
  // the thread that reads it, with no hand-over.
  static sb::port::Input input(in_fd, server);
  python.set_poll_hook([] { input.read_available(true); });
  // fd 3 when requests come from the FIFO: its end of file ends the program.
  static sb::port::Input control(kIn, server);
  const bool two_inputs = in_fd != kIn;

  std::thread io_thread([spin_ns, two_inputs, &python] {
    boost::asio::io_context io;
    boost::asio::posix::stream_descriptor in(io, input.fd());
    std::optional<boost::asio::posix::stream_descriptor> eof_watch;
    if (two_inputs) eof_watch.emplace(io, kIn);
    uint64_t last_activity = sb::monotonic_ns();
    sb::port::Placement placement(sb::port::Placement::enabled_by_env());
    for (;;) {
      placement.update(!python.quiet(), input.frames(), sb::monotonic_ns());
      // (Not while a Python thread polls the pipe: two readers would only
      // contend for it.)
      if (python.pollers() == 0 && input.read_available(false)) {
        last_activity = sb::monotonic_ns();
        continue;
      }
      // Polled for a while after the last frame read (here or by a Python
      // thread), while at most a couple of requests are about. A Python
      // thread polling reads in this one's place, which then only looks in
      // between yields for requests that come while that one runs what it
      // read: blocked on the pipe, it would be woken for each of its frames,
      // and a core left idle takes ~50 µs to wake for the BEAM's next
      // message. With several callers' requests in Python, the next frame is
      // no hurry (the thread running them is busy) and the cores are theirs.
      uint64_t now = sb::monotonic_ns();
      uint64_t last = std::max(last_activity, input.last_python_read());
      if (now - last < spin_ns && (python.quiet() || python.pollers() > 0) && sb::poll_pause(last, now)) {
        // Past the first microseconds, the core goes to whoever else is ready
        // (on a busy machine, maybe the Python thread that is to reply). The
        // program leaves busy-machine detection off (core/spin.hpp).
        continue;
      }
      // Until the pipe is readable: looked at again soon while the threads
      // are gathered (they get their cores back once quiet); large buffers
      // kept for the next large frame go after a second unused.
      bool readable = false;
      bool control_readable = false;
      in.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [&](const boost::system::error_code& e) { readable = !e; });
      if (two_inputs) {
        eof_watch->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                             [&](const boost::system::error_code& e) { control_readable = !e; });
      }
      if (placement.gathered()) io.run_one_for(std::chrono::milliseconds(20));
      else if (sb::port::drop_spare_buffers(kSpareIdleNs)) io.run_one_for(std::chrono::seconds(1));
      else io.run_one();
      in.cancel();
      if (two_inputs) eof_watch->cancel();
      io.run();  // the cancelled waits' handlers
      io.restart();
      if (control_readable) control.read_available(false);
      last_activity = sb::monotonic_ns();
    }
  });
  io_thread.detach();

  pthread_sigmask(SIG_UNBLOCK, &blocked, nullptr);
  python.serve_adopted();
}
