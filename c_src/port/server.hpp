// The port program's request handling (docs/protocol.md): frames in, replies
// out. Each request runs on its caller's Python thread (the frame names the
// caller: core/python_threads.hpp), taking the GIL itself, so several are in
// flight and a long one never holds up the protocol.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <sys/uio.h>

#include "../core/python_threads.hpp"
#include "../core/interrupter.hpp"
#include "../core/request.hpp"
#include "framing.hpp"
#include "msgpack_reader.hpp"
#include "msgpack_sink.hpp"

namespace sb::port {

class Server {
 public:
  // Also Python's way to Elixir (core/elixir_terms.hpp): callbacks and sends as frames.
  explicit Server(int out_fd);

  // I/O thread: one complete frame from the client.
  void on_frame(Frame frame);
  // Any thread: a frame-bodied reply (the header is added here).
  void send(const char* data, size_t size);
  // A reply whose buffer leaves room for spliced arrays: written with them in
  // place, in one frame; their owners are released afterwards (no GIL needed).
  void send_reply(const msgpack::sbuffer& reply, std::vector<Spliced>& spliced);
  void send_error(uint64_t id, const char* kind, const std::string& message);
  // The thread reading requests, around what it dispatches from one read:
  // the frames it writes meanwhile (replies it answered itself, errors,
  // pongs) are gathered and go out in one write at end_batch() (or once
  // kBatchFrames or kBatchBytes wait). A frame written by another thread
  // meanwhile goes out after those gathered, so frames keep the order they
  // were written in. (100 callers: each reply was a write of its own.)
  void begin_batch();
  void end_batch();
  // Any thread: what was gathered, then this frame, written now (a frame
  // whose answer the writer then waits for: a callback).
  void send_now(const char* data, size_t size);

  size_t in_flight();

  // The largest reply body a frame's 4-byte length can state.
  static constexpr size_t kMaxReply = 0xFFFFFFFFu;

 private:
  // A request read and not yet answered. `phase`: queued on its caller's
  // thread, started there, or cancelled before it started (then answered at
  // once by the cancel, and skipped by its thread).
  struct Running : InterruptTarget {
    enum Phase : int { kQueued, kStarted, kCancelled };
    std::atomic<int> phase{kQueued};
  };

  // A decoded request and the frame its strings and binaries point into.
  struct Incoming {
    Frame frame;
    msgpack::object_handle handle;
    WireRequest<const msgpack::object*> wire;
    // to_array/to_columns from a caller on this machine: large arrays of the
    // reply may go through shared memory (ext 17).
    bool shared_replies = false;
  };

  // A reply being made: its body, and the arrays that go with it.
  struct Reply {
    msgpack::sbuffer body;
    std::vector<Spliced> spliced;  // large arrays, written from their own memory
    std::vector<SharedOut> shared;  // or through shared memory, for a caller on this machine
  };

  void write_frame(const char* data, size_t size, const std::vector<Spliced>& spliced, bool now = false);
  // Under write_mu_: writes `parts` whole (exits when the client is gone).
  void write_all(std::vector<iovec>& parts);
  // Under write_mu_: writes what was gathered, if anything, and empties it.
  void flush_batch();
  // On the caller's thread: takes its turn and the GIL, responds, delivers.
  void run(uint64_t id, std::shared_ptr<Incoming> request, std::shared_ptr<Running> running);
  // On the thread that read the request: runs it there and true when it
  // cannot tell which thread runs it and nothing else is in Python; false
  // (nothing done) otherwise.
  bool answer_here(uint64_t id, const Incoming& request, Running& running);
  // GIL held: runs the request and makes its reply (or error).
  void respond(uint64_t id, const Incoming& request, Running& running, Reply* out);
  // Sends the reply; the request is over.
  void deliver(uint64_t id, Reply& out);
  void cancel(uint64_t id);
  void reply_drained(uint64_t id);
  // The request leaves running_ (its reply sent); a pending drain may answer.
  void finished(uint64_t id);
  // The thread of the caller a request frame names, bound on first sight.
  PythonThread* thread_for(uint64_t key);
  void forget(uint64_t key);

  int out_fd_;
  // Replies larger than this are refused with an OverflowError
  // (SNAKEBRIDGE_MAX_REPLY_BYTES, at most kMaxReply).
  size_t max_reply_ = kMaxReply;
  std::mutex write_mu_;
  // Under write_mu_: the frames gathered by the batching thread (whole
  // frames, headers included), and that thread (none: no batch).
  static constexpr size_t kBatchFrames = 32;
  static constexpr size_t kBatchBytes = 64 * 1024;
  std::string batch_;
  size_t batch_frames_ = 0;
  std::thread::id batcher_;
  std::mutex running_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Running>> running_;
  bool draining_ = false;      // under running_mu_: after "drain", requests are refused
  uint64_t drain_reply_id_ = 0;  // under running_mu_: answered once nothing is in flight
  std::mutex threads_mu_;
  std::unordered_map<uint64_t, PythonThread*> threads_;
  std::atomic<uint64_t> answered_here_{0};  // requests answer_here ran (stats)
};

// The emit function of sys.stdout/sys.stderr (core/stdio.hpp): `output` frames
// through `server`.
PyCFunction port_output_function(Server* server);

}  // namespace sb::port
