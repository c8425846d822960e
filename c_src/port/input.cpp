#include "input.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "../core/spin.hpp"
#include "server.hpp"

namespace sb::port {

Input::Input(int fd, Server& server) : fd_(fd), server_(server) {
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

bool Input::read_available(bool by_python_thread) {
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  // The replies this thread writes for what it reads here go out together
  // (Server::begin_batch), once it has dispatched all of it. Begun at the
  // first read that brings something: a poll that finds nothing takes no lock.
  struct Batch {
    Server* server = nullptr;
    void begin(Server& s) {
      if (server) return;
      server = &s;
      s.begin_batch();
    }
    ~Batch() {
      if (server) server->end_batch();
    }
  } batch;
  bool any = false;
  while (true) {
    size_t room;
    char* into = reader_.space(&room);
    ssize_t n = ::read(fd_, into, room);
    if (n == 0) shut_down();  // EOF: the BEAM closed the port or died
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return any;
      shut_down();
    }
    if (!any && by_python_thread) last_python_read_.store(monotonic_ns(), std::memory_order_relaxed);
    any = true;
    batch.begin(server_);
    reader_.commit(static_cast<size_t>(n));
    while (true) {
      Frame frame;
      uint64_t size = 0;
      auto next = reader_.next(&frame, &size);
      if (next == FrameReader::Next::NeedMore) break;
      if (next == FrameReader::Next::Oversized) {
        server_.send_error(0, "bad_request", "frame of " + std::to_string(size) + " bytes is over the 1 GiB limit");
      } else {
        frames_.fetch_add(1, std::memory_order_relaxed);
        server_.on_frame(std::move(frame));
      }
    }
    // A short read emptied the pipe: the next read would only say so.
    if (static_cast<size_t>(n) < room) return any;
  }
}

void shut_down() {
  signal(SIGTERM, SIG_IGN);
  kill(0, SIGTERM);
  _exit(0);
}

}  // namespace sb::port
