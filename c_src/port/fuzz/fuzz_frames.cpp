// libFuzzer target: arbitrary bytes as the port program's input stream (fd 3).
//
// Each input is fed through FrameReader; every complete frame is unpacked as
// Server::on_frame does (the server's limits, strings referenced in the frame,
// exactly one value), then:
//   - if it is a request [id, op, ...], decoded into a WireRequest as
//     request_decoder.cpp's decode_request does, and every value of it built with
//     FromElixir<MsgpackReader> the way build_request would (args, kwargs,
//     value, globals, names) - without importing modules or calling anything;
//   - the whole frame built as a value, in a hashable position (a map key),
//     and as args / kwargs / globals;
//   - what was built walked back with ToElixir<MsgpackSink> in :auto, :value
//     and :ref, and the reply bytes unpacked again (exactly one value);
//   - a to_array request of a handle executed and its reply (ext 15) packed.
// The documented failures are caught: std::exception from unpacking (malformed
// msgpack, limits), Refusal, BadRequest and UnknownObject from the builder,
// PythonException (a date out of range, an unhashable handle as a key),
// NoElixirValue (:value only), NotAnArray (to_array of a handle that is not one). Anything else escaping, a Python error left
// pending, a refusal whose path disagrees with its depth, or FrameReader
// disagreeing with itself is a crash.
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
#include <initializer_list>
#include <string>
#include <vector>

#include "../../core/arrays.hpp"
#include "../../core/errors.hpp"
#include "../../core/executor.hpp"
#include "../../core/from_elixir.hpp"
#include "../../core/interpreter.hpp"
#include "../../core/request.hpp"
#include "../../core/thread_free.hpp"
#include "../../core/to_elixir.hpp"
#include "../../core/values.hpp"
#include "../framing.hpp"
#include "../handles.hpp"
#include "../msgpack_reader.hpp"
#include "../msgpack_sink.hpp"
#include "../request_decoder.hpp"
#include "../../nif/reply_frames.hpp"

#ifndef SNAKEBRIDGE_LIBPYTHON
#define SNAKEBRIDGE_LIBPYTHON ""
#endif

using namespace sb;
using namespace sb::port;

namespace {

// As in server.cpp (kLimits): no depth limit of the parser's own; the core
// refuses terms nested past kMaxArgumentDepth.
const msgpack::unpack_limit kServerLimits(1 << 24, 1 << 24, 1 << 30, 1 << 30, 1 << 30, 1 << 30);
constexpr size_t kSmallLimit = 16;

// Handles 1..7 exist, so ext 1 payloads can resolve (6 and 7 are arrays).
const char* kHandleObjects[] = {"[1, 2, 3]", "'text'", "42", "(1, (2, 3))", "iter([1, 2])",
                                "__import__('array').array('d', [1.5, 2.5])",
                                "memoryview(bytes(range(12))).cast('B', (3, 4))[::2]"};

using V = const msgpack::object*;

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

// Releases the handles made since `mark` (ids are sequential).
uint64_t handle_mark() {
  uint64_t id = handles().add(Py_None);
  handles().release(id);
  return id;
}
void release_since(uint64_t mark) {
  uint64_t now = handle_mark();
  for (uint64_t id = mark + 1; id < now; ++id) handles().release(id);
}

void check_refusal(const Refusal& e) {
  invariant(e.term != 0, "a refusal without its term");
  invariant(e.reason != RefusalReason::TooDeep || e.path.size() == size_t(kMaxArgumentDepth) + 1,
            "too_deep at another depth than the limit");
  invariant(e.path.size() <= size_t(kMaxArgumentDepth) + 1, "a refusal path deeper than the limit");
  for (const PathStep& s : e.path) {
    invariant(s.kind != PathStep::Field || s.field != nullptr, "a Field step without its name");
  }
}

// Runs one builder call; the documented failures are fine.
template <class F>
void guarded(F&& f) {
  try {
    f();
  } catch (const Refusal& e) {
    check_refusal(e);
  } catch (const BadRequest& e) {
    invariant(!e.message.empty(), "a BadRequest without a message");
  } catch (const UnknownObject&) {
  } catch (const PythonException&) {
  } catch (const NotAnArray& e) {
    invariant(!e.message.empty(), "a NotAnArray without a message");
  }
  invariant(!PyErr_Occurred(), "a Python error left set");
}

// The reply of a request as the program packs it: readable msgpack, one value.
void reply_back(MsgpackReader& r, const WireRequest<V>& w) {
  guarded([&] {
    Request q = build_request(r, w);
    Outcome out = execute(q);
    msgpack::sbuffer buf;
    Packer pk(buf);
    MsgpackSink sink(pk);
    emit_outcome(sink, out, q.mode);
    size_t offset = 0;
    msgpack::object_handle again = msgpack::unpack(buf.data(), buf.size(), offset);
    invariant(offset == buf.size(), "a reply value followed by other bytes");
  });
}

// What the program would send for `v`: readable msgpack again, exactly one value.
void walk_back(PyObject* v, ReturnMode mode) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  MsgpackSink sink(pk);
  try {
    ToElixir<MsgpackSink>(sink, mode).result(v);
  } catch (const NoElixirValue&) {
    invariant(mode == ReturnMode::Value, "NoElixirValue outside :value");
    return;
  } catch (const PythonException&) {
    invariant(!PyErr_Occurred(), "a Python error left set by ToElixir");
    return;
  }
  invariant(!PyErr_Occurred(), "a Python error left set by ToElixir");
  size_t offset = 0;
  msgpack::object_handle again = msgpack::unpack(buf.data(), buf.size(), offset);
  invariant(offset == buf.size(), "a reply value followed by other bytes");
}

void built(PyRef v) {
  if (!v) return;  // kwargs: none
  walk_back(v.get(), ReturnMode::Auto);
  walk_back(v.get(), ReturnMode::Value);
  walk_back(v.get(), ReturnMode::Ref);
}

// The values of a request, built as build_request builds them (targets that
// name modules are only read as text: nothing is imported).
void build_request_values(MsgpackReader& r, const WireRequest<V>& w) {
  auto target = [&](V t) {
    guarded([&] {
      FromElixir<MsgpackReader> b(r);
      if (r.kind(t) == WireKind::Object) built(b.value(t));
      else b.text(t, "the target");
    });
  };
  auto text = [&](V t) {
    guarded([&] {
      FromElixir<MsgpackReader> b(r);
      b.text(t, "a name");
    });
  };
  switch (w.op) {
    case Op::Call:
      target(w.target);
      if (r.kind(w.name) != WireKind::Nil) text(w.name);
      guarded([&] {
        FromElixir<MsgpackReader> b(r);
        built(b.args(w.args));
      });
      guarded([&] {
        FromElixir<MsgpackReader> b(r);
        built(b.kwargs(w.kwargs));
      });
      break;
    case Op::GetAttr:
    case Op::SetAttr:
      target(w.target);
      text(w.name);
      if (w.op == Op::SetAttr) {
        guarded([&] {
          FromElixir<MsgpackReader> b(r);
          built(b.value(w.value));
        });
      }
      break;
    case Op::Eval:
    case Op::Exec:
      text(w.code);
      guarded([&] {
        FromElixir<MsgpackReader> b(r);
        built(b.globals(w.globals));
      });
      break;
    case Op::Describe:
      text(w.target);
      break;
    case Op::Next:
    case Op::Close:
    case Op::ToElixir:
    case Op::Repr:
    case Op::ToColumns:
      target(w.target);
      break;
    case Op::ToArray:
      target(w.target);
      // Only handles: a module name would be imported.
      if (r.kind(w.target) == WireKind::Object) reply_back(r, w);
      break;
  }
}

// The NIF's reply-channel router (nif/reply_frames.hpp) reads the same bytes
// as a frame from the program: whatever it routes must be what msgpack-cxx
// unpacks there (a frame it cannot read is left to the worker, never misrouted).
void check_route(const std::string& frame) {
  sb::nif::RoutedFrame r = sb::nif::route_frame(frame.data(), frame.size());
  if (r.kind == sb::nif::RoutedFrame::Kind::Other) return;
  msgpack::object_handle oh;
  try {
    size_t offset = 0;
    oh = msgpack::unpack(frame.data(), frame.size(), offset);
  } catch (const std::exception&) {
    // (The router reads only a frame's head: the rest may be malformed.)
    return;
  }
  const msgpack::object& o = oh.get();
  invariant(o.type == msgpack::type::ARRAY && o.via.array.size >= 3, "routed frame is not an array of 3+");
  const msgpack::object* a = o.via.array.ptr;
  invariant(a[0].type == msgpack::type::POSITIVE_INTEGER, "routed frame's id is not a positive integer");
  switch (r.kind) {
    case sb::nif::RoutedFrame::Kind::Reply:
      invariant(o.via.array.size == 3 && a[0].via.u64 == r.id && r.id > 0, "reply routed under another id");
      break;
    case sb::nif::RoutedFrame::Kind::Output: {
      invariant(o.via.array.size == 5 && a[0].via.u64 == 0, "output routed from a frame of another shape");
      invariant(a[3].type == msgpack::type::STR && std::string(a[3].via.str.ptr, a[3].via.str.size) == r.text,
                "output text differs");
      uint64_t req = a[4].type == msgpack::type::POSITIVE_INTEGER ? a[4].via.u64 : 0;
      invariant(req == r.id, "output routed to another request");
      break;
    }
    case sb::nif::RoutedFrame::Kind::Callback: {
      invariant(o.via.array.size == 7 && a[0].via.u64 == 0, "callback routed from a frame of another shape");
      uint64_t req = a[2].type == msgpack::type::POSITIVE_INTEGER ? a[2].via.u64 : 0;
      invariant(req == r.id, "callback routed to another request");
      break;
    }
    case sb::nif::RoutedFrame::Kind::Other:
      break;
  }
}

void convert(const std::string& frame) {
  check_route(frame);
  // As the server: claims checked before unpacking; a valid frame always passes.
  if (!claims_fit(frame.data(), frame.size())) {
    try {
      size_t offset = 0;
      auto none = msgpack::unpack(frame.data(), frame.size(), offset, nullptr, nullptr,
                                  msgpack::unpack_limit(1 << 10, 1 << 10, 1 << 30, 1 << 30, 1 << 30, 1 << 30));
      invariant(offset != frame.size(), "claims_fit refused a frame that unpacks");
    } catch (const std::exception&) {
    }
    return;
  }
  msgpack::object_handle oh;
  try {
    size_t offset = 0;
    auto reference = [](msgpack::type::object_type, size_t, void*) { return true; };
    oh = msgpack::unpack(frame.data(), frame.size(), offset, reference, nullptr, kServerLimits);
    if (offset != frame.size()) return;  // refused by the server
  } catch (const std::exception&) {
    return;
  }
  const msgpack::object& o = oh.get();
  uint64_t mark = handle_mark();
  MsgpackReader r;

  std::string op;
  if (o.type == msgpack::type::ARRAY && o.via.array.size >= 2 && o.via.array.ptr[0].type == msgpack::type::POSITIVE_INTEGER &&
      as_text(o.via.array.ptr[1], &op)) {
    WireRequest<V> w;
    if (decode_request(o.via.array, op, &w)) {
      // The server's test for a call it may answer on the reading thread
      // (core/thread_free.hpp) reads every argument of every call.
      thread_free_call(r, w);
      build_request_values(r, w);
    }
  }

  // The whole frame, in each position the builder has.
  guarded([&] {
    FromElixir<MsgpackReader> b(r);
    built(b.value(&o));
  });
  guarded([&] {  // as a map key: hashable
    msgpack::object_kv kv;
    kv.key = o;
    kv.val = msgpack::object();
    msgpack::object m;
    m.type = msgpack::type::MAP;
    m.via.map.size = 1;
    m.via.map.ptr = &kv;
    FromElixir<MsgpackReader> b(r);
    built(b.value(&m));
  });
  guarded([&] {
    FromElixir<MsgpackReader> b(r);
    built(b.args(&o));
  });
  guarded([&] {
    FromElixir<MsgpackReader> b(r);
    built(b.kwargs(&o));
  });
  guarded([&] {
    FromElixir<MsgpackReader> b(r);
    built(b.globals(&o));
  });
  release_since(mark);
}

// ---- seed corpus: valid requests from docs/protocol.md, one framed request per file

// Request-spelled MessagePack, value by value.
class W {
 public:
  void write(const char* p, size_t n) { s_.append(p, n); }
  W& nil() { return pk().pack_nil(), *this; }
  W& t() { return pk().pack_true(), *this; }
  W& f() { return pk().pack_false(), *this; }
  W& i(int64_t v) { return pk().pack_int64(v), *this; }
  W& u(uint64_t v) { return pk().pack_uint64(v), *this; }
  W& f64(double d) {
    uint64_t bits;
    memcpy(&bits, &d, 8);
    s_.push_back('\xcb');
    for (int k = 0; k < 8; ++k) s_.push_back(static_cast<char>(bits >> (56 - 8 * k)));
    return *this;
  }
  W& atom(const std::string& a) {  // atoms and names: str
    pk().pack_str(static_cast<uint32_t>(a.size()));
    pk().pack_str_body(a.data(), static_cast<uint32_t>(a.size()));
    return *this;
  }
  W& bin(const std::string& b) {  // Elixir binaries: bin
    pk().pack_bin(static_cast<uint32_t>(b.size()));
    pk().pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
    return *this;
  }
  W& ext(int8_t type, const std::string& p) {
    pk().pack_ext(p.size(), type);
    pk().pack_ext_body(p.data(), static_cast<uint32_t>(p.size()));
    return *this;
  }
  W& marker(int8_t type) { return ext(type, std::string(1, '\0')); }
  W& arr(uint32_t n) { return pk().pack_array(n), *this; }
  W& map(uint32_t n) { return pk().pack_map(n), *this; }
  W& tuple(uint32_t n) { return arr(n + 1).marker(kTupleMarker); }
  W& set(uint32_t n) { return arr(n + 1).marker(kSetMarker); }
  W& strct(const std::string& module, uint32_t n) { return arr(3).marker(kStructMarker).atom(module).map(n); }
  W& handle(uint64_t id) {
    std::string p(8, '\0');
    for (int k = 0; k < 8; ++k) p[k] = static_cast<char>(id >> (56 - 8 * k));
    return ext(kHandle, p);
  }
  W& iso() { return atom("calendar").atom("Elixir.Calendar.ISO"); }
  W& us(int64_t v) { return atom("microsecond").tuple(2).i(v).i(v ? 6 : 0); }
  W& then(const W& w) { return s_ += w.s_, *this; }
  // %SnakeBridge.Array{data: data, type: {kind, bits}, shape: shape}
  W& array(const std::string& data, const char* kind, int64_t bits, std::initializer_list<int64_t> shape) {
    strct("Elixir.SnakeBridge.Array", 3).atom("data").bin(data).atom("type").tuple(2).atom(kind).i(bits);
    atom("shape").tuple(static_cast<uint32_t>(shape.size()));
    for (int64_t d : shape) i(d);
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  msgpack::packer<W> pk() { return msgpack::packer<W>(*this); }
  std::string s_;
};

// [id, "eval", "x", %{"x" => value}, "auto"]
W eval_x(uint64_t id, const W& value, const char* mode = "auto") {
  return W().arr(5).u(id).atom("eval").bin("x").map(1).bin("x").then(value).atom(mode);
}

void write_file(const std::string& path, const std::string& bytes) {
  FILE* f = fopen(path.c_str(), "wb");
  if (!f) {
    perror(path.c_str());
    exit(1);
  }
  fwrite(bytes.data(), 1, bytes.size(), f);
  fclose(f);
}

void write_seeds(const char* dir) {
  mkdir(dir, 0755);
  std::vector<std::pair<std::string, W>> bodies;
  auto add = [&](const char* name, W w) { bodies.emplace_back(name, std::move(w)); };
  add("ping", W().arr(2).u(1).atom("ping"));
  add("ping_bin", W().arr(2).u(1).bin("ping"));
  add("call_sqrt", W().arr(7).u(2).atom("call").bin("math").bin("sqrt").arr(1).f64(2.25).map(0).atom("auto"));
  add("call_int_kwargs_map",
      W().arr(7).u(3).atom("call").bin("builtins").bin("int").arr(1).bin("ff").map(1).atom("base").i(16).atom("value"));
  add("call_kwargs_keyword_list", W().arr(7).u(3).atom("call").bin("builtins").bin("dict").arr(0)
                                      .arr(2).tuple(2).atom("nan").f64(0.0).tuple(2).atom("b").i(2).atom("auto"));
  add("call_target_itself", W().arr(7).u(3).atom("call").bin("builtins").nil().nil().nil().atom("ref"));
  add("getattr", W().arr(5).u(4).atom("getattr").bin("math").bin("pi").atom("auto"));
  add("setattr", W().arr(5).u(5).atom("setattr").bin("sys").bin("x").arr(2).i(1).i(2));
  add("eval", W().arr(5).u(6).atom("eval").bin("x + 1").map(1).bin("x").i(41).atom("auto"));
  add("exec", W().arr(5).u(7).atom("exec").bin("y = 1").map(0).nil());
  add("describe", W().arr(5).u(8).atom("describe").bin("json").i(1).f());
  add("release", W().arr(3).u(0).atom("release").arr(3).i(1).i(2).i(3));
  add("cancel", W().arr(3).u(0).atom("cancel").i(6));
  add("stats", W().arr(2).u(9).atom("stats"));
  add("drain", W().arr(2).u(10).atom("drain"));
  // The program's own frames, as the NIF's reply channel routes them (check_route).
  add("reply_ok", W().arr(3).u(70000).atom("ok").f64(1.5));
  add("reply_error", W().arr(3).u(12).atom("error").map(1).atom("kind").atom("python"));
  add("output_of_request", W().arr(5).u(0).atom("output").atom("stderr").atom("hello\n").u(300));
  add("output_outside", W().arr(5).u(0).atom("output").atom("stdout").atom("x").nil());
  add("callback_of_request", W().arr(7).u(0).atom("callback").u(5).u(1).atom("f").arr(0).map(0));
  add("callback_outside", W().arr(7).u(0).atom("callback").nil().u(2).arr(2).atom("Enum").atom("sum").arr(0).map(0));
  add("repr_handle", W().arr(4).u(20).atom("repr").handle(1).i(80));
  add("call_on_handle", W().arr(7).u(21).atom("call").handle(3).bin("bit_length").arr(0).map(0).atom("auto"));
  add("next_handle", W().arr(5).u(22).atom("next").handle(5).i(10).atom("value"));
  add("close_handle", W().arr(3).u(22).atom("close").handle(5));
  add("to_elixir_handle", W().arr(3).u(23).atom("to_elixir").handle(4));
  add("unknown_handle", W().arr(3).u(23).atom("to_elixir").handle(999));
  // Values of every row of docs/protocol.md's request table.
  add("plain_values", eval_x(30, W().arr(12).nil().t().f().i(-1).u(uint64_t(1) << 63).f64(1.5).f64(-0.0)
                                    .bin("caf\xc3\xa9").bin("\xff").atom("ok").atom("nan").atom("neg_infinity")));
  add("big_ints", eval_x(31, W().arr(2).ext(kBigInt, std::string("\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01", 10))
                                 .ext(kBigInt, std::string("\x00", 1) + std::string(20, '\xff'))));
  add("bytes", eval_x(32, W().arr(3).ext(kBytes, "x").ext(kBytes, "valid").ext(kBytes, "")));
  add("bytes_first_in_list", eval_x(32, W().arr(2).ext(kBytes, "x").i(1)));
  // Elixir terms Python holds (ext 14: external term format): a pid, a
  // reference, a function (a dict key too), and payloads too short to name one.
  add("terms", eval_x(37, W().arr(5).ext(kTerm, std::string("\x83\x58\x64\x00\x0d\x6e\x6f\x6e\x6f\x64\x65\x40\x6e\x6f\x68\x6f\x73\x74\x00\x00\x00\x60\x00\x00\x00\x00\x00\x00\x00\x00", 30)).ext(kTerm, std::string("\x83\x5a\x00\x03\x64\x00\x0d\x6e\x6f\x6e\x6f\x64\x65\x40\x6e\x6f\x68\x6f\x73\x74\x00\x00\x00\x00\x00\x03\x79\x5a\x5d\x30\x00\x01\x34\x9a\x20\xa7", 36)).ext(kTerm, std::string("\x83\x71\x64\x00\x0b\x45\x6c\x69\x78\x69\x72\x2e\x45\x6e\x75\x6d\x64\x00\x03\x73\x75\x6d\x61\x01", 24))
                              .map(1).ext(kTerm, std::string("\x83\x71\x64\x00\x0b\x45\x6c\x69\x78\x69\x72\x2e\x45\x6e\x75\x6d\x64\x00\x03\x73\x75\x6d\x61\x01", 24)).i(1).ext(kTerm, std::string("\x83", 1))));
  add("term_empty", eval_x(38, W().arr(1).ext(kTerm, "")));
  // ext 16: shared bytes; the names are never this process's objects (a
  // missing one, someone else's, a path), so each is an OSError.
  add("shared_bytes", eval_x(39, W().arr(3).ext(kShared, std::string("\0\0\0\0\0\0\0\x08", 8) + "/snakebridge-1-1")
                                     .ext(kShared, std::string(8, '\0') + "/snakebridge-1")
                                     .ext(kShared, std::string("\0\0\0\0\0\0\0\x01", 8) + "/etc/passwd")));
  add("tuple_set", eval_x(33, W().tuple(3).i(1).set(2).i(2).i(3).tuple(0), "value"));
  add("map_keys", eval_x(34, W().map(4).i(1).bin("a").bin("k").arr(0).arr(2).i(1).i(2).bin("list key")
                                 .set(1).i(1).bin("set key")));
  add("date", eval_x(35, W().strct("Elixir.Date", 4).iso().atom("year").i(2024).atom("month").i(2).atom("day").i(29)));
  add("time", eval_x(36, W().strct("Elixir.Time", 5).iso().atom("hour").i(23).atom("minute").i(59).atom("second").i(59)
                             .us(999999)));
  add("naive", eval_x(37, W().strct("Elixir.NaiveDateTime", 8).iso().atom("year").i(2000).atom("month").i(1)
                              .atom("day").i(1).atom("hour").i(0).atom("minute").i(0).atom("second").i(0).us(1)));
  add("datetime", eval_x(38, W().strct("Elixir.DateTime", 12).iso().atom("year").i(2024).atom("month").i(7)
                                 .atom("day").i(14).atom("hour").i(12).atom("minute").i(30).atom("second").i(15)
                                 .us(123456).atom("time_zone").bin("Europe/Paris").atom("zone_abbr").bin("CEST")
                                 .atom("utc_offset").i(3600).atom("std_offset").i(3600)));
  add("user_struct", eval_x(39, W().strct("Elixir.MyApp.Point", 2).atom("x").i(1).atom("y").i(2)));
  add("opaque", eval_x(40, W().arr(2).i(1).marker(kOpaque)));
  add("array_args", eval_x(44, W().arr(4).array(std::string(48, '\x01'), "f", 64, {2, 3})
                                  .array(std::string(4, '\x07'), "s", 32, {}).array("", "c", 128, {0, 5})
                                  .array(std::string(6, '\x02'), "u", 16, {3})));
  add("array_args_bad", eval_x(45, W().arr(5).array(std::string(47, '\x01'), "f", 64, {2, 3})
                                      .array("x", "f", 8, {1}).array("x", "q", 8, {1}).array("x", "u", 8, {-1})
                                      .array(std::string(8, '\0'), "u", 8, {1LL << 62, 1LL << 62})));
  add("to_array_handle", W().arr(5).u(46).atom("to_array").u(1).handle(6).t());
  add("to_array_strided_handle", W().arr(5).u(47).atom("to_array").u(1).handle(7).f());
  add("to_array_not_array", W().arr(5).u(48).atom("to_array").u(1).handle(1).f());
  add("handles", eval_x(41, W().arr(3).handle(1).handle(2).map(1).handle(3).handle(4)));
  add("collision", eval_x(42, W().map(2).i(1).nil().f64(1.0).nil()));
  {
    W deep;
    for (int k = 0; k < 1030; ++k) deep.arr(1);
    deep.nil();
    add("too_deep", eval_x(43, deep));
  }

  // Amplification: a 1 MiB frame of tuples nested 1000 deep (marker-led
  // arrays), and a 1 MiB frame of nils (24 bytes of msgpack::object each).
  {
    const uint32_t chains = (1 << 20) / 4001;
    W tuples = W().arr(chains);
    for (uint32_t c = 0; c < chains; ++c) {
      for (int k = 0; k < 1000; ++k) tuples.tuple(1);
      tuples.nil();
    }
    add("amplification_nested_tuples_1MiB", eval_x(50, tuples));
    const uint32_t n = (1 << 20) - 64;  // the file within libFuzzer's 1 MiB max_len
    W nils = W().arr(n);
    for (uint32_t k = 0; k < n; ++k) nils.nil();
    add("amplification_nils_1MiB", eval_x(51, nils));
  }

  int count = 0;
  for (const auto& [name, w] : bodies) {
    write_file(std::string(dir) + "/" + name, frame_header(w.str().size()) + w.str());
    ++count;
  }
  // Two requests in one stream, and one split mid-frame.
  const std::string& a = bodies[0].second.str();
  const std::string& b = bodies[8].second.str();
  std::string two = frame_header(a.size()) + a + frame_header(b.size()) + b;
  write_file(std::string(dir) + "/two_frames", two);
  write_file(std::string(dir) + "/split_frame", two.substr(0, two.size() - 3));
  count += 2;
  fprintf(stderr, "fuzz_frames: wrote %d seeds to %s\n", count, dir);
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
  // Arrays (arrays.hpp) take their no-numpy path here: numpy's import leaves
  // objects LeakSanitizer cannot see owned (reported as leaks at the first
  // input); the numpy path is covered by test_arrays.cpp and the ExUnit
  // suite. Warmed: the buffer type, an export, an array over kept bytes.
  check(PyRun_String("import sys\nsys.modules['numpy'] = None\n", Py_file_input, g.get(), g.get()));
  for (ElementType t : {ElementType{'s', 8}, ElementType{'u', 16}, ElementType{'f', 32}, ElementType{'c', 128}}) {
    std::string zeros(t.bytes() * 2, '\0');
    PyRef a = make_array(t, {2}, copy_bytes(zeros.data(), zeros.size()));
    export_array(a.get(), false);
    export_array(a.get(), true);
  }
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
