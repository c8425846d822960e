// End to end: the built priv/snakebridge_port program in a child process, spoken to
// over pipes on its fds 3 (requests) and 4 (replies), as the BEAM does
// (docs/protocol.md). Requests are written as Python literals spelled as the
// Elixir client spells the equivalent terms (wire.hpp's encode_request: str as
// bin, Atom('x') as str, tuples and sets led by markers), or built by hand (Mp);
// replies are inspected as msgpack or read back with wire.hpp's reply_value.
// The test thread holds the GIL throughout: the program is another process.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../port/framing.hpp"
#include "../port/msgpack_reader.hpp"
#include "test_support.hpp"
#include "wire.hpp"

#ifndef SNAKEBRIDGE_PORT_EXE
#error "SNAKEBRIDGE_PORT_EXE must name the built priv/snakebridge_port"
#endif

using namespace sb;
using namespace sb::port;
using namespace sbtest;
using Clock = std::chrono::steady_clock;

namespace {

// The namespace of request literals and reply values (GIL held; kept for the process).
PyObject* wire() {
  static PyObject* env = wire_env("sbtest.port_process").release();
  return env;
}

long ms_since(Clock::time_point t0) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
}

// One running port program.
class Port {
 public:
  // threads: SNAKEBRIDGE_THREADS for the program (0: its default).
  // request_fifo: requests go through a FIFO named by SNAKEBRIDGE_REQUEST_FIFO,
  // as the BEAM sends them; fd 3 then only tells the program to end.
  explicit Port(int threads = 0, bool request_fifo = false) {
    std::string threads_env = "SNAKEBRIDGE_THREADS=" + std::to_string(threads);
    std::string fifo_path = "/tmp/sbtest-" + std::to_string(getpid()) + "-" + std::to_string(++fifo_count()) + ".requests";
    std::string fifo_env = "SNAKEBRIDGE_REQUEST_FIFO=" + fifo_path;
    int fifo = -1;
    if (request_fifo) {
      REQUIRE(mkfifo(fifo_path.c_str(), 0600) == 0);
      // (Read and write: opens before the program opens its end.)
      fifo = open(fifo_path.c_str(), O_RDWR | O_CLOEXEC);
      REQUIRE(fifo >= 0);
    }
    int req[2], rep[2];
    REQUIRE(pipe2(req, O_CLOEXEC) == 0);
    REQUIRE(pipe2(rep, O_CLOEXEC) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      // Async-signal-safe calls only. The pipe ends may themselves be 3 or 4:
      // move them out of the way first, then dup2 (which clears FD_CLOEXEC).
      int r = fcntl(req[0], F_DUPFD_CLOEXEC, 10);
      int w = fcntl(rep[1], F_DUPFD_CLOEXEC, 10);
      if (r < 0 || w < 0 || dup2(r, 3) < 0 || dup2(w, 4) < 0) _exit(127);
      if (threads > 0) putenv(threads_env.data());
      if (fifo >= 0) putenv(fifo_env.data());
      execl(SNAKEBRIDGE_PORT_EXE, SNAKEBRIDGE_PORT_EXE, static_cast<char*>(nullptr));
      _exit(127);
    }
    close(req[0]);
    close(rep[1]);
    to_ = req[1];
    from_ = rep[0];
    if (fifo >= 0) {
      fd3_ = to_;
      to_ = fifo;
      fifo_path_ = fifo_path;
    }
    signal(SIGPIPE, SIG_IGN);
  }

  ~Port() {
    close_input();
    if (from_ >= 0) close(from_);
    if (!exited_) {
      if (!wait_exit(std::chrono::milliseconds(2000))) {
        kill(-pid_, SIGKILL);  // the program leads its own process group
        kill(pid_, SIGKILL);
        int status;
        waitpid(pid_, &status, 0);
      }
    }
  }

  pid_t pid() const { return pid_; }

  void write_raw(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(to_, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      REQUIRE(n > 0);
      done += static_cast<size_t>(n);
    }
  }
  void send_body(const std::string& body) { write_raw(frame_header(body.size()) + body); }
  void send(const Mp& m) { send_body(m.str()); }
  // A request written as a Python literal (GIL held), in the request spelling.
  void send(const std::string& python_literal) { send(encode_request(python_literal, wire())); }

  // The next frame, or nothing after `timeout` (or at end of file).
  std::optional<msgpack::object_handle> recv(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    auto deadline = Clock::now() + timeout;
    while (true) {
      std::string body;
      uint64_t size = 0;
      auto next = reader_.next(&body, &size);
      if (next == FrameReader::Next::Frame) return msgpack::unpack(body.data(), body.size());
      REQUIRE(next == FrameReader::Next::NeedMore);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{from_, POLLIN, 0};
      int r = poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      char chunk[65536];
      ssize_t n = ::read(from_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof_ = true;
        return std::nullopt;
      }
      reader_.feed(chunk, static_cast<size_t>(n));
    }
  }

  // The next frame that is not an `output` message; outputs seen are kept.
  std::optional<msgpack::object_handle> reply(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    auto deadline = Clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      auto f = recv(left.count() > 0 ? left : std::chrono::milliseconds(0));
      if (!f) return f;
      const msgpack::object& o = f->get();
      if (o.type == msgpack::type::ARRAY && o.via.array.size >= 2 && o.via.array.ptr[1].type == msgpack::type::STR) {
        std::string kind(o.via.array.ptr[1].via.str.ptr, o.via.array.ptr[1].via.str.size);
        if (kind == "output") {
          outputs_.push_back(std::move(*f));
          continue;
        }
        if (kind == "interrupting" && o.via.array.size == 3) {
          interrupting_.push_back(o.via.array.ptr[2].via.u64);
          continue;
        }
      }
      return f;
    }
  }

  std::vector<msgpack::object_handle>& outputs() { return outputs_; }
  const std::vector<uint64_t>& interrupting() const { return interrupting_; }

  // With a request FIFO: a frame written on fd 3 instead.
  void send_on_fd3(const std::string& python_literal) {
    REQUIRE(fd3_ >= 0);
    std::swap(to_, fd3_);
    send(python_literal);
    std::swap(to_, fd3_);
  }
  // With a request FIFO: fd 3 closed, the FIFO kept open.
  void close_fd3() {
    if (fd3_ >= 0) close(fd3_);
    fd3_ = -1;
  }
  const std::string& fifo_path() const { return fifo_path_; }

  // The program's fd 3 closed (as the BEAM closing the port): it ends.
  void close_input() {
    if (fd3_ >= 0) close(fd3_);
    fd3_ = -1;
    if (to_ >= 0) close(to_);
    to_ = -1;
  }

  // The exit status, if the program ended within `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    if (exited_) return status_;
    auto deadline = Clock::now() + timeout;
    while (true) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        status_ = status;
        return status;
      }
      if (Clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  bool saw_eof() const { return eof_; }

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  int fd3_ = -1;  // with a request FIFO: the program's fd 3
  std::string fifo_path_;
  static int& fifo_count() {
    static int n = 0;
    return n;
  }
  FrameReader reader_;
  std::vector<msgpack::object_handle> outputs_;
  std::vector<uint64_t> interrupting_;  // ids of ["interrupting", id] notices
  bool exited_ = false;
  int status_ = 0;
  bool eof_ = false;
};

// ---- reading replies

const msgpack::object& at(const msgpack::object& o, uint32_t i) {
  REQUIRE(o.type == msgpack::type::ARRAY);
  REQUIRE(i < o.via.array.size);
  return o.via.array.ptr[i];
}

std::string text(const msgpack::object& o) {
  REQUIRE(o.type == msgpack::type::STR);
  return std::string(o.via.str.ptr, o.via.str.size);
}

uint64_t id_of(const msgpack::object& reply) {
  const msgpack::object& id = at(reply, 0);
  REQUIRE(id.type == msgpack::type::POSITIVE_INTEGER);
  return id.via.u64;
}

std::string status_of(const msgpack::object& reply) { return text(at(reply, 1)); }

// The value under a string key of a msgpack map, or null.
const msgpack::object* get(const msgpack::object& map, const std::string& key) {
  REQUIRE(map.type == msgpack::type::MAP);
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object& k = map.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string(k.via.str.ptr, k.via.str.size) == key) return &map.via.map.ptr[i].val;
  }
  return nullptr;
}

// The reason of [id, "error", reason] (docs/protocol.md, "Replies").
const msgpack::object& reason_of(const msgpack::object& reply) {
  REQUIRE(status_of(reply) == "error");
  return at(reply, 2);
}

// The atom naming a reason: the reason itself (:stopping) or its tuple's first item.
std::string reason_tag(const msgpack::object& reply) {
  const msgpack::object& r = reason_of(reply);
  if (r.type == msgpack::type::EXT) return atom_of(r);
  REQUIRE(led_by_marker(r, kTupleMarker));
  return atom_of(at(r, 1));
}

// Item k of a reason tuple (0 is its tag), and the arity of the tuple.
const msgpack::object& reason_item(const msgpack::object& reply, uint32_t k) {
  const msgpack::object& r = reason_of(reply);
  REQUIRE(led_by_marker(r, kTupleMarker));
  return at(r, k + 1);
}
size_t reason_arity(const msgpack::object& reply) {
  const msgpack::object& r = reason_of(reply);
  REQUIRE(led_by_marker(r, kTupleMarker));
  return r.via.array.size - 1;
}
std::string reason_text(const msgpack::object& reply, uint32_t k) { return text(reason_item(reply, k)); }

// {:badrequest, message}: the message.
std::string bad_request_message(const msgpack::object& reply) {
  CHECK(reason_tag(reply) == "badrequest");
  REQUIRE(reason_arity(reply) == 2);
  return reason_text(reply, 1);
}

// {:unconvertible, why, nil, steps}: why, and the steps as a Python literal
// (integers, (Atom('key'), i), (Atom('entry'), i), field names).
std::pair<std::string, PyRef> refusal_of(const msgpack::object& reply) {
  CHECK(reason_tag(reply) == "unconvertible");
  REQUIRE(reason_arity(reply) == 4);
  CHECK(reason_item(reply, 2).type == msgpack::type::NIL);
  return {atom_of(reason_item(reply, 1)), reply_value(reason_item(reply, 3), wire())};
}

// `reply` is [id, "ok", v] with v equal (same types) to the Python literal.
void check_ok(const msgpack::object& reply, uint64_t id, const std::string& python_literal) {
  INFO("expected [" << id << ", ok, " << python_literal << "]");
  CHECK(id_of(reply) == id);
  if (status_of(reply) == "error") {
    INFO("error reason " << py_repr(reply_value(at(reply, 2), wire()).get()));
    REQUIRE(status_of(reply) == "ok");
  }
  REQUIRE(status_of(reply) == "ok");
  PyRef got = reply_value(at(reply, 2), wire());
  INFO("got " << py_repr(got.get()));
  CHECK(same(wire(), got.get(), python_literal));
}

msgpack::object_handle must(std::optional<msgpack::object_handle> f) {
  REQUIRE(f.has_value());
  return std::move(*f);
}

std::string ext_bytes(const msgpack::object& o) {
  REQUIRE(o.type == msgpack::type::EXT);
  return std::string(o.via.ext.data(), o.via.ext.size);
}

// Whether a process is gone: reaped (we are its subreaper), absent, or a zombie.
bool process_gone(pid_t pid) {
  int status = 0;
  pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == pid) return true;
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  size_t close_paren = line.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < line.size() && line[close_paren + 2] == 'Z';
}

}  // namespace

TEST_CASE("port program: ping, calls, errors, handles and stats", "[port][process]") {
  Gil gil;
  Port port;

  port.send("[1, 'ping']");
  check_ok(must(port.reply()).get(), 1, "'pong'");

  port.send("[2, 'call', 1, 'math', 'sqrt', [2.25], {}, 'auto']");
  check_ok(must(port.reply()).get(), 2, "1.5");

  port.send("[3, 'call', 1, 'builtins', 'int', ['ff'], {'base': 16}, 'auto']");
  check_ok(must(port.reply()).get(), 3, "255");

  port.send("[4, 'call', 1, 'math', 'sqrt', [-1.0], {}, 'auto']");
  {
    auto r = must(port.reply());
    CHECK(id_of(r.get()) == 4);
    // {:python, type, python_type, message, traceback}
    CHECK(reason_tag(r.get()) == "python");
    CHECK(reason_arity(r.get()) == 5);
    CHECK(reason_text(r.get(), 1) == "ValueError");
    CHECK(reason_text(r.get(), 2) == "builtins.ValueError");
    CHECK(reason_text(r.get(), 3) == "math domain error");
    CHECK_THAT(reason_text(r.get(), 4), Catch::Matchers::Contains("ValueError"));
  }

  port.send("[5, 'eval', 1, 'x * 2', {'x': 21}, 'auto']");
  check_ok(must(port.reply()).get(), 5, "42");

  // A handle, a method call on it, repr, release, then unknown_object.
  port.send("[6, 'call', 1, 'collections', 'Counter', ['abracadabra'], {}, 'auto']");
  auto counter = must(port.reply());
  CHECK(id_of(counter.get()) == 6);
  REQUIRE(status_of(counter.get()) == "ok");
  const msgpack::object& h = at(counter.get(), 2);
  REQUIRE(h.type == msgpack::type::EXT);
  REQUIRE(h.via.ext.type() == kHandle);
  std::string payload = ext_bytes(h);
  REQUIRE(payload.size() > 8);
  CHECK(payload.substr(8) == "collections.Counter");
  std::string handle8 = payload.substr(0, 8);  // the client sends back just the 8 bytes
  uint64_t handle_id = 0;
  for (int i = 0; i < 8; ++i) handle_id = (handle_id << 8) | static_cast<unsigned char>(handle8[i]);

  // Requests naming the handle as the client does: ext 1 with just the 8 bytes.
  auto with_handle = [&](uint64_t id, const char* op, const Mp& rest, uint32_t n_rest) {
    port.send(Mp().arr(4 + n_rest).u(id).atom(op).u(1).ext(kHandle, handle8).then(rest));
  };
  with_handle(7, "call", Mp().bin("most_common").arr(1).i(1).map(0).atom("value"), 4);
  check_ok(must(port.reply()).get(), 7, "[('a', 5)]");
  with_handle(8, "repr", Mp().i(100), 1);
  check_ok(must(port.reply()).get(), 8, "\"Counter({'a': 5, 'b': 2, 'r': 2, 'c': 1, 'd': 1})\"");
  with_handle(9, "to_elixir", Mp(), 0);
  check_ok(must(port.reply()).get(), 9, "{'a': 5, 'b': 2, 'r': 2, 'c': 1, 'd': 1}");

  port.send("[10, 'stats']");
  {
    auto r = must(port.reply());
    REQUIRE(status_of(r.get()) == "ok");
    const msgpack::object* handles = get(at(r.get(), 2), "handles");
    REQUIRE(handles != nullptr);
    CHECK(handles->via.u64 >= 1);
    CHECK(get(at(r.get(), 2), "rss_kb") != nullptr);
  }

  std::ostringstream release;
  release << "[0, 'release', [" << handle_id << "]]";
  port.send(release.str());  // no reply of its own
  with_handle(11, "repr", Mp().i(100), 1);
  {
    auto r = must(port.reply());
    CHECK(id_of(r.get()) == 11);
    // {:unknown_object, handle_id}
    CHECK(reason_tag(r.get()) == "unknown_object");
    REQUIRE(reason_arity(r.get()) == 2);
    CHECK(reason_item(r.get(), 1).type == msgpack::type::POSITIVE_INTEGER);
    CHECK(reason_item(r.get(), 1).via.u64 == handle_id);
  }
  // Inside an argument too.
  port.send(Mp().arr(8).u(16).atom("call").u(1).bin("builtins").bin("len").arr(1).arr(2).i(1).ext(kHandle, handle8).nil()
                .atom("auto"));
  {
    auto r = must(port.reply());
    CHECK(id_of(r.get()) == 16);
    CHECK(reason_tag(r.get()) == "unknown_object");
    CHECK(reason_item(r.get(), 1).via.u64 == handle_id);
  }

  // A value that cannot be a dict key in Python: unconvertible, with its reason.
  port.send("[12, 'eval', 1, '1', {'x': {frozenset(): 1}}, 'auto']");  // fine: a MapSet key
  check_ok(must(port.reply()).get(), 12, "1");
  {
    port.send(Mp().arr(6).u(13).atom("eval").u(1).bin("1").map(1).map(0).nil().atom("auto"));  // a map as a key
    auto r = must(port.reply());
    CHECK(id_of(r.get()) == 13);
    auto [why, steps] = refusal_of(r.get());
    CHECK(why == "unhashable");
    CHECK(same(wire(), steps.get(), "[(Atom('key'), 0)]"));
  }
  // value mode on an object with no Elixir form: {:conversion, python_type, repr}.
  port.send("[14, 'eval', 1, 'object()', {}, 'value']");
  {
    auto r = must(port.reply());
    CHECK(id_of(r.get()) == 14);
    CHECK(reason_tag(r.get()) == "conversion");
    REQUIRE(reason_arity(r.get()) == 3);
    CHECK(reason_text(r.get(), 1) == "object");
    CHECK_THAT(reason_text(r.get(), 2), Catch::Matchers::StartsWith("<object object at"));
  }

  port.send("[15, 'ping']");
  check_ok(must(port.reply()).get(), 15, "'pong'");
}

// Bug: replies are packed with msgpack-cxx's pack_double, which writes integral
// doubles as integers: math.sqrt(16.0) arrives as the integer 4, not 4.0.
TEST_CASE("port program: a float result with an integral value arrives as float64", "[port][process]") {
  Gil gil;
  Port port;
  port.send("[1, 'call', 1, 'math', 'sqrt', [16.5], {}, 'auto']");  // warm-up; non-integral
  CHECK(must(port.reply()).get().via.array.ptr[2].type == msgpack::type::FLOAT64);
  port.send("[2, 'call', 1, 'math', 'sqrt', [16.5], {}, 'auto']");
  must(port.reply());
  port.send("[3, 'eval', 1, 'float(x) * 2', {'x': 2}, 'auto']");
  auto r = must(port.reply());
  REQUIRE(status_of(r.get()) == "ok");
  const msgpack::object& v = at(r.get(), 2);
  INFO("wire type " << int(v.type) << " (FLOAT64 is " << int(msgpack::type::FLOAT64) << ")");
  CHECK(v.type == msgpack::type::FLOAT64);
  check_ok(r.get(), 3, "4.0");
}

TEST_CASE("port program: malformed frames and bad requests get bad_request, and it carries on", "[port][process]") {
  Gil gil;
  Port port;
  auto bad_request = [&](uint64_t id) {
    auto r = must(port.reply());
    INFO("expected [" << id << ", error, {:badrequest, message}]");
    CHECK(id_of(r.get()) == id);
    return bad_request_message(r.get());
  };

  port.send_body("\xc1");  // never-used msgpack byte
  CHECK_THAT(bad_request(0), Catch::Matchers::Contains("malformed msgpack"));
  port.send_body("");  // empty frame
  bad_request(0);
  port.send_body("\x93\x01");  // an array cut short, its id readable: answered to it
  bad_request(1);
  port.send_body(std::string("\xdd\xff\xff\xff\xff", 5));  // array32 header over the limits
  bad_request(0);
  port.send("'hello'");  // not an array
  bad_request(0);
  port.send("[5]");  // too short (the id is answered)
  CHECK(bad_request(5) == "a request is [id, op, args...]");
  port.send("[-1, 'ping']");  // id not a positive integer
  bad_request(0);
  port.send("[6, 7]");  // op not text
  bad_request(6);
  port.send("[7, 'ping']");  // op as bin
  check_ok(must(port.reply()).get(), 7, "'pong'");
  port.send("[7, Atom('ping')]");  // op as str
  check_ok(must(port.reply()).get(), 7, "'pong'");
  port.send("[8, 'no_such_op']");
  CHECK_THAT(bad_request(8), Catch::Matchers::Contains("no_such_op"));
  port.send("[9, 'call']");
  bad_request(9);
  port.send("[10, 'call', 1, 42, 'x', [], {}, 'auto']");
  CHECK(bad_request(10) == "the target must be text");
  port.send("[11, 'eval', 1, '1 + 1', {}, 'bogus_mode']");
  bad_request(11);
  port.send("[12, 'eval', 1, '1 + 1', [1], 'auto']");  // globals not a map
  CHECK(bad_request(12) == "globals must be a map");
  port.send("[13, 'next', 1, 'not a handle', 1, 'auto']");
  CHECK(bad_request(13) == "the target must be a Python object");
  port.send("[17, 'describe', 1, 'json', -1, False]");  // depth not a positive integer
  bad_request(17);

  port.send("[14, 'ping']");
  check_ok(must(port.reply()).get(), 14, "'pong'");
  port.send("[15, 'eval', 1, '1 + 1', {}, 'auto']");
  check_ok(must(port.reply()).get(), 15, "2");
}

// A frame holds exactly one MessagePack value (docs/protocol.md): a request
// followed by trailing bytes is refused, not run; its id can be read, so the
// refusal is answered to it.
TEST_CASE("port program: a frame with bytes after its value is refused", "[port][process]") {
  Gil gil;
  Port port;
  port.send_body(Mp().arr(2).u(1).atom("ping").str() + "\xc1garbage");
  auto r = must(port.reply());
  INFO("reply id " << id_of(r.get()) << ", status " << status_of(r.get()));
  CHECK(id_of(r.get()) == 1);
  CHECK(bad_request_message(r.get()) == "a frame must hold exactly one msgpack value");
  port.send("[2, 'ping']");
  check_ok(must(port.reply()).get(), 2, "'pong'");
}

TEST_CASE("port program: an oversized frame header is refused at once", "[port][process]") {
  Gil gil;
  Port port;
  port.write_raw(std::string("\x40\x00\x00\x01", 4));  // 1 GiB + 1
  auto r = must(port.reply(std::chrono::milliseconds(2000)));
  CHECK(id_of(r.get()) == 0);
  CHECK_THAT(bad_request_message(r.get()), Catch::Matchers::Contains("1073741825"));
  // Still skipping the body when the client goes away: a clean exit all the same.
  port.close_input();
  auto status = port.wait_exit(std::chrono::milliseconds(1000));
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("port program: Python output arrives as output frames before the reply", "[port][process]") {
  Gil gil;
  Port port;
  port.send(
      "[20, 'exec', 1, 'print(\"hello from python\")\\nimport sys\\nsys.stderr.write(\"to stderr\")\\n"
      "print(\"caf\\u00e9\", 2, sep=\"|\")\\n', {}]");
  auto r = must(port.reply());
  CHECK(id_of(r.get()) == 20);
  CHECK(status_of(r.get()) == "ok");
  std::string out, err;
  for (auto& f : port.outputs()) {
    const msgpack::object& o = f.get();
    CHECK(id_of(o) == 0);
    CHECK(status_of(o) == "output");
    REQUIRE(o.via.array.size == 5);
    const msgpack::object& rid = at(o, 4);
    REQUIRE(rid.type == msgpack::type::POSITIVE_INTEGER);
    CHECK(rid.via.u64 == 20);
    std::string stream = text(at(o, 2));
    if (stream == "stdout") out += text(at(o, 3));
    else if (stream == "stderr") err += text(at(o, 3));
    else FAIL("unknown stream " << stream);
  }
  CHECK(out == "hello from python\ncaf\xc3\xa9|2\n");
  CHECK(err == "to stderr");
  port.outputs().clear();
  // Nothing more after the reply.
  CHECK(!port.recv(std::chrono::milliseconds(50)).has_value());

  // A thread that runs no request: request_id nil.
  port.send(
      "[21, 'exec', 1, 'import threading\\nt = threading.Thread(target=lambda: print(\"bg\"))\\nt.start()\\nt.join()\\n',"
      " {}]");
  auto r2 = must(port.reply());
  CHECK(id_of(r2.get()) == 21);
  std::string bg;
  for (auto& f : port.outputs()) {
    const msgpack::object& o = f.get();
    REQUIRE(o.via.array.size == 5);
    CHECK(at(o, 4).type == msgpack::type::NIL);
    bg += text(at(o, 3));
  }
  CHECK(bg == "bg\n");
}

TEST_CASE("port program: several requests in flight all get their replies, in any order", "[port][process]") {
  Gil gil;
  Port port;
  port.send("[29, 'ping']");  // the program is up
  check_ok(must(port.reply()).get(), 29, "'pong'");
  // Sent back to back, before reading anything.
  // Each from a caller of its own (the third element), so each on its own thread.
  port.send("[30, 'eval', 30, '__import__(\"time\").sleep(0.4) or 30', {}, 'auto']");
  port.send("[31, 'eval', 31, '__import__(\"time\").sleep(0.15) or 31', {}, 'auto']");
  port.send("[32, 'eval', 32, '32', {}, 'auto']");
  port.send("[33, 'ping']");
  port.send("[34, 'call', 34, 'math', 'factorial', [20], {}, 'auto']");
  port.send("[35, 'exec', 35, 'import time\\ntime.sleep(0.05)\\nv = 35', {}]");
  std::vector<uint64_t> order;
  auto t0 = Clock::now();
  for (int i = 0; i < 6; ++i) {
    auto r = must(port.reply(std::chrono::milliseconds(5000)));
    uint64_t id = id_of(r.get());
    order.push_back(id);
    switch (id) {
      case 30: check_ok(r.get(), 30, "30"); break;
      case 31: check_ok(r.get(), 31, "31"); break;
      case 32: check_ok(r.get(), 32, "32"); break;
      case 33: check_ok(r.get(), 33, "'pong'"); break;
      case 34: check_ok(r.get(), 34, "2432902008176640000"); break;
      case 35: {
        CHECK(status_of(r.get()) == "ok");
        const msgpack::object* v = get(at(r.get(), 2), "v");
        REQUIRE(v != nullptr);
        CHECK(v->via.u64 == 35);
        break;
      }
      default: FAIL("unexpected reply id " << id);
    }
  }
  long elapsed = ms_since(t0);
  std::set<uint64_t> ids(order.begin(), order.end());
  CHECK(ids == std::set<uint64_t>{30, 31, 32, 33, 34, 35});
  auto pos = [&](uint64_t id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  // The long sleep does not hold up the other callers: they ran concurrently.
  CHECK(pos(31) < pos(30));
  CHECK(pos(33) < pos(30));
  CHECK(pos(32) < pos(30));
  CHECK(elapsed < 580);  // 0.4 + 0.15 + 0.05 s if run one after the other
  CHECK(!port.recv(std::chrono::milliseconds(20)).has_value());
}

TEST_CASE("port program: cancel interrupts a running time.sleep(10) with Cancelled", "[port][process]") {
  Gil gil;
  Port port;
  port.send("[40, 'eval', 1, '__import__(\"time\").sleep(10)', {}, 'auto']");
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto t0 = Clock::now();
  port.send("[0, 'cancel', [40]]");
  auto r = must(port.reply(std::chrono::milliseconds(3000)));
  long elapsed = ms_since(t0);
  CHECK(id_of(r.get()) == 40);
  CHECK(reason_tag(r.get()) == "python");
  CHECK(reason_text(r.get(), 1) == "Cancelled");
  CHECK(reason_text(r.get(), 2) == "snakebridge.Cancelled");
  CHECK(elapsed < 500);
  // It was running: the program said so, for the client's grace.
  CHECK(port.interrupting() == std::vector<uint64_t>{40});

  // A busy loop (no sleep) is interrupted at a bytecode boundary.
  port.send("[41, 'exec', 1, 'while True:\\n    pass\\n', {}]");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  t0 = Clock::now();
  port.send("[0, 'cancel', [41]]");
  auto r2 = must(port.reply(std::chrono::milliseconds(3000)));
  CHECK(id_of(r2.get()) == 41);
  CHECK(reason_tag(r2.get()) == "python");
  CHECK(reason_text(r2.get(), 1) == "Cancelled");
  CHECK(ms_since(t0) < 500);

  // Cancelling what is not running: no reply; the program and its threads go on.
  port.send("[0, 'cancel', [40]]");
  port.send("[0, 'cancel', [999]]");
  port.send("[42, 'eval', 1, '__import__(\"time\").sleep(0.01) or 42', {}, 'auto']");
  check_ok(must(port.reply()).get(), 42, "42");
  port.send("[43, 'ping']");
  check_ok(must(port.reply()).get(), 43, "'pong'");
}

// The client batches the cancels its full pipe could not take: one frame
// cancels a running request (interrupted, "interrupting" sent) and two queued
// behind it on the same caller's thread (answered at once, never run).
TEST_CASE("port program: one cancel frame for several requests, running and queued", "[port][process]") {
  Gil gil;
  Port port;
  port.send("[60, 'eval', 1, '__import__(\"time\").sleep(10)', {}, 'auto']");
  port.send("[61, 'exec', 1, 'open(\"/nonexistent/should-not-run\", \"w\")', {}]");
  port.send("[62, 'exec', 1, 'open(\"/nonexistent/should-not-run\", \"w\")', {}]");
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto t0 = Clock::now();
  port.send("[0, 'cancel', [61, 60, 62]]");
  std::map<uint64_t, std::string> reasons;
  for (int i = 0; i < 3; ++i) {
    auto r = must(port.reply(std::chrono::milliseconds(3000)));
    reasons[id_of(r.get())] = reason_tag(r.get());
  }
  CHECK(ms_since(t0) < 500);
  CHECK(reasons[60] == "python");     // interrupted: snakebridge.Cancelled
  CHECK(reasons[61] == "cancelled");  // never ran (a run would be a Python error)
  CHECK(reasons[62] == "cancelled");
  CHECK(port.interrupting() == std::vector<uint64_t>{60});
  port.send("[63, 'ping']");
  check_ok(must(port.reply()).get(), 63, "'pong'");
}

TEST_CASE("port program: drain finishes what was read, refuses what follows, then answers", "[port][process]") {
  Gil gil;
  Port port;
  port.send("[50, 'eval', 1, '__import__(\"time\").sleep(0.3) or 50', {}, 'auto']");
  port.send("[51, 'drain']");
  port.send("[52, 'exec', 1, 'open(\"/nonexistent/should-not-run\", \"w\")', {}]");
  port.send("[53, 'ping']");
  std::vector<uint64_t> order;
  std::string reason_52;
  for (int i = 0; i < 4; ++i) {
    auto r = must(port.reply(std::chrono::milliseconds(3000)));
    uint64_t id = id_of(r.get());
    order.push_back(id);
    if (id == 50) check_ok(r.get(), 50, "50");
    if (id == 51) check_ok(r.get(), 51, "'drained'");
    if (id == 52) reason_52 = reason_tag(r.get());
    if (id == 53) check_ok(r.get(), 53, "'pong'");
  }
  // Refused without running (a run would have failed with a Python error).
  CHECK(reason_52 == "stopping");  // the bare atom :stopping
  auto pos = [&](uint64_t id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  CHECK(pos(52) < pos(50));  // refused at once, not queued behind the sleep
  CHECK(pos(50) < pos(51));  // "drained" comes after every reply
  CHECK(order.back() == 51);
}

// Many frames in one write: the replies the reading thread writes for them
// (thread-free calls it answers itself, pings, refusals) are gathered and
// written together (Server::begin_batch). Every one still arrives, the reply
// of another caller's request in between too, and "drained" after them all.
TEST_CASE("port program: replies to frames read together all arrive, drained last", "[port][process]") {
  Gil gil;
  Port port;
  port.send("[1, 'ping']");  // the program is up
  check_ok(must(port.reply()).get(), 1, "'pong'");
  std::string bytes;
  auto add = [&](const std::string& literal) {
    std::string body = encode_request(literal, wire()).str();
    bytes += frame_header(body.size()) + body;
  };
  for (int id = 100; id < 300; ++id) {
    if (id == 150) add("[150, 'eval', 7, '__import__(\"time\").sleep(0.05) or 150', {}, 'auto']");
    else if (id % 50 == 25) add("[" + std::to_string(id) + ", 'ping']");
    else add("[" + std::to_string(id) + ", 'call', 1, 'math', 'sqrt', [" + std::to_string(id * id) + ".0], {}, 'auto']");
  }
  add("[300, 'drain']");
  port.write_raw(bytes);
  std::vector<uint64_t> order;
  for (int i = 0; i < 201; ++i) {
    auto r = must(port.reply(std::chrono::milliseconds(5000)));
    uint64_t id = id_of(r.get());
    order.push_back(id);
    if (id == 300) check_ok(r.get(), 300, "'drained'");
    else if (id == 150) check_ok(r.get(), 150, "150");
    else if (id % 50 == 25) check_ok(r.get(), id, "'pong'");
    else check_ok(r.get(), id, std::to_string(id) + ".0");
  }
  std::set<uint64_t> ids(order.begin(), order.end());
  CHECK(ids.size() == 201);
  CHECK(*ids.begin() == 100);
  CHECK(*ids.rbegin() == 300);
  CHECK(order.back() == 300);  // "drained" comes after every reply
  CHECK(!port.recv(std::chrono::milliseconds(20)).has_value());
}

// The I/O thread never runs Python: while one caller's request sleeps (or
// spins), a ping is answered, a cancel gets through, and so do other callers'
// requests.
TEST_CASE("port program: a long request still lets ping, cancel and other callers through", "[port][process]") {
  Gil gil;
  Port port;
  for (uint64_t id = 1; id <= 40; ++id) {
    std::ostringstream req;
    req << "[" << id << ", 'call', 1, 'time', 'sleep', [0], {}, 'auto']";
    port.send(req.str());
    check_ok(must(port.reply()).get(), id, "None");
  }
  port.send("[100, 'call', 1, 'time', 'sleep', [2], {}, 'auto']");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto t0 = Clock::now();
  port.send("[101, 'ping']");
  auto first = must(port.reply(std::chrono::milliseconds(3000)));
  long ping_ms = ms_since(t0);
  INFO("first reply: id " << id_of(first.get()) << " after " << ping_ms << " ms");
  CHECK(id_of(first.get()) == 101);
  CHECK(ping_ms < 500);
  port.send("[102, 'eval', 2, '102', {}, 'auto']");  // another caller
  auto other = must(port.reply(std::chrono::milliseconds(1000)));
  CHECK(id_of(other.get()) == 102);
  port.send("[0, 'cancel', [100]]");
  std::set<uint64_t> pending = {100, 101};
  pending.erase(id_of(first.get()));
  std::string status_100 = id_of(first.get()) == 100 ? status_of(first.get()) : "";
  while (!pending.empty()) {
    auto r = must(port.reply(std::chrono::milliseconds(3000)));
    pending.erase(id_of(r.get()));
    if (id_of(r.get()) == 100) status_100 = status_of(r.get());
  }
  INFO("request 100 answered " << status_100 << " after " << ms_since(t0) << " ms");
  CHECK(status_100 == "error");  // Cancelled, not a completed 2 s sleep
}

TEST_CASE("port program: closing fd 3 ends it with status 0 within a second, and its subprocesses",
          "[port][process]") {
  Gil gil;
  // Orphans of the program are re-parented to this test process, which can then
  // tell a killed subprocess from one still running.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  Port port;
  port.send("[50, 'exec', 1, 'import subprocess\\np = subprocess.Popen([\"sleep\", \"30\"])\\npid = p.pid\\n', {}]");
  auto r = must(port.reply());
  CHECK(id_of(r.get()) == 50);
  REQUIRE(status_of(r.get()) == "ok");
  const msgpack::object* pid_obj = get(at(r.get(), 2), "pid");
  REQUIRE(pid_obj != nullptr);
  REQUIRE(pid_obj->type == msgpack::type::POSITIVE_INTEGER);
  pid_t child = static_cast<pid_t>(pid_obj->via.u64);
  CHECK(child > 0);
  CHECK(kill(child, 0) == 0);
  CHECK(!process_gone(child));

  // A request still running when the client goes away does not hold the exit up.
  port.send("[51, 'eval', 1, '__import__(\"time\").sleep(10)', {}, 'auto']");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));

  auto t0 = Clock::now();
  port.close_input();
  auto status = port.wait_exit(std::chrono::milliseconds(1000));
  long exit_ms = ms_since(t0);
  REQUIRE(status.has_value());
  INFO("exited after " << exit_ms << " ms");
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(!port.recv(std::chrono::milliseconds(200)).has_value());
  CHECK(port.saw_eof());

  bool gone = wait_until([&] { return process_gone(child); }, std::chrono::milliseconds(1000));
  CHECK(gone);
  if (!gone) kill(child, SIGKILL);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_CASE("port program: request spellings arrive as the documented Python values, replies come back spelled",
          "[port][process][values]") {
  Gil gil;
  Port port;
  // Echoed through eval: each value crosses both ways.
  port.send(
      "[1, 'eval', 1, 'x', {'x': [None, True, -1, 2 ** 64 - 1, 2 ** 70, -(2 ** 70), 1.5, -0.0, 4.0, 'caf\\u00e9', "
      "b'\\xff', Bytes(b'x'), (1, {2}), {(1, 2): 'k'}, Atom('nan'), Atom('infinity'), Atom('ok')]}, 'auto']");
  check_ok(must(port.reply()).get(), 1,
           "[None, True, -1, 2 ** 64 - 1, 2 ** 70, -(2 ** 70), 1.5, -0.0, 4.0, 'caf\\u00e9', b'\\xff', b'x', (1, {2}), "
           "{(1, 2): 'k'}, float('nan'), float('inf'), 'ok']");
  // What the reply is made of, on the wire.
  port.send("[2, 'eval', 1, '(4.0, float(\"-inf\"), {1}, b\"b\", \"s\")', {}, 'auto']");
  {
    auto r = must(port.reply());
    REQUIRE(status_of(r.get()) == "ok");
    const msgpack::object& v = at(r.get(), 2);
    REQUIRE(led_by_marker(v, kTupleMarker));
    CHECK(at(v, 1).type == msgpack::type::FLOAT64);
    CHECK(atom_of(at(v, 2)) == "neg_infinity");
    CHECK(led_by_marker(at(v, 3), kSetMarker));
    CHECK(at(v, 4).type == msgpack::type::BIN);
    CHECK(at(v, 5).type == msgpack::type::STR);
  }
  // Calendar structs in, ext 6-9 out.
  port.send(Mp().arr(6).u(3).atom("eval").u(1).bin("[d, t, n, z, d.isoformat()]").map(4)
                .bin("d").date(2024, 2, 29).bin("t").time(10, 0, 0, 120000, 3).bin("n").naive(2000, 1, 1, 0, 0, 0)
                .bin("z").datetime(2024, 7, 14, 12, 30, 15, 0, "Europe/Paris", "CEST", 3600, 3600).atom("auto"));
  check_ok(must(port.reply()).get(), 3,
           "[date(2024, 2, 29), time(10, 0, 0, 120000), datetime(2000, 1, 1), "
           "datetime(2024, 7, 14, 12, 30, 15, tzinfo=Paris), '2024-02-29']");
  // A one-byte SnakeBridge.Bytes first in a list is an item, not a marker.
  port.send("[4, 'call', 1, 'builtins', 'repr', [[Bytes(b'x'), 1]], None, 'auto']");
  check_ok(must(port.reply()).get(), 4, "\"[b'x', 1]\"");
  // Keyword arguments as a keyword list, a keyword named like a float atom included.
  port.send("[5, 'call', 1, 'builtins', 'dict', [], [(Atom('nan'), 0.0), (Atom('b'), 2)], 'auto']");
  check_ok(must(port.reply()).get(), 5, "{'nan': 0.0, 'b': 2}");
  port.send("[6, 'call', 1, 'builtins', 'int', ['ff'], {Atom('base'): 16}, 'auto']");
  check_ok(must(port.reply()).get(), 6, "255");
  // :ref and :value.
  port.send("[7, 'eval', 1, '[1, 2]', {}, 'ref']");
  {
    auto r = must(port.reply());
    REQUIRE(status_of(r.get()) == "ok");
    CHECK(handle_type_of(at(r.get(), 2)) == "list");
  }
  port.send("[8, 'eval', 1, '__import__(\"collections\").Counter(\"aab\")', {}, 'value']");
  check_ok(must(port.reply()).get(), 8, "{'a': 2, 'b': 1}");
}

TEST_CASE("port program: refused arguments name the term by position", "[port][process][values]") {
  Gil gil;
  Port port;
  auto refusal = [&](const Mp& request) {
    port.send(request);
    auto r = must(port.reply());
    return refusal_of(r.get());
  };
  Mp len = Mp().arr(8).u(1).atom("call").u(1).bin("builtins").bin("len");
  {  // an opaque term (a pid) in the second item of the first argument
    auto [why, steps] = refusal(Mp(len).arr(1).arr(2).i(1).opaque().nil().atom("auto"));
    CHECK(why == "unconvertible");
    CHECK(same(wire(), steps.get(), "[0, 1]"));
  }
  {  // map entries: {:key, i} for a key, {:entry, i} for a value
    auto [why, steps] = refusal(Mp(len).arr(1).map(2).bin("a").i(1).bin("b").opaque().nil().atom("auto"));
    CHECK(why == "unconvertible");
    CHECK(same(wire(), steps.get(), "[0, (Atom('entry'), 1)]"));
  }
  {  // a keyword argument's value
    auto [why, steps] = refusal(Mp(len).arr(0).map(1).atom("k").opaque().atom("auto"));
    CHECK(why == "unconvertible");
    CHECK(same(wire(), steps.get(), "[(Atom('entry'), 0)]"));
  }
  {  // a set element, then a struct field
    auto [why, steps] = refusal(Mp(len).arr(1).set(2).i(1).date(int64_t(1) << 40, 1, 1).nil().atom("auto"));
    CHECK(why == "unconvertible");
    CHECK(same(wire(), steps.get(), "[0, 1, 'year']"));
  }
  {  // 1 and 1.0 as keys
    auto [why, steps] = refusal(Mp(len).arr(1).map(2).i(1).nil().f64(1.0).nil().nil().atom("auto"));
    CHECK(why == "collision");
    CHECK(same(wire(), steps.get(), "[0]"));
  }
  {  // an argument nested 1025 levels deep (the argument is level 1)
    Mp deep = Mp(len).arr(1);
    for (int k = 0; k < 1024; ++k) deep.tuple(1);
    deep.tuple(0).nil().atom("auto");
    auto [why, steps] = refusal(deep);
    CHECK(why == "too_deep");
    CHECK(PyList_GET_SIZE(steps.get()) == 1025);
    Mp ok = Mp(len).arr(1);
    for (int k = 0; k < 1023; ++k) ok.tuple(1);
    ok.tuple(0).nil().atom("auto");
    port.send(ok);
    check_ok(must(port.reply()).get(), 1, "1");
  }
  port.send("[2, 'ping']");
  check_ok(must(port.reply()).get(), 2, "'pong'");
}

namespace {

long rss_kb(Port& port, uint64_t id) {
  port.send(Mp().arr(2).u(id).atom("stats"));
  auto r = must(port.reply());
  REQUIRE(status_of(r.get()) == "ok");
  const msgpack::object* rss = get(at(r.get(), 2), "rss_kb");
  REQUIRE(rss != nullptr);
  return static_cast<long>(rss->via.i64);
}

}  // namespace

// Amplification: a 1 MiB frame becomes msgpack objects (24 bytes per value),
// Python objects and a reply of the same size. Memory grows with the frame, not
// with its nesting, and is given back: a third round costs no more than the first.
TEST_CASE("port program: 1 MiB frames of nested tuples and of nils keep its memory bounded",
          "[port][process][limits]") {
  Gil gil;
  Port port;
  long base = rss_kb(port, 1);
  // Chains of tuples 1000 deep (4 bytes a level), as many as fit in 1 MiB.
  const int chains = (1 << 20) / 4001;
  Mp tuples = Mp().arr(6).u(2).atom("eval").u(1).bin("len(x)").map(1).bin("x").arr(chains);
  for (int c = 0; c < chains; ++c) {
    for (int k = 0; k < 999; ++k) tuples.tuple(1);
    tuples.tuple(1).nil();
  }
  tuples.atom("auto");
  // A million nils, echoed back.
  const int n = 1 << 20;
  Mp nils = Mp().arr(6).u(3).atom("eval").u(1).bin("x").map(1).bin("x").arr(n);
  for (int k = 0; k < n; ++k) nils.nil();
  nils.atom("auto");
  INFO("frames of " << tuples.size() << " and " << nils.size() << " bytes");
  std::vector<long> after;
  for (int round = 0; round < 3; ++round) {
    port.send(tuples);
    check_ok(must(port.reply(std::chrono::milliseconds(20000))).get(), 2, std::to_string(chains));
    port.send(nils);
    auto r = must(port.reply(std::chrono::milliseconds(20000)));
    REQUIRE(status_of(r.get()) == "ok");
    CHECK(at(r.get(), 2).via.array.size == static_cast<uint32_t>(n));
    after.push_back(rss_kb(port, 4));
  }
  INFO("RSS " << base << " kB at start, then " << after[0] << ", " << after[1] << ", " << after[2] << " kB");
  CHECK(after[0] - base < 256 * 1024);           // well under 256 MiB for 1 MiB frames
  CHECK(after[2] - after[0] < 32 * 1024);        // no growth from round to round
  std::fprintf(stderr, "[rss] port program: start %ld kB, after rounds %ld / %ld / %ld kB (frames %zu and %zu bytes)\n",
               base, after[0], after[1], after[2], tuples.size(), nils.size());
}

// msgpack::unpack allocates a container's elements when it reads its header:
// nested array32 headers each claiming 2^24 elements cost 384 MiB apiece.
// Before claims_fit, this 1 MiB frame took ~12 s on the I/O thread and left the
// program at 1.5 GB resident (100 TB of address space at the peak).
TEST_CASE("port program: nested headers claiming 2^24 elements each are refused at once", "[port][process][limits]") {
  Gil gil;
  Port port;
  long base = rss_kb(port, 1);
  Mp frame = Mp().arr(6).u(2).atom("eval").u(1).bin("x").map(1).bin("x");
  for (int k = 0; k < (1 << 20) / 5; ++k) frame.raw(std::string("\xdd\x00\xff\xff\xff", 5));
  auto t0 = Clock::now();
  port.send(frame);
  auto r = must(port.reply(std::chrono::milliseconds(20000)));
  long ms = ms_since(t0);
  CHECK(id_of(r.get()) == 2);
  CHECK_THAT(bad_request_message(r.get()), Catch::Matchers::Contains("claim more elements"));
  port.send("[3, 'ping']");
  check_ok(must(port.reply()).get(), 3, "'pong'");
  long after = rss_kb(port, 4);
  INFO("answered in " << ms << " ms; RSS " << base << " kB before, " << after << " kB after");
  CHECK(ms < 1000);
  CHECK(after - base < 16 * 1024);
}

// A reply that fails half way (a tzinfo whose tzname() has no UTF-8 form, after
// objects already given handles) is replaced by the error: the handles made for
// it must go too, since the client never learns their ids.
TEST_CASE("port program: a reply that fails while being written leaves no handles behind", "[port][process][handles]") {
  Gil gil;
  Port port;
  auto handles_held = [&](uint64_t id) {
    port.send(Mp().arr(2).u(id).atom("stats"));
    auto r = must(port.reply());
    const msgpack::object* h = get(at(r.get(), 2), "handles");
    REQUIRE(h != nullptr);
    return h->via.u64;
  };
  uint64_t before = handles_held(1);
  // exec's namespace in :auto: the module and the class become handles, then x fails.
  port.send(
      "[2, 'exec', 1, 'import datetime\\n"
      "class Z(datetime.tzinfo):\\n"
      "    def utcoffset(self, dt): return datetime.timedelta(hours=1)\\n"
      "    def dst(self, dt): return datetime.timedelta(0)\\n"
      "    def tzname(self, dt): return \"\\\\ud800\"\\n"
      "x = [object(), object(), 7, datetime.datetime(2024, 1, 1, tzinfo=Z())]\\n', {}, 'auto']");
  {
    auto r = must(port.reply());
    CHECK(id_of(r.get()) == 2);
    CHECK(reason_tag(r.get()) == "python");
    CHECK(reason_text(r.get(), 1) == "UnicodeEncodeError");
  }
  CHECK(handles_held(3) == before);
  // A reply that completes keeps its handles.
  port.send("[4, 'eval', 1, '[object(), 1]', {}, 'auto']");
  REQUIRE(status_of(must(port.reply()).get()) == "ok");
  CHECK(handles_held(5) == before + 1);
}

// An Elixir process is a Python thread: the requests of one caller (the frame's
// third element) run on one thread, in order, with its thread-local state and
// its thread-bound objects; another caller has its own.
TEST_CASE("port program: a caller's requests share one thread, its thread-locals and sqlite3 objects",
          "[port][process][threads]") {
  Gil gil;
  Port port;
  // sbtl: a module made on the fly, which both callers see.
  port.send("[3, 'exec', 7, 'import sys, types\\nsys.modules[\"sbtl\"] = m = types.ModuleType(\"sbtl\")\\n"
            "import threading\\nm.L = threading.local()', {}, 'auto']");
  REQUIRE(status_of(must(port.reply()).get()) == "ok");
  port.send("[4, 'exec', 7, 'import sbtl, threading, decimal, sqlite3\\nsbtl.L.x = 7\\n"
            "decimal.getcontext().prec = 5\\nsbtl.con = sqlite3.connect(\":memory:\")\\n"
            "sbtl.ident = threading.get_ident()', {}, 'auto']");
  REQUIRE(status_of(must(port.reply()).get()) == "ok");
  port.send("[5, 'eval', 7, '(__import__(\"threading\").get_ident() == __import__(\"sbtl\").ident, "
            "getattr(__import__(\"sbtl\").L, \"x\", None), __import__(\"decimal\").getcontext().prec, "
            "__import__(\"sbtl\").con.execute(\"select 41 + 1\").fetchone()[0])', {}, 'auto']");
  check_ok(must(port.reply()).get(), 5, "(True, 7, 5, 42)");
  // Another caller: another thread, none of the first one's thread-local state,
  // and sqlite3 refuses the first caller's connection, as Python does.
  port.send("[6, 'eval', 8, '(__import__(\"threading\").get_ident() == __import__(\"sbtl\").ident, "
            "getattr(__import__(\"sbtl\").L, \"x\", None), __import__(\"decimal\").getcontext().prec)', {}, 'auto']");
  check_ok(must(port.reply()).get(), 6, "(False, None, 28)");
  port.send("[7, 'eval', 8, '__import__(\"sbtl\").con.execute(\"select 1\")', {}, 'auto']");
  auto refused = must(port.reply());
  CHECK(reason_tag(refused.get()) == "python");
  CHECK(reason_text(refused.get(), 1) == "ProgrammingError");
  // The first caller's requests still run in order on its own thread: a sleep
  // then a read, sent back to back, reply in that order.
  port.send("[8, 'eval', 7, '__import__(\"time\").sleep(0.2) or 8', {}, 'auto']");
  port.send("[9, 'eval', 7, '__import__(\"sbtl\").con.execute(\"select 9\").fetchone()[0]', {}, 'auto']");
  port.send("[10, 'eval', 8, '10', {}, 'auto']");
  std::vector<uint64_t> order;
  for (int i = 0; i < 3; ++i) order.push_back(id_of(must(port.reply()).get()));
  CHECK(order == std::vector<uint64_t>{10, 8, 9});
  // Forgotten, the caller's thread may serve another: its thread-locals are gone.
  port.send("[0, 'forget', [7]]");
  port.send("[11, 'eval', 9, '(getattr(__import__(\"sbtl\").L, \"x\", None), "
            "__import__(\"decimal\").getcontext().prec)', {}, 'auto']");
  check_ok(must(port.reply()).get(), 11, "(None, 28)");
}

// With SNAKEBRIDGE_THREADS=1 every request runs on the program's main thread,
// as the statements of a script: signal handlers, alarms and KeyboardInterrupt
// behave as in plain python, and the program lives on.
TEST_CASE("port program: with one thread, Python runs on the main thread and owns its signals",
          "[port][process][threads][signals]") {
  Gil gil;
  Port port(1);
  port.send("[1, 'eval', 1, '__import__(\"threading\").current_thread() is __import__(\"threading\").main_thread()', "
            "{}, 'auto']");
  check_ok(must(port.reply()).get(), 1, "True");
  port.send("[2, 'eval', 2, '__import__(\"threading\").current_thread() is __import__(\"threading\").main_thread()', "
            "{}, 'auto']");
  check_ok(must(port.reply()).get(), 2, "True");  // another caller: the same, only thread
  // A handler installed by one request runs for an alarm during a later one.
  port.send("[3, 'exec', 1, 'import signal, time\\nhits = []\\nimport sys\\nsys.modules[\"__main__\"].hits = hits\\n"
            "signal.signal(signal.SIGALRM, lambda s, f: hits.append(s))', {}, 'auto']");
  REQUIRE(status_of(must(port.reply()).get()) == "ok");
  port.send("[4, 'eval', 1, '(__import__(\"signal\").setitimer(__import__(\"signal\").ITIMER_REAL, 0.05), "
            "__import__(\"time\").sleep(0.5), list(__import__(\"__main__\").hits))[2]', {}, 'auto']");
  check_ok(must(port.reply()).get(), 4, "[14]");
  // SIGINT sent to itself: KeyboardInterrupt in the running request, as in a script.
  port.send("[5, 'exec', 1, 'import os, signal, time\\nos.kill(os.getpid(), signal.SIGINT)\\ntime.sleep(2)', {}, 'auto']");
  auto r = must(port.reply(std::chrono::milliseconds(1500)));
  CHECK(reason_tag(r.get()) == "python");
  CHECK(reason_text(r.get(), 1) == "KeyboardInterrupt");
  // It lives on.
  port.send("[6, 'eval', 1, '6 * 7', {}, 'auto']");
  check_ok(must(port.reply()).get(), 6, "42");
}

TEST_CASE("port program: requests through SNAKEBRIDGE_REQUEST_FIFO; fd 3 still serves, and its end ends it",
          "[port][process]") {
  Gil gil;
  Port port(0, true);
  port.send("[1, 'ping']");
  check_ok(must(port.reply()).get(), 1, "'pong'");
  // The program unlinked the FIFO once it had it open.
  struct stat st;
  CHECK(stat(port.fifo_path().c_str(), &st) != 0);
  // Requests in a row, several in one write too, each answered.
  std::string both = encode_request("[2, 'call', 1, 'math', 'sqrt', [2.25], {}, 'auto']", wire()).str();
  std::string third = encode_request("[3, 'call', 7, 'builtins', 'len', ['abcd'], {}, 'auto']", wire()).str();
  port.write_raw(frame_header(both.size()) + both + frame_header(third.size()) + third);
  std::map<uint64_t, std::string> got;
  for (int i = 0; i < 2; ++i) {
    auto r = must(port.reply());
    got[id_of(r.get())] = status_of(r.get());
  }
  CHECK(got == std::map<uint64_t, std::string>{{2, "ok"}, {3, "ok"}});
  // A frame on fd 3 is served as well.
  port.send_on_fd3("[4, 'call', 1, 'math', 'sqrt', [4.0], {}, 'auto']");
  check_ok(must(port.reply()).get(), 4, "2.0");
  // fd 3's end of file ends it, though the FIFO's writer is still open.
  auto t0 = Clock::now();
  port.close_fd3();
  auto status = port.wait_exit(std::chrono::milliseconds(1000));
  INFO("exited after " << ms_since(t0) << " ms");
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}
