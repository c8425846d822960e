// Elixir terms Python holds without a Python form of their own, and Python
// calling Elixir (docs/callbacks.md, DESIGN §8), for both backends.
//
// A pid, reference, port or function reaches Python as an opaque object of the
// module `snakebridge` (Pid, Reference, Port, Function) that comes back to
// Elixir as the very same term; a Function is also callable: calling it runs
// the Elixir function. What the object holds is the front end's
// (TermPayload: the NIF keeps the term in an environment of its own, the port
// its external term format); what it means, its Python behaviour and the wait
// for Elixir's answer are decided here once.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "pyref.hpp"

namespace sb {

class PythonThread;
struct InterruptTarget;

// A front end's copy of a BEAM term.
struct TermPayload {
  virtual ~TermPayload() = default;
  // The same BEAM term (Python's ==, and hash() agreeing with it).
  virtual bool same(const TermPayload& other) const = 0;
  virtual uint64_t hash() const = 0;
  // For repr(): the term as Elixir prints it (or a placeholder).
  virtual std::string describe() const = 0;
};

enum class TermKind { Pid, Reference, Port, Function, Other };

// GIL held. A new snakebridge.Pid / Reference / Port / Function (or, Other, a
// hidden holder of any term) for the payload.
PyRef make_elixir_term(TermKind kind, std::shared_ptr<const TermPayload> payload);
// GIL held. The payload of such an object, or null for any other object.
std::shared_ptr<const TermPayload> elixir_term_payload(PyObject* o);

// How a front end runs Elixir for Python.
class ElixirHost {
 public:
  virtual ~ElixirHost() = default;
  // GIL held. Runs `fun` (a Function's payload) with the positional `args`
  // (a tuple) and the keywords `kwargs` (a dict, or null); or, `fun` null,
  // the function named by `module` and `function`. The result as a new
  // reference, or null with a Python error set.
  virtual PyObject* call(const TermPayload* fun, PyObject* module, PyObject* function, PyObject* args,
                         PyObject* kwargs) = 0;
  // GIL held. Sends `message` (converted to Elixir) to `pid`; false with a
  // Python error set when it cannot.
  virtual bool send(const TermPayload& pid, PyObject* message) = 0;
};

// Set once by the front end, before Python runs.
void set_elixir_host(ElixirHost* host);

// The interrupt target of the request this thread is running (null: none),
// for the scope: a callback made meanwhile gives up when it is interrupted.
class CurrentRequest {
 public:
  explicit CurrentRequest(InterruptTarget* target);
  ~CurrentRequest();
  CurrentRequest(const CurrentRequest&) = delete;
  CurrentRequest& operator=(const CurrentRequest&) = delete;
  static InterruptTarget* target();

 private:
  InterruptTarget* outer_;
};

// One callback's wait for Elixir's answer. Made by the Python thread that
// calls back; notify() from any thread once the answer is stored.
class CallbackWait {
 public:
  CallbackWait();
  void notify();
  // GIL held, released meanwhile. Waits until done() — on a SnakeBridge
  // Python thread running the requests its caller makes meanwhile (a callback
  // that calls Python again) — or until the current request is interrupted:
  // then false, with snakebridge.Cancelled set.
  bool wait(const std::function<bool()>& done);

 private:
  PythonThread* thread_;  // null: a thread Python started (no nested requests)
  std::mutex mu_;
  std::condition_variable cv_;
};

// GIL held. Sets snakebridge.ElixirError(message) with its Elixir stacktrace
// and, hidden, the original {kind, reason, stacktrace} (`original`, may be
// null): the caller's error keeps it if Python lets the exception escape.
void set_elixir_error(const std::string& message, const std::string& stacktrace,
                      std::shared_ptr<const TermPayload> original);
// GIL held. The original Elixir error an exception carries, or null.
std::shared_ptr<const TermPayload> elixir_error_original(PyObject* exception);

// GIL held, at start: the built-in module `_snakebridge` (call, send, the
// types, ElixirError, Cancelled), which priv/python/snakebridge.py presents.
void install_elixir_module();

}  // namespace sb
