// The port program's request handling (docs/protocol.md): frames in, replies
// out. Requests run on the core's worker pool, each taking the GIL itself, so
// several are in flight and a long one never holds up the protocol.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "../core/call_sites.hpp"
#include "../core/interrupter.hpp"
#include "../core/request.hpp"
#include "msgpack_reader.hpp"

namespace sb::port {

class Server {
 public:
  explicit Server(int out_fd) : out_fd_(out_fd) {}

  // I/O thread: one complete frame from the client.
  void on_frame(std::string frame);
  // Any thread: a frame-bodied reply (the header is added here).
  void send(const char* data, size_t size);
  void send_error(uint64_t id, const char* kind, const std::string& message);

  size_t in_flight();
  // Whether proven-quick requests may run on the I/O thread (off when Python
  // must stay on a single thread).
  void set_inline_runs(bool on) { inline_runs_ = on; }

  // How long the request running inline on an I/O thread has run (0: none), and
  // its call site: a watchdog demotes sites whose inline runs turn long.
  uint64_t inline_for_ns() const;
  void demote_inline_site();

 private:
  using Running = InterruptTarget;

  // A decoded request and the frame its strings and binaries point into.
  struct Incoming {
    std::string frame;
    msgpack::object_handle handle;
    WireRequest<const msgpack::object*> wire;
  };

  void run(uint64_t id, std::shared_ptr<Incoming> request, std::shared_ptr<Running> running);
  void cancel(uint64_t id);
  void reply_drained(uint64_t id);

  int out_fd_;
  std::mutex write_mu_;
  std::mutex running_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Running>> running_;
  bool inline_runs_ = true;
  bool draining_ = false;      // under running_mu_: after "drain", requests are refused
  uint64_t drain_reply_id_ = 0;  // under running_mu_: answered once nothing is in flight
  std::atomic<uint64_t> inline_since_{0};
  std::atomic<CallSite*> inline_site_{nullptr};
};

// The emit function of sys.stdout/sys.stderr (core/stdio.hpp): `output` frames
// through `server`.
PyCFunction port_output_function(Server* server);

}  // namespace sb::port
