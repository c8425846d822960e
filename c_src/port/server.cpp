#include "server.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>
#include <utility>
#include <vector>

#include "../core/interpreter.hpp"
#include "../core/to_elixir.hpp"
#include "../core/callback_answer.hpp"
#include "../core/elixir_terms.hpp"
#include "../core/interrupts.hpp"
#include "../core/stdio.hpp"
#include "../core/python_threads.hpp"
#include "../core/executor.hpp"
#include "../core/gil_probe.h"
#include "../core/thread_free.hpp"
#include "framing.hpp"
#include "handles.hpp"
#include "msgpack_sink.hpp"
#include "request_decoder.hpp"

namespace sb::port {
namespace {

// The frame is unpacked without a depth limit of its own (the parser keeps its
// own stack, so depth costs no recursion): the core refuses terms nested past
// kMaxArgumentDepth with their path, exactly as in-process.
const msgpack::unpack_limit kLimits(1 << 24, 1 << 24, 1 << 30, 1 << 30, 1 << 30, 1 << 30);

Server* g_server = nullptr;
thread_local uint64_t t_request = 0;  // the request this thread runs, for output

void reply_header(Packer& pk, uint64_t id, const char* status) {
  pk.pack_array(3);
  pk.pack_uint64(id);
  pk.pack(std::string(status));
}

void reply_ok_header(Packer& pk, uint64_t id) { reply_header(pk, id, "ok"); }

// [0, op, [id...]] (release, cancel, forget: batched by the client): f(id)
// for each id; anything else in the list is skipped.
template <class F>
void each_id(const msgpack::object_array& a, F&& f) {
  if (a.size < 3 || a.ptr[2].type != msgpack::type::ARRAY) return;
  for (uint32_t i = 0; i < a.ptr[2].via.array.size; ++i) {
    const msgpack::object& o = a.ptr[2].via.array.ptr[i];
    if (o.type == msgpack::type::POSITIVE_INTEGER) f(o.via.u64);
  }
}

// [id, "error", :cancelled]: the reply of a request cancelled before it ran
// (the client drops it: it has given up on the request).
void pack_cancelled(msgpack::sbuffer& out, uint64_t id) {
  Packer pk(out);
  reply_header(pk, id, "error");
  MsgpackSink sink(pk);
  sink.atom("cancelled");
}

// {:unconvertible, why, nil, steps}: the port names the refused term by
// position; the client finds it in what it sent (docs/protocol.md, "Replies").
void pack_refusal(Packer& pk, const Refusal& e) {
  MsgpackSink sink(pk);
  sink.begin_tuple(4);
  sink.atom("unconvertible");
  sink.atom(refusal_reason_name(e.reason));
  sink.nil();
  sink.begin_list(e.path.size());
  for (const PathStep& step : e.path) {
    switch (step.kind) {
      case PathStep::Index:
      case PathStep::Element:
        sink.uint64(step.index);
        break;
      case PathStep::Key:
      case PathStep::Value:
        sink.begin_tuple(2);
        sink.atom(step.kind == PathStep::Key ? "key" : "entry");
        sink.uint64(step.index);
        sink.end_tuple();
        break;
      case PathStep::Field:
        sink.str(nullptr, step.field, strlen(step.field));
        break;
    }
  }
  sink.end_list();
  sink.end_tuple();
}

// The id of a request frame that could not be decoded, read from its first
// bytes (an array header, then a positive integer); 0 when even that fails.
uint64_t frame_id(const Frame& f) {
  const auto* p = reinterpret_cast<const unsigned char*>(f.data);
  size_t n = f.size, i;
  if (n >= 1 && (p[0] & 0xf0) == 0x90) i = 1;
  else if (n >= 3 && p[0] == 0xdc) i = 3;
  else if (n >= 5 && p[0] == 0xdd) i = 5;
  else return 0;
  if (i >= n) return 0;
  uint8_t tag = p[i];
  if (tag < 0x80) return tag;
  size_t width = tag == 0xcc ? 1 : tag == 0xcd ? 2 : tag == 0xce ? 4 : tag == 0xcf ? 8 : 0;
  if (width == 0 || i + 1 + width > n) return 0;
  uint64_t id = 0;
  for (size_t k = 0; k < width; ++k) id = (id << 8) | p[i + 1 + k];
  return id;
}

PyObject* emit(PyObject*, PyObject* args) {
  int stream;
  const char* text;
  Py_ssize_t size;
  if (!PyArg_ParseTuple(args, "is#", &stream, &text, &size)) return nullptr;
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(5);
  pk.pack_uint64(0);
  pk.pack(std::string("output"));
  pk.pack(std::string(stream == 2 ? "stderr" : "stdout"));
  pk.pack_str(static_cast<uint32_t>(size));
  pk.pack_str_body(text, static_cast<uint32_t>(size));
  if (t_request) pk.pack_uint64(t_request);
  else pk.pack_nil();
  {
    GilRelease release;  // writing may block on a full pipe
    g_server->send(buf.data(), buf.size());
  }
  Py_RETURN_NONE;
}

// --------------------------------------------------------------- callbacks
// Python calling Elixir through the client (docs/protocol.md, "Callbacks"):
// [0, "callback", request_id | nil, slot, fun | [module, function], args, kwargs]
// out, [0, "answer", slot, answer] back; [0, "send", pid, message] out.

struct Slot {
  CallbackWait wait;
  std::atomic<bool> answered{false};
  std::shared_ptr<void> frame;  // the answer's frame, which `answer` points into
  const msgpack::object* answer = nullptr;
};

std::mutex g_slots_mu;
std::unordered_map<uint64_t, std::shared_ptr<Slot>> g_slots;
uint64_t g_next_slot = 0;

class PortHost : public ElixirHost {
 public:
  PyObject* call(const TermPayload* fun, PyObject* module, PyObject* function, PyObject* args,
                 PyObject* kwargs) override {
    auto slot = std::make_shared<Slot>();
    uint64_t id;
    {
      std::lock_guard<std::mutex> lock(g_slots_mu);
      id = ++g_next_slot;
      g_slots.emplace(id, slot);
    }
    struct Forget {
      uint64_t id;
      ~Forget() {
        std::lock_guard<std::mutex> lock(g_slots_mu);
        g_slots.erase(id);
      }
    } forget{id};
    msgpack::sbuffer buf;
    try {
      Packer pk(buf);
      pk.pack_array(7);
      pk.pack_uint64(0);
      pk.pack(std::string("callback"));
      if (t_request) pk.pack_uint64(t_request);
      else pk.pack_nil();
      pk.pack_uint64(id);
      MsgpackSink sink(pk);
      emit_callback(sink, fun, module, function, args, kwargs);
    } catch (const PythonException& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
      return nullptr;
    }
    {
      GilRelease release;  // writing may block on a full pipe
      g_server->send_now(buf.data(), buf.size());
    }
    if (!slot->wait.wait([&] { return slot->answered.load(std::memory_order_acquire); })) return nullptr;
    MsgpackReader reader;
    try {
      return callback_answer(reader, slot->answer);
    } catch (const UnknownObject&) {
      PyErr_SetString(PyExc_TypeError, "the Elixir function returned an object this worker does not hold");
      return nullptr;
    }
  }

  bool send(const TermPayload& pid, PyObject* message) override {
    msgpack::sbuffer buf;
    try {
      Packer pk(buf);
      pk.pack_array(4);
      pk.pack_uint64(0);
      pk.pack(std::string("send"));
      MsgpackSink sink(pk);
      sink.elixir_term(pid);
      ToElixir<MsgpackSink> walk(sink, ReturnMode::Auto);
      walk.value(message, 0);
    } catch (const PythonException& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
      return false;
    }
    GilRelease release;
    g_server->send(buf.data(), buf.size());
    return true;
  }
};

PortHost g_host;

}  // namespace

Server::Server(int out_fd) : out_fd_(out_fd) {
  if (const char* v = getenv("SNAKEBRIDGE_MAX_REPLY_BYTES"); v && *v) {
    unsigned long long n = strtoull(v, nullptr, 10);
    if (n > 0 && n < kMaxReply) max_reply_ = static_cast<size_t>(n);
  }
  g_server = this;
  set_elixir_host(&g_host);
}

PyCFunction port_output_function(Server* server) {
  g_server = server;
  return emit;
}

void Server::send(const char* data, size_t size) {
  std::vector<Spliced> none;
  write_frame(data, size, none);
}

void Server::send_reply(const msgpack::sbuffer& reply, std::vector<Spliced>& spliced) {
  write_frame(reply.data(), reply.size(), spliced);
  for (const Spliced& s : spliced) release_later(s.owner);
  spliced.clear();
}

void Server::send_now(const char* data, size_t size) {
  std::vector<Spliced> none;
  write_frame(data, size, none, true);
}

void Server::begin_batch() {
  std::lock_guard<std::mutex> lock(write_mu_);
  batcher_ = std::this_thread::get_id();
}

void Server::end_batch() {
  std::lock_guard<std::mutex> lock(write_mu_);
  batcher_ = std::thread::id();
  flush_batch();
}

void Server::flush_batch() {
  if (batch_.empty()) return;
  std::vector<iovec> parts{{batch_.data(), batch_.size()}};
  write_all(parts);
  batch_.clear();
  batch_frames_ = 0;
}

void Server::write_frame(const char* data, size_t size, const std::vector<Spliced>& spliced, bool now) {
  // One write for header and body: a reader woken by the header alone would
  // have to wait again for the rest.
  size_t total = size;
  for (const Spliced& s : spliced) total += s.size;
  std::string header = frame_header(total);
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!now && spliced.empty() && batcher_ == std::this_thread::get_id() &&
      batch_.size() + header.size() + size <= kBatchBytes) {
    batch_.append(header).append(data, size);
    if (++batch_frames_ == kBatchFrames) flush_batch();
    return;
  }
  // (What was gathered goes first, in the same write.)
  std::vector<iovec> parts;
  if (!batch_.empty()) parts.push_back({batch_.data(), batch_.size()});
  parts.push_back({const_cast<char*>(header.data()), header.size()});
  size_t from = 0;
  for (const Spliced& s : spliced) {
    parts.push_back({const_cast<char*>(data + from), s.at - from});
    parts.push_back({const_cast<char*>(s.data), s.size});
    from = s.at;
  }
  parts.push_back({const_cast<char*>(data + from), size - from});
  write_all(parts);
  batch_.clear();
  batch_frames_ = 0;
}

void Server::write_all(std::vector<iovec>& parts) {
  size_t first = 0;
  while (first < parts.size()) {
    int count = static_cast<int>(std::min<size_t>(parts.size() - first, IOV_MAX));
    ssize_t n = ::writev(out_fd_, parts.data() + first, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0);  // the client is gone
    size_t done = static_cast<size_t>(n);
    while (first < parts.size() && done >= parts[first].iov_len) done -= parts[first++].iov_len;
    if (first < parts.size()) {
      parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + done;
      parts[first].iov_len -= done;
    }
  }
}

void Server::send_error(uint64_t id, const char* kind, const std::string& message) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  reply_header(pk, id, "error");
  MsgpackSink sink(pk);
  if (strcmp(kind, "stopping") == 0) {
    sink.atom("stopping");
  } else {
    sink.begin_tuple(2);
    sink.atom("badrequest");
    sink.str(nullptr, message.data(), message.size());
    sink.end_tuple();
  }
  send(buf.data(), buf.size());
}

size_t Server::in_flight() {
  std::lock_guard<std::mutex> lock(running_mu_);
  return running_.size();
}

void Server::on_frame(Frame frame) {
  auto request = std::make_shared<Incoming>();
  request->frame = std::move(frame);
  const Frame& bytes = request->frame;
  if (!claims_fit(bytes.data, bytes.size)) {
    return send_error(frame_id(bytes), "bad_request", "malformed msgpack: arrays and maps claim more elements than the frame holds");
  }
  try {
    size_t offset = 0;
    // Strings, binaries and extensions point into the frame (kept alongside)
    // rather than being copied into the handle's zone.
    auto reference = [](msgpack::type::object_type, size_t, void*) { return true; };
    request->handle = msgpack::unpack(bytes.data, bytes.size, offset, reference, nullptr, kLimits);
    if (offset != bytes.size) {
      return send_error(frame_id(bytes), "bad_request", "a frame must hold exactly one msgpack value");
    }
  } catch (const std::exception& e) {
    // Answered to the request's id when it can be read: its caller must not wait.
    return send_error(frame_id(bytes), "bad_request", std::string("malformed msgpack: ") + e.what());
  }
  const msgpack::object& o = request->handle.get();
  std::string op;
  if (o.type != msgpack::type::ARRAY || o.via.array.size < 2 || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER ||
      !as_text(o.via.array.ptr[1], &op)) {
    return send_error(frame_id(bytes), "bad_request", "a request is [id, op, args...]");
  }
  const auto& a = o.via.array;
  uint64_t id = a.ptr[0].via.u64;

  // Answered here, without the GIL: liveness must not wait behind Python.
  if (op == "ping") {
    msgpack::sbuffer buf;
    Packer pk(buf);
    reply_ok_header(pk, id);
    pk.pack(std::string("pong"));
    return send(buf.data(), buf.size());
  }
  if (op == "release") return each_id(a, [](uint64_t h) { handles().release(h); });
  // [0, "cancel", [request_id...]]: batched by the client when its pipe was full.
  // [0, "answer", slot, answer]: Elixir's answer to a callback, for the
  // Python thread waiting for it (the frame is kept with it).
  if (op == "answer") {
    if (a.size < 4 || a.ptr[2].type != msgpack::type::POSITIVE_INTEGER) return;
    std::shared_ptr<Slot> slot;
    {
      std::lock_guard<std::mutex> lock(g_slots_mu);
      auto it = g_slots.find(a.ptr[2].via.u64);
      if (it == g_slots.end()) return;  // the callback was given up (interrupted)
      slot = it->second;
    }
    slot->answer = &a.ptr[3];
    slot->frame = request;
    slot->answered.store(true, std::memory_order_release);
    slot->wait.notify();
    return;
  }
  if (op == "cancel") return each_id(a, [this](uint64_t r) { cancel(r); });
  if (op == "stats") {
    msgpack::sbuffer buf;
    Packer pk(buf);
    reply_ok_header(pk, id);
    long rss_kb = 0;
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("VmRSS:", 0) == 0) rss_kb = std::stol(line.substr(6));
    }
    pk.pack_map(5);
    pk.pack(std::string("answered_here"));
    pk.pack_uint64(answered_here_.load(std::memory_order_relaxed));
    pk.pack(std::string("handles"));
    pk.pack_uint64(handles().size());
    pk.pack(std::string("requests"));
    pk.pack_uint64(in_flight());
    pk.pack(std::string("threads"));
    pk.pack_uint64(PythonThreads::instance().count());
    pk.pack(std::string("rss_kb"));
    pk.pack_int64(rss_kb);
    return send(buf.data(), buf.size());
  }

  // The client is about to stop this program: requests already read finish,
  // later ones are refused (so a client can retry them elsewhere knowing they
  // never ran), and the reply comes once nothing is in flight.
  if (op == "drain") {
    bool now;
    {
      std::lock_guard<std::mutex> lock(running_mu_);
      draining_ = true;
      now = running_.empty();
      if (!now) drain_reply_id_ = id;
    }
    if (now) reply_drained(id);
    return;
  }

  // Forgotten callers ([0, "forget", [thread...]]): their threads may serve others.
  if (op == "forget") return each_id(a, [this](uint64_t k) { forget(k); });

  if (a.size < 3 || a.ptr[2].type != msgpack::type::POSITIVE_INTEGER || !decode_request(a, op, &request->wire)) {
    return send_error(id, "bad_request", "unknown or malformed request: " + op);
  }
  // [id, "to_array" | "to_columns", thread, target, flag, mode, shared]
  request->shared_replies = (request->wire.op == Op::ToArray || request->wire.op == Op::ToColumns) && a.size > 6 &&
                            a.ptr[6].type == msgpack::type::BOOLEAN && a.ptr[6].via.boolean;
  // Every request of one caller runs on the caller's thread, in arrival order
  // (core/python_threads.hpp); the I/O thread only hands it over. Except a
  // call that cannot tell which thread runs it (core/thread_free.hpp): when
  // nothing else is in Python and its caller has nothing queued, the thread
  // that read it answers it, with no hand-over.
  PythonThread* thread = thread_for(a.ptr[2].via.u64);
  auto running = std::make_shared<Running>();
  {
    std::lock_guard<std::mutex> lock(running_mu_);
    if (draining_) running = nullptr;
    else running_[id] = running;
  }
  if (!running) return send_error(id, "stopping", "the worker is stopping; the request did not run");
  if (thread->queued() == 0 && answer_here(id, *request, *running)) return;
  thread->submit([this, id, request, running] { run(id, request, running); });
}

PythonThread* Server::thread_for(uint64_t key) {
  std::lock_guard<std::mutex> lock(threads_mu_);
  auto it = threads_.find(key);
  if (it != threads_.end()) return it->second;
  PythonThread* thread = PythonThreads::instance().bind();
  threads_.emplace(key, thread);
  return thread;
}

void Server::forget(uint64_t key) {
  std::lock_guard<std::mutex> lock(threads_mu_);
  auto it = threads_.find(key);
  if (it == threads_.end()) return;
  PythonThreads::instance().unbind(it->second);
  threads_.erase(it);
}

void Server::run(uint64_t id, std::shared_ptr<Incoming> request, std::shared_ptr<Running> running) {
  int queued = Running::kQueued;
  if (!running->phase.compare_exchange_strong(queued, Running::kStarted)) return;  // cancelled, answered
  running->tstate.store(this_thread_state());
  Reply out;
  GilTurn turn([&] { return running->interrupted.load(); });
  if (!turn.ok()) {
    // Cancelled while waiting for its turn: it never ran (the client drops
    // the reply of a request it cancelled).
    running->finished = true;
    pack_cancelled(out.body, id);
  } else {
    Gil gil;
    turn.done();
    clear_interrupt();
    respond(id, *request, *running, &out);
  }
  deliver(id, out);
}

bool Server::answer_here(uint64_t id, const Incoming& request, Running& running) {
  MsgpackReader reader;
  if (!thread_free_call(reader, request.wire)) return false;
  // Nothing else in Python or about to be (a Python thread reading the pipe
  // between its caller's requests may hold the GIL itself, kept for the next
  // one), so taking the GIL here waits for nobody.
  bool kept = gil_kept();
  PythonThreads& threads = PythonThreads::instance();
  if (threads.busy() != (kept ? 1 : 0) || threads.queued() != 0 || (!kept && sb_gil_probe() != SB_GIL_FREE)) {
    return false;
  }
  Reply out;
  {
    Gil gil;
    if (thread_free_function(reader.text(request.wire.target), reader.text(request.wire.name)) == nullptr) return false;
    running.phase.store(Running::kStarted);
    running.tstate.store(this_thread_state());
    clear_interrupt();
    NoCollection no_collection;  // not on the thread the protocol waits for
    respond(id, request, running, &out);
  }
  deliver(id, out);
  answered_here_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// GIL held.
void Server::respond(uint64_t id, const Incoming& request, Running& running, Reply* out) {
  msgpack::sbuffer& reply = out->body;
  std::vector<Spliced>& spliced = out->spliced;
  std::vector<SharedOut>& shared = out->shared;
  uint64_t outer_request = std::exchange(t_request, id);
  CurrentRequest current(&running);
  Packer pk(reply);
  std::vector<uint64_t> made;  // handles of the reply, until it is complete
  try {
    InterruptibleScope interruptible;
    MsgpackReader reader;
    Request q = build_request(reader, request.wire);
    Outcome result = execute(q);
    reply_ok_header(pk, id);
    MsgpackSink sink(pk, &made, &reply, &spliced);
    if (request.shared_replies) sink.share_large_arrays(&shared);
    emit_outcome(sink, result, q.mode);
    // A frame states its length in 4 bytes: a larger reply cannot be sent
    // (written anyway, its length would wrap and the client would read the
    // rest of the stream as garbage). Refused as Python would refuse it.
    // (Arrays sent through shared memory count too: the limit bounds what a
    // reply brings to the BEAM, SNAKEBRIDGE_MAX_REPLY_BYTES included.)
    size_t total = reply.size();
    for (const Spliced& s : spliced) total += s.size;
    for (const SharedOut& s : shared) total += s.size;
    if (total > max_reply_) {
      PyErr_Format(PyExc_OverflowError,
                   "the reply is %zu bytes, more than a port worker can send (%zu): keep the value in the "
                   "worker (return: :ref) and take it in parts, or call it in-process",
                   total, max_reply_);
      throw_python_error();
    }
  } catch (...) {
    // The one place where a failure becomes the port's [id, "error", reason].
    // A reply abandoned half way never reaches the client: the handles made
    // for it would never be released.
    for (uint64_t h : made) handles().release(h);
    for (const Spliced& s : spliced) Py_DECREF(s.owner);
    spliced.clear();
    discard_shared_arrays(shared);
    reply.clear();
    reply_header(pk, id, "error");
    MsgpackSink sink(pk);
    emit_current_failure(sink, [&](const Refusal& e) { pack_refusal(pk, e); });
  }
  if (PyErr_Occurred()) PyErr_Clear();
  t_request = outer_request;
  running.finished = true;
}

void Server::deliver(uint64_t id, Reply& out) {
  // The reply goes out before the request leaves running_: a "drained" reply
  // sent by whichever request finishes last then always follows every reply.
  // The shared objects are filled before the reply naming them goes out.
  write_shared_arrays(out.shared);
  send_reply(out.body, out.spliced);
  finished(id);
  // Objects the client let go of (and the arrays this reply was written
  // from) are dropped once the caller has its reply, not before: their
  // finalizers are not on its path. (The GIL is usually still this thread's:
  // kept between requests, PythonThread::serve.)
  if (pending_releases() > 0) {
    Gil gil;
    drain_released(256);
  }
}

void Server::finished(uint64_t id) {
  uint64_t drained = 0;
  {
    std::lock_guard<std::mutex> lock(running_mu_);
    running_.erase(id);
    if (running_.empty() && drain_reply_id_ != 0) std::swap(drained, drain_reply_id_);
  }
  if (drained != 0) reply_drained(drained);
}

void Server::reply_drained(uint64_t id) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  reply_ok_header(pk, id);
  pk.pack(std::string("drained"));
  send(buf.data(), buf.size());
}

void Server::cancel(uint64_t id) {
  std::shared_ptr<Running> running;
  {
    std::lock_guard<std::mutex> lock(running_mu_);
    auto it = running_.find(id);
    if (it == running_.end()) return;  // already answered
    running = it->second;
  }
  // Not started yet (queued behind its caller's other requests): answered now,
  // and skipped by its thread; it costs nothing more, and never a kill.
  int queued = Running::kQueued;
  if (running->phase.compare_exchange_strong(queued, Running::kCancelled)) {
    running->finished = true;
    msgpack::sbuffer reply;
    pack_cancelled(reply, id);
    send(reply.data(), reply.size());
    finished(id);
    return;
  }
  // Running: the client starts its grace (and kills the program if the
  // request has not answered by then).
  msgpack::sbuffer notice;
  Packer pk(notice);
  pk.pack_array(3);
  pk.pack_uint64(0);
  pk.pack(std::string("interrupting"));
  pk.pack_uint64(id);
  send(notice.data(), notice.size());
  interrupt_until_finished(std::move(running));
}

}  // namespace sb::port
