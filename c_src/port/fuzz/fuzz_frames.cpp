// libFuzzer target: arbitrary bytes as the port program's input stream (fd 3).
//
// Each input is fed through FrameReader; every complete frame is unpacked with the
// limits the server uses (server.cpp's kLimits) and converted with
// sb::port::to_python (also in a hashable position, and as call args / kwargs),
// and what comes out is packed back with pack_python in auto and value mode. The
// documented failures are caught: msgpack::unpack_error (malformed msgpack, limits),
// DecodeError (unconvertible values, unknown handles), PythonException (e.g. a
// date out of range), EncodeError (value mode). Anything else escaping, a Python
// error left pending, or FrameReader disagreeing with itself is a crash.
//
// FrameReader is also checked differentially: the same bytes fed at once, one byte
// at a time, and in small chunks to a reader with a 16-byte limit must give the
// same frames (the small reader reporting the bigger ones as oversized).
//
// Build and run: docs/protocol.md, "Fuzzing". Seed corpus:
//   SNAKEBRIDGE_FUZZ_WRITE_SEEDS=corpus ./fuzz_frames   (writes valid requests, exits)
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../../core/errors.hpp"
#include "../../core/interpreter.hpp"
#include "../../core/values.hpp"
#include "../framing.hpp"
#include "../handles.hpp"
#include "../msgpack_python.hpp"

#ifndef SNAKEBRIDGE_LIBPYTHON
#define SNAKEBRIDGE_LIBPYTHON ""
#endif

using namespace sb;
using namespace sb::port;

namespace {

// As in server.cpp (Server::on_frame).
const msgpack::unpack_limit kServerLimits(1 << 24, 1 << 24, 1 << 30, 1 << 30, 1 << 30, 1024);
constexpr size_t kSmallLimit = 16;

// Handles 1..5 exist, so ext 1 payloads can resolve.
const char* kHandleObjects[] = {"[1, 2, 3]", "'text'", "42", "(1, (2, 3))", "object()"};

struct Event {
  bool oversized;
  std::string body;
  uint64_t size;
  bool operator==(const Event& o) const { return oversized == o.oversized && body == o.body && size == o.size; }
};

void drain(FrameReader& r, std::vector<Event>* out) {
  while (true) {
    std::string body;
    uint64_t size = 0;
    auto next = r.next(&body, &size);
    if (next == FrameReader::Next::NeedMore) return;
    if (next == FrameReader::Next::Frame) out->push_back({false, std::move(body), 0});
    else out->push_back({true, {}, size});
  }
}

void invariant(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "fuzz_frames: invariant broken: %s\n", what);
    __builtin_trap();
  }
}

std::vector<Event> check_framing(const uint8_t* data, size_t size) {
  const char* p = reinterpret_cast<const char*>(data);
  std::vector<Event> whole;
  {
    FrameReader r;
    r.feed(p, size);
    drain(r, &whole);
  }
  {
    FrameReader r;
    std::vector<Event> bytewise;
    for (size_t i = 0; i < size; ++i) {
      r.feed(p + i, 1);
      drain(r, &bytewise);
    }
    invariant(bytewise == whole, "byte-by-byte feeding gives other frames");
  }
  {
    // What a 16-byte limit must give: the same frames, the bigger ones oversized,
    // plus the incomplete last frame if its header alone is over the limit.
    std::vector<Event> expected;
    size_t off = 0;
    bool consumed_all = false;
    for (const Event& e : whole) {
      if (e.oversized) {
        expected.push_back(e);
        consumed_all = true;  // over 1 GiB: more than any input
        continue;
      }
      if (e.body.size() <= kSmallLimit) expected.push_back(e);
      else expected.push_back({true, {}, e.body.size()});
      off += 4 + e.body.size();
    }
    if (!consumed_all && size - off >= 4) {
      uint64_t len = (uint64_t(data[off]) << 24) | (uint64_t(data[off + 1]) << 16) | (uint64_t(data[off + 2]) << 8) |
                     data[off + 3];
      if (len > kSmallLimit) expected.push_back({true, {}, len});
    }
    FrameReader r(kSmallLimit);
    std::vector<Event> small;
    size_t chunk = size % 13 + 1;
    for (size_t i = 0; i < size; i += chunk) {
      r.feed(p + i, std::min(chunk, size - i));
      drain(r, &small);
    }
    invariant(small == expected, "a 16-byte limit gives other frames than expected");
  }
  return whole;
}

// Releases the handles pack_python made since `mark` (ids are sequential).
uint64_t handle_mark() {
  uint64_t id = handles().add(Py_None);
  handles().release(id);
  return id;
}
void release_since(uint64_t mark) {
  uint64_t now = handle_mark();
  for (uint64_t id = mark + 1; id < now; ++id) handles().release(id);
}

void pack_back(PyObject* v, Mode mode) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  try {
    pack_python(pk, v, mode);
  } catch (const EncodeError&) {
    invariant(mode == Mode::Value, "EncodeError outside value mode");
    return;
  } catch (const PythonException&) {
    return;
  }
  // What the program sends must be readable msgpack again.
  msgpack::object_handle again = msgpack::unpack(buf.data(), buf.size());
  (void)again;
}

void convert(const std::string& frame) {
  msgpack::object_handle oh;
  try {
    oh = msgpack::unpack(frame.data(), frame.size(), nullptr, nullptr, kServerLimits);
  } catch (const msgpack::unpack_error&) {
    return;
  }
  const msgpack::object& o = oh.get();
  uint64_t mark = handle_mark();
  for (bool hashable : {false, true}) {
    try {
      PyRef v = to_python(o, hashable);
      invariant(v.get() != nullptr, "to_python returned null");
      invariant(!PyErr_Occurred(), "to_python left a Python error set");
      if (!hashable) {
        pack_back(v.get(), Mode::Auto);
        pack_back(v.get(), Mode::Value);
        pack_back(v.get(), Mode::Ref);
      }
    } catch (const DecodeError& e) {
      invariant(!e.kind.empty(), "DecodeError without a kind");
    } catch (const PythonException&) {
    }
    invariant(!PyErr_Occurred(), "a Python error left set after conversion");
  }
  try {
    if (o.type == msgpack::type::ARRAY) to_args(o);
    if (o.type == msgpack::type::MAP) to_kwargs(o);
  } catch (const DecodeError&) {
  } catch (const PythonException&) {
  }
  invariant(!PyErr_Occurred(), "a Python error left set after to_args/to_kwargs");
  release_since(mark);
}

// ---- seed corpus: valid requests from docs/protocol.md, one framed request per file

std::string packed(const char* python_literal) {
  PyRef g = check(PyDict_New());
  check_status(PyDict_SetItemString(g.get(), "__builtins__", PyEval_GetBuiltins()));
  PyRef v = check(PyRun_String(python_literal, Py_eval_input, g.get(), g.get()));
  msgpack::sbuffer buf;
  Packer pk(buf);
  pack_python(pk, v.get(), Mode::Value, false);
  return std::string(buf.data(), buf.size());
}

std::string ext(int8_t type, const std::string& payload) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_ext(payload.size(), type);
  pk.pack_ext_body(payload.data(), payload.size());
  return std::string(buf.data(), buf.size());
}

void write_seeds(const char* dir) {
  mkdir(dir, 0755);
  std::vector<std::string> bodies;
  for (const char* lit : {
           "[1, 'ping']",
           "[2, 'call', 'math', 'sqrt', [2.25], {}, 'auto']",
           "[3, 'call', 'builtins', 'int', ['ff'], {'base': 16}, 'value']",
           "[4, 'getattr', 'math', 'pi', 'auto']",
           "[5, 'setattr', 'sys', 'x', [1, 2]]",
           "[6, 'eval', 'x + 1', {'x': 41}, 'auto']",
           "[7, 'exec', 'y = 1', {}]",
           "[8, 'describe', 'json', 1, False]",
           "[0, 'release', [1, 2, 3]]",
           "[0, 'cancel', 6]",
           "[9, 'stats']",
           "[10, 'eval', 'x', {'x': [None, True, -1, 2 ** 63, 1.5, 'caf\\u00e9', b'\\xff', {1: 'a', 'k': []}]}, 'auto']",
           "[11, 'eval', 'x', {'x': (1, {1, 2}, frozenset({3}), 2 ** 100, -(2 ** 70))}, 'value']",
           "[12, 'eval', 'x', {'x': {(1, 2): 'tuple key', frozenset({1}): 'frozenset key'}}, 'auto']",
       }) {
    bodies.push_back(packed(lit));
  }
  auto request = [](uint64_t id, const char* op, std::vector<std::string> args) {
    msgpack::sbuffer buf;
    Packer pk(buf);
    pk.pack_array(static_cast<uint32_t>(2 + args.size()));
    pk.pack_uint64(id);
    pk.pack(std::string(op));
    std::string out(buf.data(), buf.size());
    for (const std::string& a : args) out += a;
    return out;
  };
  auto handle = [](uint64_t id, const std::string& type_name) {
    std::string p(8, '\0');
    for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(id >> (56 - 8 * i));
    return ext(kHandle, p + type_name);
  };
  auto ints = [](std::vector<int> vs) {
    msgpack::sbuffer buf;
    Packer pk(buf);
    pk.pack_array(static_cast<uint32_t>(vs.size()));
    for (int v : vs) pk.pack_int(v);
    return std::string(buf.data(), buf.size());
  };
  std::string paris;
  {
    msgpack::sbuffer buf;
    Packer pk(buf);
    pk.pack_array(11);
    for (int v : {2024, 7, 14, 12, 30, 15, 123456}) pk.pack_int(v);
    pk.pack(std::string("Europe/Paris"));
    pk.pack(std::string("CEST"));
    pk.pack_int(3600);
    pk.pack_int(3600);
    paris.assign(buf.data(), buf.size());
  }
  bodies.push_back(request(20, "repr", {handle(1, "list"), packed("80")}));
  bodies.push_back(request(21, "call", {handle(3, ""), packed("'bit_length'"), packed("[]"), packed("{}"), packed("'auto'")}));
  bodies.push_back(request(22, "next", {handle(4, "tuple"), packed("10"), packed("'value'")}));
  bodies.push_back(request(23, "to_elixir", {handle(5, "object")}));
  bodies.push_back(request(24, "eval", {packed("'x'"), std::string("\x81\xa1x", 3) + ext(kDate, ints({2024, 2, 29})),
                                        packed("'auto'")}));
  bodies.push_back(request(25, "eval", {packed("'x'"), std::string("\x81\xa1x", 3) + ext(kTime, ints({23, 59, 59, 999999})),
                                        packed("'auto'")}));
  bodies.push_back(request(26, "eval", {packed("'x'"),
                                        std::string("\x81\xa1x", 3) + ext(kNaiveDateTime, ints({2000, 1, 1, 0, 0, 0, 1})),
                                        packed("'auto'")}));
  bodies.push_back(request(27, "eval", {packed("'x'"), std::string("\x81\xa1x", 3) + ext(kDateTime, paris), packed("'auto'")}));
  bodies.push_back(request(28, "eval", {packed("'x'"),
                                        std::string("\x81\xa1x", 3) + ext(kBigInt, std::string("\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01", 10)),
                                        packed("'auto'")}));
  bodies.push_back(request(29, "eval", {packed("'x'"), std::string("\x81\xa1x", 3) + ext(kTuple, ints({1, 2})),
                                        packed("'auto'")}));
  bodies.push_back(request(30, "eval", {packed("'x'"), std::string("\x81\xa1x", 3) + ext(kSet, ints({1, 2})),
                                        packed("'auto'")}));
  bodies.push_back(request(31, "eval", {packed("'x'"), std::string("\x81\xa1x", 3) + ext(kFrozenSet, ints({3})),
                                        packed("'auto'")}));
  int n = 0;
  for (const std::string& b : bodies) {
    std::string path = std::string(dir) + "/seed_" + std::to_string(n++);
    FILE* f = fopen(path.c_str(), "wb");
    if (!f) {
      perror(path.c_str());
      exit(1);
    }
    std::string framed = frame_header(b.size()) + b;
    fwrite(framed.data(), 1, framed.size(), f);
    fclose(f);
  }
  // Two requests in one stream, and one split mid-frame.
  std::string two = frame_header(bodies[0].size()) + bodies[0] + frame_header(bodies[5].size()) + bodies[5];
  for (const std::string& s : {two, two.substr(0, two.size() - 3)}) {
    std::string path = std::string(dir) + "/seed_" + std::to_string(n++);
    FILE* f = fopen(path.c_str(), "wb");
    fwrite(s.data(), 1, s.size(), f);
    fclose(f);
  }
  fprintf(stderr, "fuzz_frames: wrote %d seeds to %s\n", n, dir);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Python's own allocator (pymalloc) hides its objects from AddressSanitizer and
  // LeakSanitizer; plain malloc lets them see every object.
  PyPreConfig pre;
  PyPreConfig_InitPythonConfig(&pre);
  pre.allocator = PYMEM_ALLOCATOR_MALLOC;
  pre.use_environment = 0;
  PyStatus st = Py_PreInitialize(&pre);
  if (PyStatus_Exception(st)) Py_ExitStatusException(st);

  const char* python = getenv("SNAKEBRIDGE_PYTHON");
  sb::initialize_interpreter({python && *python ? python : "/usr/bin/python3", SNAKEBRIDGE_LIBPYTHON, {}, ""});
  Gil gil;
  ensure_datetime_api();
  PyRef g = check(PyDict_New());
  check_status(PyDict_SetItemString(g.get(), "__builtins__", PyEval_GetBuiltins()));
  for (const char* lit : kHandleObjects) {
    PyRef v = check(PyRun_String(lit, Py_eval_input, g.get(), g.get()));
    handles().add(v.get());
  }
  // Warm the caches (zoneinfo, collections.abc, type names) so that they are
  // not mistaken for leaks of the first inputs.
  check(PyRun_String("import zoneinfo, collections.abc, traceback\nzoneinfo.ZoneInfo('Europe/Paris')\n", Py_file_input,
                     g.get(), g.get()));
  if (const char* dir = getenv("SNAKEBRIDGE_FUZZ_WRITE_SEEDS")) {
    write_seeds(dir);
    exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<Event> frames = check_framing(data, size);
  Gil gil;
  for (const Event& e : frames) {
    if (!e.oversized) convert(e.body);
  }
  drain_released();
  return 0;
}
