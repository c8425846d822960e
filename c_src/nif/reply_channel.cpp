#include "reply_channel.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <climits>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../core/spin.hpp"
#include "../port/framing.hpp"
#include "atoms.hpp"
#include "boundary.hpp"
#include "reply_frames.hpp"

namespace sb::nif {
namespace {

ErlNifResourceType* g_channel_type = nullptr;
ErlNifResourceType* g_frame_type = nullptr;

// A request whose reply is expected: where its frames go.
struct Entry {
  ErlNifPid dest;       // a local process: the caller, or the worker relaying for a remote one
  ErlNifEnv* env;       // holds ref and owner
  ERL_NIF_TERM ref;     // the caller's alias for the request
  ERL_NIF_TERM owner;   // the process the request is for (maybe on another node)
  bool routed = false;  // callbacks go to `route` (the call's callback runner)
  ErlNifPid route;
  bool notified = false;  // an output notice or a callback was sent for it
};

struct Channel {
  // The table of expected requests.
  std::mutex mu;
  std::unordered_map<uint64_t, Entry> pending;
  std::vector<ErlNifEnv*> spare_envs;
  uint64_t calls = 0;
  uint64_t max_calls = 0;  // 0: no limit
  // The FIFO and the frames read from it: one reader at a time (the worker,
  // or a caller polling for its reply).
  std::mutex read_mu;
  int fd = -1;
  sb::port::FrameReader frames;
  ErlNifPid worker;
  std::atomic<uint64_t> polled{0};   // replies a caller took itself
  std::atomic<uint64_t> routed{0};   // replies sent to their callers
  std::atomic<uint64_t> batches{0};  // reads on the worker's readiness notices
  // The request FIFO (channel_requests): every frame for the program, written
  // here in the order the writers take write_mu; what the pipe does not take
  // at once waits in `queue`, flushed by the next writer or by the worker on
  // its readiness notice.
  std::mutex write_mu;
  int wfd = -1;
  ErlNifIOQueue* queue = nullptr;
  uint64_t written = 0;  // bytes the program's pipe took
  bool write_watched = false;  // ever given to enif_select
  // A reader of the request FIFO of our own until a read of the reply FIFO
  // finds the program's end of it open (the program opens the request FIFO
  // first, docs/protocol.md): the FIFO opens for writing
  // before the program starts, and once the program is gone, writes fail
  // (EPIPE: :closed) instead of filling a pipe nobody reads.
  std::atomic<int> placeholder_fd{-1};
  // The worker process is gone (the channel monitors it): nothing more is
  // written, and callers learn it at once (as a closed port told them).
  std::atomic<bool> worker_gone{false};
  // Ids of the worker's handles the BEAM garbage-collected (port_handle.cpp),
  // until the worker takes them (channel_take_releases).
  std::mutex release_mu;
  std::vector<uint64_t> releases;

  ErlNifEnv* take_env() {
    if (spare_envs.empty()) return enif_alloc_env();
    ErlNifEnv* e = spare_envs.back();
    spare_envs.pop_back();
    return e;
  }
  void give_env(ErlNifEnv* e) {
    if (spare_envs.size() < 64) {
      enif_clear_env(e);
      spare_envs.push_back(e);
    } else {
      enif_free_env(e);
    }
  }
};

void channel_dtor(ErlNifEnv*, void* p) {
  auto* c = static_cast<Channel*>(p);
  for (auto& [id, e] : c->pending) enif_free_env(e.env);
  for (ErlNifEnv* e : c->spare_envs) enif_free_env(e);
  if (c->fd >= 0) close(c->fd);
  if (c->wfd >= 0) close(c->wfd);
  if (int fd = c->placeholder_fd.exchange(-1); fd >= 0) close(fd);
  if (c->queue != nullptr) enif_ioq_destroy(c->queue);
  c->~Channel();
}

// After enif_select(STOP): the BEAM no longer watches the descriptor.
void channel_stop(ErlNifEnv*, void* p, ErlNifEvent fd, int) {
  auto* c = static_cast<Channel*>(p);
  {
    std::lock_guard<std::mutex> lock(c->read_mu);
    if (c->fd == static_cast<int>(fd)) {
      close(c->fd);
      c->fd = -1;
      return;
    }
  }
  // The request FIFO's descriptor, let go of by close_requests.
  close(static_cast<int>(fd));
}

// The worker process is gone: writers get :closed from now on.
// (SnakeBridge.Workers, told too, sends the crash notices and closes the FIFOs.)
void channel_down(ErlNifEnv*, void* p, ErlNifPid*, ErlNifMonitor*) {
  static_cast<Channel*>(p)->worker_gone.store(true);
}

struct FrameBuffer {
  sb::port::Buffer buffer;
};
void frame_dtor(ErlNifEnv*, void* p) { static_cast<FrameBuffer*>(p)->~FrameBuffer(); }

Channel* get_channel(ErlNifEnv* env, Term t) {
  void* p;
  if (!enif_get_resource(env, t, g_channel_type, &p)) throw ArgumentError("expected a reply channel");
  return static_cast<Channel*>(p);
}

// A frame as a binary: a large one keeps the buffer it was read into.
ERL_NIF_TERM frame_binary(ErlNifEnv* env, sb::port::Frame& f) {
  if (f.size >= sb::port::FrameReader::kHandOverAtLeast) {
    auto* r = new (enif_alloc_resource(g_frame_type, sizeof(FrameBuffer))) FrameBuffer{std::move(f.owner)};
    ERL_NIF_TERM t = enif_make_resource_binary(env, r, f.data, f.size);
    enif_release_resource(r);
    return t;
  }
  ERL_NIF_TERM t;
  unsigned char* buf = enif_make_new_binary(env, f.size, &t);
  if (f.size > 0) memcpy(buf, f.data, f.size);
  return t;
}

ERL_NIF_TERM binary(ErlNifEnv* env, std::string_view s) {
  ERL_NIF_TERM t;
  unsigned char* buf = enif_make_new_binary(env, s.size(), &t);
  if (!s.empty()) memcpy(buf, s.data(), s.size());
  return t;
}

// Sends each frame read where it belongs, from a NIF call (a scheduler
// thread; `env` is the calling process's). The worker reading keeps its own
// frames as a list it handles on return; a caller polling sends them to it,
// and keeps its own reply.
class Dispatch {
 public:
  Dispatch(ErlNifEnv* env, Channel* c, bool by_worker, uint64_t own)
      : env_(env), c_(c), by_worker_(by_worker), own_(own), kept_(enif_make_list(env, 0)) {
    enif_self(env, &self_);
  }

  void frame(sb::port::Frame& f) {
    RoutedFrame r = route_frame(f.data, f.size);
    switch (r.kind) {
      case RoutedFrame::Kind::Reply: return reply(r.id, f);
      case RoutedFrame::Kind::Output: return output(r, f);
      case RoutedFrame::Kind::Callback: return callback(r.id, f);
      case RoutedFrame::Kind::Other: return to_worker(enif_make_tuple2(env_, atoms.snakebridge_notice, frame_binary(env_, f)));
    }
  }

  ERL_NIF_TERM own_reply() const { return own_reply_; }
  // Whether anything else for the own request was sent to its caller before
  // its reply (by whichever reader): then those messages are in its mailbox.
  bool own_notified() const { return own_notified_; }
  // Whether a frame went to the calling process (an output notice, a callback).
  bool sent_to_self() const { return sent_to_self_; }
  // The worker's frames, in the order read (then `last`, if given).
  ERL_NIF_TERM kept(ERL_NIF_TERM last = 0) {
    ERL_NIF_TERM rev = last ? enif_make_list_cell(env_, last, kept_) : kept_;
    ERL_NIF_TERM out;
    enif_make_reverse_list(env_, rev, &out);
    return out;
  }

 private:
  // Taken out of the table under the lock and sent after it: a caller whose
  // channel_forget finds it gone knows its reply is on its way.
  void reply(uint64_t id, sb::port::Frame& f) {
    Entry e{};
    {
      std::lock_guard<std::mutex> lock(c_->mu);
      auto it = c_->pending.find(id);
      if (it == c_->pending.end()) {
        e.env = nullptr;
      } else {
        e = it->second;
        c_->pending.erase(it);
      }
    }
    if (e.env == nullptr) {
      return to_worker(enif_make_tuple3(env_, atoms.snakebridge_unclaimed, enif_make_uint64(env_, id), frame_binary(env_, f)));
    }
    if (id == own_) {
      own_reply_ = frame_binary(env_, f);
      own_notified_ = e.notified;
      c_->polled.fetch_add(1, std::memory_order_relaxed);
    } else {
      ERL_NIF_TERM inner = enif_make_tuple3(env_, atoms.frame, frame_binary(env_, f), enif_make_pid(env_, &c_->worker));
      send(e.dest, enif_make_tuple2(env_, enif_make_copy(env_, e.ref), inner));
      c_->routed.fetch_add(1, std::memory_order_relaxed);
    }
    std::lock_guard<std::mutex> lock(c_->mu);
    c_->give_env(e.env);
  }

  // Sent under the lock: nothing for a forgotten request comes after.
  void output(const RoutedFrame& r, sb::port::Frame& f) {
    std::unique_lock<std::mutex> lock(c_->mu);
    auto it = r.id ? c_->pending.find(r.id) : c_->pending.end();
    if (it == c_->pending.end()) {
      lock.unlock();
      return to_worker(enif_make_tuple2(env_, atoms.snakebridge_notice, frame_binary(env_, f)));
    }
    ERL_NIF_TERM msg = enif_make_tuple4(env_, atoms.snakebridge_output, enif_make_copy(env_, it->second.ref),
                                        r.stderr_stream ? atoms.stderr_ : atoms.stdout_, binary(env_, r.text));
    it->second.notified = true;
    send(it->second.dest, msg);
  }

  void callback(uint64_t id, sb::port::Frame& f) {
    std::unique_lock<std::mutex> lock(c_->mu);
    auto it = id ? c_->pending.find(id) : c_->pending.end();
    if (it == c_->pending.end()) {
      lock.unlock();
      return to_worker(enif_make_tuple2(env_, atoms.snakebridge_notice, frame_binary(env_, f)));
    }
    Entry& e = it->second;
    ERL_NIF_TERM msg = enif_make_tuple4(env_, atoms.snakebridge_port_callback, enif_make_copy(env_, e.ref),
                                        frame_binary(env_, f), enif_make_pid(env_, &c_->worker));
    e.notified = true;
    send(e.routed ? e.route : e.dest, msg);
  }

  void to_worker(ERL_NIF_TERM msg) {
    if (by_worker_) kept_ = enif_make_list_cell(env_, msg, kept_);
    else send(c_->worker, msg);
  }

  void send(ErlNifPid to, ERL_NIF_TERM msg) {
    if (enif_compare_pids(&to, &self_) == 0) sent_to_self_ = true;
    enif_send(env_, &to, nullptr, msg);
  }

  ErlNifEnv* env_;
  ErlNifPid self_;
  bool sent_to_self_ = false;
  Channel* c_;
  bool by_worker_;
  uint64_t own_;
  ERL_NIF_TERM own_reply_ = 0;
  bool own_notified_ = false;
  ERL_NIF_TERM kept_;
};

enum class Read { Drained, Eof, More };

// Reads what is there (under read_mu) and dispatches every whole frame, until
// the FIFO is empty, or `budget` bytes were read (more may be waiting).
// read() returning 0 means no writer: before the program opened the FIFO, or
// after it exited; only the worker's readiness notice tells the second (the
// BEAM reports a FIFO with no writer yet as not readable).
Read read_frames(Channel* c, Dispatch& d, size_t budget) {
  size_t total = 0;
  for (;;) {
    if (c->fd < 0) return Read::Eof;
    size_t room;
    char* dst = c->frames.space(&room);
    ssize_t n = read(c->fd, dst, room);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return Read::Eof;
    // The program has this FIFO open (it opened its request FIFO first).
    if (c->placeholder_fd.load(std::memory_order_relaxed) >= 0) {
      if (int fd = c->placeholder_fd.exchange(-1); fd >= 0) close(fd);
    }
    if (n < 0) return errno == EAGAIN ? Read::Drained : Read::Eof;
    c->frames.commit(static_cast<size_t>(n));
    for (;;) {
      sb::port::Frame f;
      uint64_t size;
      auto next = c->frames.next(&f, &size);
      if (next == sb::port::FrameReader::Next::NeedMore) break;
      if (next == sb::port::FrameReader::Next::Frame) d.frame(f);
    }
    total += static_cast<size_t>(n);
    if (total >= budget) return Read::More;
  }
}

// reply_channel(path, max_calls) -> channel: makes the FIFO at `path` (mode
// 0600; the program unlinks it once open) and watches it for the calling
// process (the worker): {:select, channel, :undefined, :ready_input}.
Term reply_channel(ErlNifEnv* env, std::string path, uint64_t max_calls) {
  if (mkfifo(path.c_str(), 0600) != 0) throw ArgumentError("mkfifo " + path + ": " + strerror(errno));
  // Not blocking: there is no writer yet (the program is started next).
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    unlink(path.c_str());
    throw ArgumentError("open " + path + ": " + strerror(err));
  }
  fcntl(fd, F_SETPIPE_SZ, 1 << 20);  // as the program's pipes (best effort)
  auto* c = new (enif_alloc_resource(g_channel_type, sizeof(Channel))) Channel();
  c->fd = fd;
  c->max_calls = max_calls;
  enif_self(env, &c->worker);
  ErlNifMonitor mon;
  enif_monitor_process(env, c, &c->worker, &mon);
  ERL_NIF_TERM t = enif_make_resource(env, c);
  if (enif_select(env, fd, ERL_NIF_SELECT_READ, c, nullptr, atoms.undefined) < 0) {
    unlink(path.c_str());
    enif_release_resource(c);
    throw ArgumentError("enif_select failed");
  }
  enif_release_resource(c);
  return t;
}

// channel_read(channel) -> the worker's frames ({:snakebridge_unclaimed, id,
// frame} | {:snakebridge_notice, frame}), plus :more when more may be waiting
// (call again) or :eof when the program closed its end. Called by the worker
// on its readiness notice; watches again unless at :eof or :more.
Term channel_read(ErlNifEnv* env, Term chan) {
  Channel* c = get_channel(env, chan);
  uint64_t t0 = sb::monotonic_ns();
  std::lock_guard<std::mutex> lock(c->read_mu);
  Dispatch d(env, c, true, 0);
  // (At most 4 MiB a call: a large reply does not hold the scheduler.)
  Read r = read_frames(c, d, size_t(4) << 20);
  c->batches.fetch_add(1, std::memory_order_relaxed);
  if (r == Read::Drained) enif_select(env, c->fd, ERL_NIF_SELECT_READ, c, nullptr, atoms.undefined);
  consume_timeslice_since(env, t0);
  if (r == Read::Drained) return d.kept();
  return d.kept(r == Read::More ? atoms.more : atoms.eof);
}

// channel_poll(channel, id, max_us) -> {:frame, frame} | {:frame, frame, :sent}
// | :sent | :wait. A
// caller whose request `id` is the only one about (or one of two) reads the
// FIFO itself for up to max_us, while nobody else reads it: a quick reply then
// reaches it with no process woken on the way. Whatever else it reads goes
// where it belongs. :sent: a frame went to the caller itself (its request's
// output or callback, in its mailbox now); :wait: the reply comes as a
// message. A callback runner polls with id 0 for the next callback.
Term poll_for(ErlNifEnv* env, Channel* c, uint64_t id, uint64_t max_us) {
  {
    std::lock_guard<std::mutex> lock(c->mu);
    if (c->pending.size() > 2) return atoms.wait;
  }
  std::unique_lock<std::mutex> lock(c->read_mu, std::try_to_lock);
  if (!lock.owns_lock() || c->fd < 0) return atoms.wait;
  uint64_t t0 = sb::monotonic_ns();
  uint64_t until = t0 + max_us * 1000;
  Dispatch d(env, c, false, id);
  for (;;) {
    Read r = read_frames(c, d, size_t(1) << 20);
    uint64_t now = sb::monotonic_ns();
    if (d.own_reply() != 0 || d.sent_to_self() || r == Read::More || now >= until) break;
    // Past the first microseconds the core goes to whoever else is ready: on
    // a busy machine, often the program's thread that is to reply. (Not
    // sb::poll_pause: stopping here on a busy machine made loaded calls
    // slower, docs/benchmarks.md.)
    if (now - t0 < 3'000) sb::cpu_relax();
    else sched_yield();
  }
  consume_timeslice_since(env, t0);
  if (d.own_reply() != 0) {
    // {:frame, reply}: nothing else for the request is in the caller's
    // mailbox, which it then need not search (a search goes through every
    // message there, however many); {:frame, reply, :sent}: output notices or
    // callbacks for it came first, as messages.
    if (d.own_notified() || d.sent_to_self()) return enif_make_tuple3(env, atoms.frame, d.own_reply(), atoms.sent);
    return enif_make_tuple2(env, atoms.frame, d.own_reply());
  }
  return d.sent_to_self() ? atoms.sent : atoms.wait;
}

Term channel_poll(ErlNifEnv* env, Term chan, uint64_t id, uint64_t max_us) {
  return poll_for(env, get_channel(env, chan), id, max_us);
}

// ------------------------------------------------------------- requests

// Past this many bytes waiting, a writer is told :busy and nothing is queued
// (as a port with {:nosuspend} says false): a frozen or swamped program's
// pipe fills and then its callers back off, until their deadlines.
constexpr size_t kBusyAt = size_t(64) << 10;

// Writes what waits, without blocking (under write_mu). False: the program's
// end is gone (the descriptor is closed, or the write failed for good).
bool flush_queue(Channel* c) {
  while (enif_ioq_size(c->queue) > 0) {
    int count = 0;
    SysIOVec* iov = enif_ioq_peek(c->queue, &count);
    ssize_t n = writev(c->wfd, reinterpret_cast<struct iovec*>(iov), count < IOV_MAX ? count : IOV_MAX);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN;
    enif_ioq_deq(c->queue, static_cast<size_t>(n), nullptr);
    c->written += static_cast<uint64_t>(n);
  }
  return true;
}

// Asks for the worker's {:select, channel, :undefined, :ready_output} once
// the pipe has room for what waits.
void watch_writable(ErlNifEnv* env, Channel* c) {
  if (enif_ioq_size(c->queue) == 0) return;
  c->write_watched = true;
  enif_select(env, c->wfd, ERL_NIF_SELECT_WRITE, c, &c->worker, atoms.undefined);
}

// The program is gone (or the channel closes): nothing more is written, what
// waits is dropped. (Under write_mu.)
void close_requests(ErlNifEnv* env, Channel* c) {
  if (c->wfd < 0) return;
  int fd = c->wfd;
  c->wfd = -1;
  size_t left = enif_ioq_size(c->queue);
  if (left > 0) enif_ioq_deq(c->queue, left, nullptr);
  // (A descriptor the BEAM watched is closed by the stop callback.)
  if (c->write_watched) enif_select(env, fd, ERL_NIF_SELECT_STOP, c, nullptr, atoms.undefined);
  else close(fd);
}

// channel_requests(channel, path) -> :ok: makes the request FIFO at `path`
// (mode 0600; the program unlinks it once open). Opened for reading and
// writing, so that it opens before the program does and never blocks; the
// program learns that the BEAM is gone from its fd 3 (docs/protocol.md).
Term channel_requests(ErlNifEnv* env, Term chan, std::string path) {
  Channel* c = get_channel(env, chan);
  if (mkfifo(path.c_str(), 0600) != 0) throw ArgumentError("mkfifo " + path + ": " + strerror(errno));
  int placeholder = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  int fd = placeholder < 0 ? -1 : open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (placeholder >= 0) close(placeholder);
    unlink(path.c_str());
    throw ArgumentError("open " + path + ": " + strerror(err));
  }
  fcntl(fd, F_SETPIPE_SZ, 1 << 20);  // as the program's other pipes (best effort)
  std::lock_guard<std::mutex> lock(c->write_mu);
  if (c->wfd >= 0 || c->queue != nullptr) {
    close(fd);
    close(placeholder);
    unlink(path.c_str());
    throw ArgumentError("the channel has its request FIFO already");
  }
  c->queue = enif_ioq_create(ERL_NIF_IOQ_NORMAL);
  c->wfd = fd;
  c->placeholder_fd.store(placeholder);
  return atoms.ok;
}

// The frame's bytes: a binary, or a list of binaries (a large frame, from
// :erlang.iolist_to_iovec/1: its large binaries are queued, not copied), or
// any other iodata (copied: a small frame).
struct FrameData {
  ErlNifBinary bin{};
  ErlNifIOVec* vec = nullptr;
  size_t size = 0;
};

FrameData frame_data(ErlNifEnv* env, ERL_NIF_TERM data, ErlNifIOVec* vec_buf) {
  FrameData d;
  if (enif_inspect_binary(env, data, &d.bin)) {
    d.size = d.bin.size;
    return d;
  }
  ERL_NIF_TERM tail;
  ErlNifIOVec* vec = vec_buf;
  if (enif_is_list(env, data) && enif_inspect_iovec(env, SIZE_MAX, data, &tail, &vec) && enif_is_empty_list(env, tail)) {
    d.vec = vec;
    d.size = vec->size;
    return d;
  }
  if (!enif_inspect_iolist_as_binary(env, data, &d.bin)) throw ArgumentError("a frame must be iodata");
  d.size = d.bin.size;
  return d;
}

// Queues the frame's bytes from `skip` on (under write_mu).
void enqueue(Channel* c, const unsigned char* header, size_t header_skip, FrameData& d, size_t skip) {
  if (header_skip < 4) {
    ErlNifBinary h;
    enif_alloc_binary(4 - header_skip, &h);
    memcpy(h.data, header + header_skip, 4 - header_skip);
    enif_ioq_enq_binary(c->queue, &h, 0);
  }
  if (skip >= d.size) return;
  if (d.vec != nullptr) {
    enif_ioq_enqv(c->queue, d.vec, skip);
  } else {
    ErlNifBinary rest;
    enif_alloc_binary(d.size - skip, &rest);
    memcpy(rest.data, d.bin.data + skip, d.size - skip);
    enif_ioq_enq_binary(c->queue, &rest, 0);
  }
}

// channel_send(channel, frame) -> :ok | :busy | :closed. The frame (without
// its 4-byte length, added here) goes to the program's request FIFO: at once
// when nothing waits, in one writev; what the pipe does not take waits, in
// order. :busy: too much waits already, and nothing was queued. :closed: the
// program is gone.
Term send_frame(ErlNifEnv* env, Channel* c, ERL_NIF_TERM data) {
  ErlNifIOVec vec_buf;
  FrameData d = frame_data(env, data, &vec_buf);
  if (d.size > UINT32_MAX) throw ArgumentError("a frame of over 4 GiB");
  unsigned char header[4] = {static_cast<unsigned char>(d.size >> 24), static_cast<unsigned char>(d.size >> 16),
                             static_cast<unsigned char>(d.size >> 8), static_cast<unsigned char>(d.size)};
  std::lock_guard<std::mutex> lock(c->write_mu);
  if (c->wfd < 0 || c->worker_gone.load(std::memory_order_relaxed)) return atoms.closed;
  if (enif_ioq_size(c->queue) > 0) {
    if (enif_ioq_size(c->queue) >= kBusyAt) return atoms.busy;
    enqueue(c, header, 0, d, 0);
    if (!flush_queue(c)) {
      close_requests(env, c);
      return atoms.closed;
    }
    watch_writable(env, c);
    return atoms.ok;
  }
  // Nothing waits: straight into the pipe (the first kDirect pieces of a
  // list of binaries; the rest is queued).
  constexpr int kDirect = 64;
  struct iovec iov[kDirect + 1];
  int count = 0;
  iov[count++] = {header, 4};
  if (d.vec == nullptr) {
    if (d.size > 0) iov[count++] = {d.bin.data, d.size};
  } else {
    for (int i = 0; i < d.vec->iovcnt && count <= kDirect; ++i) iov[count++] = {d.vec->iov[i].iov_base, d.vec->iov[i].iov_len};
  }
  ssize_t n;
  do {
    n = writev(c->wfd, iov, count);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN) {
    close_requests(env, c);
    return atoms.closed;
  }
  size_t done = n < 0 ? 0 : static_cast<size_t>(n);
  c->written += done;
  if (done == 4 + d.size) return atoms.ok;
  enqueue(c, header, done < 4 ? done : 4, d, done < 4 ? 0 : done - 4);
  watch_writable(env, c);
  return atoms.ok;
}

Term channel_send(ErlNifEnv* env, Term chan, Term data) { return send_frame(env, get_channel(env, chan), data); }

// channel_flush(channel) -> :ok | :closed: on the worker's :ready_output.
Term channel_flush(ErlNifEnv* env, Term chan) {
  Channel* c = get_channel(env, chan);
  std::lock_guard<std::mutex> lock(c->write_mu);
  if (c->wfd < 0) return atoms.closed;
  if (!flush_queue(c)) {
    close_requests(env, c);
    return atoms.closed;
  }
  watch_writable(env, c);
  return atoms.ok;
}

// channel_output(channel) -> {bytes the program's pipe took, bytes waiting}.
Term channel_output(ErlNifEnv* env, Term chan) {
  Channel* c = get_channel(env, chan);
  std::lock_guard<std::mutex> lock(c->write_mu);
  size_t waiting = c->queue != nullptr ? enif_ioq_size(c->queue) : 0;
  return enif_make_tuple2(env, enif_make_uint64(env, c->written), enif_make_uint64(env, waiting));
}

// channel_expect(channel, id, dest, ref, owner) -> :ok | :drain (this request
// reaches the worker's max_calls).
bool expect(Channel* c, uint64_t id, ErlNifPid dest, ERL_NIF_TERM ref, ERL_NIF_TERM owner);

Term channel_expect(ErlNifEnv* env, Term chan, uint64_t id, ErlNifPid dest, Term ref, Term owner) {
  return expect(get_channel(env, chan), id, dest, ref, owner) ? atoms.drain : atoms.ok;
}

// Registers request `id`; true when it reaches the worker's max_calls.
bool expect(Channel* c, uint64_t id, ErlNifPid dest, ERL_NIF_TERM ref, ERL_NIF_TERM owner) {
  std::lock_guard<std::mutex> lock(c->mu);
  ErlNifEnv* e = c->take_env();
  Entry entry{dest, e, enif_make_copy(e, ref), enif_make_copy(e, owner)};
  auto [it, fresh] = c->pending.emplace(id, entry);
  if (!fresh) {
    c->give_env(e);
    throw ArgumentError("request id already expected");
  }
  ++c->calls;
  return c->max_calls != 0 && c->calls == c->max_calls;
}

// Forgets request `id`: true if it was still expected.
bool forget(Channel* c, uint64_t id) {
  std::lock_guard<std::mutex> lock(c->mu);
  auto it = c->pending.find(id);
  if (it == c->pending.end()) return false;
  c->give_env(it->second.env);
  c->pending.erase(it);
  return true;
}

// channel_call(channel, id, ref, frame, max_us): a local caller's request in
// one call: registered (for the calling process, its replies tagged `ref`),
// written (channel_send), then polled for as channel_poll does (max_us 0:
// not). -> as channel_poll, or, the request not written (and
// forgotten): :busy | :closed (the program is gone; :closed_notified: its
// crash notice was sent to `ref` already). When this request reaches the
// worker's max_calls: {:drain, that}.
Term channel_call(ErlNifEnv* env, Term chan, uint64_t id, Term ref, Term frame, uint64_t max_us) {
  Channel* c = get_channel(env, chan);
  ErlNifPid self;
  enif_self(env, &self);
  ERL_NIF_TERM self_term = enif_make_pid(env, &self);
  bool drain = expect(c, id, self, ref, self_term);
  ERL_NIF_TERM sent = send_frame(env, c, frame);
  ERL_NIF_TERM result;
  if (sent != atoms.ok) result = forget(c, id) ? sent : atoms.closed_notified;
  else if (max_us > 0) result = poll_for(env, c, id, max_us);
  else result = atoms.wait;
  return drain ? enif_make_tuple2(env, atoms.drain, result) : result;
}

// channel_route(channel, id, runner) -> whether request `id` is still expected.
Term channel_route(ErlNifEnv* env, Term chan, uint64_t id, ErlNifPid runner) {
  Channel* c = get_channel(env, chan);
  std::lock_guard<std::mutex> lock(c->mu);
  auto it = c->pending.find(id);
  if (it == c->pending.end()) return atoms.false_;
  it->second.routed = true;
  it->second.route = runner;
  return atoms.true_;
}

// channel_forget(channel, id) -> true: nothing more for it will be sent;
// false: its reply was taken (it is on its way), or it was never expected.
Term channel_forget(ErlNifEnv* env, Term chan, uint64_t id) {
  return forget(get_channel(env, chan), id) ? atoms.true_ : atoms.false_;
}

// Forgets the requests matching `match` (under the lock); their ids.
template <class Match>
Term forget_where(ErlNifEnv* env, Channel* c, Match match) {
  std::lock_guard<std::mutex> lock(c->mu);
  ERL_NIF_TERM ids = enif_make_list(env, 0);
  for (auto it = c->pending.begin(); it != c->pending.end();) {
    if (match(it->second)) {
      ids = enif_make_list_cell(env, enif_make_uint64(env, it->first), ids);
      c->give_env(it->second.env);
      it = c->pending.erase(it);
    } else {
      ++it;
    }
  }
  return ids;
}

// channel_forget_owner(channel, owner) -> the ids of `owner`'s requests, forgotten.
Term channel_forget_owner(ErlNifEnv* env, Term chan, Term owner) {
  return forget_where(env, get_channel(env, chan), [&](const Entry& e) { return enif_compare(e.owner, owner) == 0; });
}

// channel_forget_ref(channel, ref) -> the ids of the requests of alias `ref`, forgotten.
Term channel_forget_ref(ErlNifEnv* env, Term chan, Term ref) {
  return forget_where(env, get_channel(env, chan), [&](const Entry& e) { return enif_compare(e.ref, ref) == 0; });
}

// channel_take_all(channel) -> [{dest, ref}]: every request still expected,
// forgotten, and the request FIFO closed (the program is gone).
Term channel_take_all(ErlNifEnv* env, Term chan) {
  Channel* c = get_channel(env, chan);
  std::lock_guard<std::mutex> lock(c->mu);
  ERL_NIF_TERM out = enif_make_list(env, 0);
  for (auto& [id, e] : c->pending) {
    ERL_NIF_TERM item = enif_make_tuple2(env, enif_make_pid(env, &e.dest), enif_make_copy(env, e.ref));
    out = enif_make_list_cell(env, item, out);
    c->give_env(e.env);
  }
  c->pending.clear();
  // Nothing is written to a program that is gone: a writer now gets :closed
  // (its request never ran), as a port closed raises.
  std::lock_guard<std::mutex> wlock(c->write_mu);
  close_requests(env, c);
  return out;
}

// channel_info(channel) -> %{pending:, calls:, polled:, routed:, batches:}
Term channel_info(ErlNifEnv* env, Term chan) {
  Channel* c = get_channel(env, chan);
  uint64_t pending, calls;
  {
    std::lock_guard<std::mutex> lock(c->mu);
    pending = c->pending.size();
    calls = c->calls;
  }
  ERL_NIF_TERM keys[] = {enif_make_atom(env, "pending"), enif_make_atom(env, "calls"), enif_make_atom(env, "polled"),
                         enif_make_atom(env, "routed"), enif_make_atom(env, "batches")};
  ERL_NIF_TERM values[] = {enif_make_uint64(env, pending), enif_make_uint64(env, calls),
                           enif_make_uint64(env, c->polled.load()), enif_make_uint64(env, c->routed.load()),
                           enif_make_uint64(env, c->batches.load())};
  ERL_NIF_TERM map;
  enif_make_map_from_arrays(env, keys, values, 5, &map);
  return map;
}

// channel_close(channel): the FIFOs are no longer watched, and closed.
void channel_close(ErlNifEnv* env, Term chan) {
  Channel* c = get_channel(env, chan);
  int fd;
  {
    std::lock_guard<std::mutex> lock(c->read_mu);
    fd = c->fd;
  }
  if (fd >= 0) enif_select(env, fd, ERL_NIF_SELECT_STOP, c, nullptr, atoms.undefined);
  std::lock_guard<std::mutex> wlock(c->write_mu);
  close_requests(env, c);
}

// channel_take_releases(channel) -> the ids of collected handles gathered
// since the last take.
Term channel_take_releases(ErlNifEnv* env, Term chan) {
  Channel* c = get_channel(env, chan);
  std::vector<uint64_t> ids;
  {
    std::lock_guard<std::mutex> lock(c->release_mu);
    ids.swap(c->releases);
  }
  ERL_NIF_TERM list = enif_make_list(env, 0);
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) list = enif_make_list_cell(env, enif_make_uint64(env, *it), list);
  return list;
}

}  // namespace

void* keep_channel(ErlNifEnv* env, Term chan, ErlNifPid* worker) {
  Channel* c = get_channel(env, chan);
  enif_keep_resource(c);
  *worker = c->worker;
  return c;
}

void release_into(void* channel, uint64_t id) {
  auto* c = static_cast<Channel*>(channel);
  size_t waiting = 0;
  if (!c->worker_gone.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lock(c->release_mu);
    c->releases.push_back(id);
    waiting = c->releases.size();
  }
  // The worker hears of the first id of a batch, and of every kReleaseNotice
  // more (it then writes the batch at once, not after its wait).
  if (waiting == 1 || (waiting > 0 && waiting % kReleaseNotice == 0)) {
    ErlNifEnv* msg_env = enif_alloc_env();
    enif_send(nullptr, &c->worker, msg_env,
              enif_make_tuple2(msg_env, atoms.snakebridge_releases, enif_make_uint64(msg_env, waiting)));
    enif_free_env(msg_env);
  }
  enif_release_resource(c);
}

void open_reply_channel_type(ErlNifEnv* env) {
  auto flags = static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER);
  ErlNifResourceTypeInit init = {};
  init.dtor = channel_dtor;
  init.stop = channel_stop;
  init.down = channel_down;
  g_channel_type = enif_open_resource_type_x(env, "snakebridge_reply_channel", &init, flags, nullptr);
  g_frame_type = enif_open_resource_type(env, nullptr, "snakebridge_reply_frame", frame_dtor, flags, nullptr);
}

SB_NIF("reply_channel", reply_channel, 0);
SB_NIF("channel_read", channel_read, 0);
SB_NIF("channel_poll", channel_poll, 0);
SB_NIF("channel_expect", channel_expect, 0);
SB_NIF("channel_route", channel_route, 0);
SB_NIF("channel_forget", channel_forget, 0);
SB_NIF("channel_forget_owner", channel_forget_owner, 0);
SB_NIF("channel_forget_ref", channel_forget_ref, 0);
SB_NIF("channel_take_all", channel_take_all, 0);
SB_NIF("channel_info", channel_info, 0);
SB_NIF("channel_close", channel_close, 0);
SB_NIF("channel_requests", channel_requests, 0);
SB_NIF("channel_send", channel_send, 0);
SB_NIF("channel_flush", channel_flush, 0);
SB_NIF("channel_output", channel_output, 0);
SB_NIF("channel_call", channel_call, 0);
SB_NIF("channel_take_releases", channel_take_releases, 0);

}  // namespace sb::nif
