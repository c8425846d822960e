// interrupts.hpp: the interruptible time.sleep, interrupt_thread aimed at a
// sleeping or idle thread, and clear_interrupt.
#include "../core/interrupts.hpp"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../core/operations.hpp"
#include "test_support.hpp"

using namespace sb;
using namespace sbtest;
using Catch::Matchers::Contains;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// What one piece of Python run on a worker thread did.
struct Step {
  bool raised = false;
  PythonErrorInfo error;
  double seconds = 0;
  Clock::time_point ended;
};

// A std::thread that runs Python snippets, one per go(), each under its own Gil
// scope, recording the outcome of each. Snippets run in `globals`.
class PyThread {
 public:
  explicit PyThread(PyObject* globals) : globals_(globals), thread_([this] { loop(); }) {}
  ~PyThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      cv_.notify_all();
    }
    thread_.join();
  }
  // Queues a snippet; `clear_first` calls clear_interrupt() before it.
  void go(std::string code, bool clear_first = false) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({std::move(code), clear_first});
    cv_.notify_all();
  }
  // Waits (without the GIL) until `n` snippets have finished.
  bool wait_steps(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return steps_.size() >= n; });
  }
  Step step(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return steps_.at(i);
  }
  PyThreadState* tstate() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return tstate_ != nullptr; });
    return tstate_;
  }

 private:
  struct Job {
    std::string code;
    bool clear_first;
  };
  void loop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tstate_ = this_thread_state();
      cv_.notify_all();
    }
    while (true) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return quit_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.erase(queue_.begin());
      }
      Step st;
      {
        Gil gil;
        if (job.clear_first) clear_interrupt();
        auto t0 = Clock::now();
        try {
          InterruptibleScope work;  // as the NIF does around a request
          exec_statements(job.code, globals_);
        } catch (const PythonException& e) {
          st.raised = true;
          st.error = e.info();
        }
        st.seconds = seconds_since(t0);
        st.ended = Clock::now();
        if (PyErr_Occurred()) {  // never expected: recorded as a failure
          PyErr_Clear();
          st.raised = true;
          st.error.type = "<exception left pending>";
        }
      }
      std::lock_guard<std::mutex> lock(mu_);
      steps_.push_back(st);
      cv_.notify_all();
    }
  }

  PyObject* globals_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Job> queue_;
  std::vector<Step> steps_;
  PyThreadState* tstate_ = nullptr;
  bool quit_ = false;
  std::thread thread_;  // last: starts once the rest is initialised
};

// Installs the interruptible sleep and returns globals with time, operator, functools.
PyRef sleep_env() {
  install_interruptible_sleep(false);
  PyRef g = new_globals();
  py_exec("import functools, operator, threading\n", g.get());
  return g;
}

bool global_is_set(PyObject* globals, const char* name) {
  Gil gil;
  return PyDict_GetItemString(globals, name) != nullptr;
}

}  // namespace

TEST_CASE("the interruptible time.sleep still behaves like time.sleep", "[interrupts]") {
  Gil gil;
  PyRef g = sleep_env();
  PyRef doc = py_eval("time.sleep.__doc__", g.get());
  CHECK_THAT(py_str(doc.get()), Contains("SnakeBridge"));
  CHECK(py_str(py_eval("time.sleep.__module__", g.get()).get()) == "time");
  // `from time import sleep` after installation gets the same function.
  py_exec("from time import sleep\n", g.get());
  CHECK(py_int(py_eval("sleep is time.sleep", g.get()).get()) == 1);

  auto t0 = Clock::now();
  CHECK(py_eval("time.sleep(0.1)", g.get()).get() == Py_None);
  double slept = seconds_since(t0);
  CHECK(slept >= 0.1);
  CHECK(slept < 1.0);
  CHECK(py_eval("time.sleep(0)", g.get()).get() == Py_None);
  CHECK(py_eval("time.sleep(False)", g.get()).get() == Py_None);

  auto error_of = [&](const char* expr) {
    try {
      py_eval(expr, g.get());
    } catch (const PythonException& e) {
      return e.info().type + ": " + e.info().message;
    }
    return std::string("no exception");
  };
  CHECK(error_of("time.sleep(-1)") == "ValueError: sleep length must be non-negative");
  CHECK_THAT(error_of("time.sleep(float('nan'))"), Contains("ValueError"));
  CHECK_THAT(error_of("time.sleep('1')"), Contains("TypeError"));
  CHECK_THAT(error_of("time.sleep(10 ** 400)"), Contains("OverflowError"));
  CHECK(PyErr_Occurred() == nullptr);
}

TEST_CASE("the interruptible time.sleep releases the GIL while it waits", "[interrupts]") {
  GilRef g;
  {
    Gil gil;
    g = sleep_env();
  }
  PyThread t(g.get());
  t.go("started = True\ntime.sleep(0.5)\n");
  REQUIRE(wait_until([&] { return global_is_set(g.get(), "started"); }, 10s));
  std::this_thread::sleep_for(50ms);  // now well inside the sleep
  auto t0 = Clock::now();
  {
    Gil gil;  // would wait out the whole sleep if it kept the GIL
    CHECK(seconds_since(t0) < 0.25);
  }
  REQUIRE(t.wait_steps(1, 10s));
  Step s = t.step(0);
  CHECK_FALSE(s.raised);
  CHECK(s.seconds >= 0.5);
}

TEST_CASE("interrupt_thread wakes a thread blocked in time.sleep at once", "[interrupts]") {
  GilRef g;
  {
    Gil gil;
    g = sleep_env();
  }
  PyThread t(g.get());
  t.go("started = True\ntime.sleep(30)\nfinished = True\n");
  REQUIRE(wait_until([&] { return global_is_set(g.get(), "started"); }, 10s));
  std::this_thread::sleep_for(100ms);
  auto interrupted_at = Clock::now();
  {
    Gil gil;
    interrupt_thread(t.tstate());
  }
  REQUIRE(t.wait_steps(1, 10s));
  Step s = t.step(0);
  CHECK(s.raised);
  CHECK(s.error.type == "Cancelled");
  CHECK(s.error.qualified_type == "snakebridge.Cancelled");
  CHECK_THAT(s.error.message, Contains("interrupted by SnakeBridge"));
  CHECK(std::chrono::duration<double>(s.ended - interrupted_at).count() < 2.0);
  CHECK_FALSE(global_is_set(g.get(), "finished"));

  // Nothing is left over: the next sleep on that thread runs its full length, and
  // no asynchronous exception fires later in ordinary code.
  t.go("time.sleep(0.1)\nx = sum(range(100000))\n");
  REQUIRE(t.wait_steps(2, 10s));
  Step next = t.step(1);
  INFO(next.error.type << ": " << next.error.message);
  CHECK_FALSE(next.raised);
  CHECK(next.seconds >= 0.1);
}

TEST_CASE("an interrupt aimed at an idle thread is ignored", "[interrupts]") {
  GilRef g;
  {
    Gil gil;
    g = sleep_env();
  }
  PyThread t(g.get());
  t.go("time.sleep(0.01)\n");  // the thread has slept once: it has a sleeper to flag
  REQUIRE(t.wait_steps(1, 10s));
  REQUIRE_FALSE(t.step(0).raised);

  SECTION("outside interruptible work, the interrupt does not reach the next work") {
    {
      Gil gil;
      interrupt_thread(t.tstate());  // the thread is idle, outside Python
    }
    t.go("y = 1\n");
    REQUIRE(t.wait_steps(2, 10s));
    CHECK_FALSE(t.step(1).raised);
  }
  SECTION("clear_interrupt drops both the async exception and the sleep flag") {
    {
      Gil gil;
      interrupt_thread(t.tstate());
    }
    t.go("time.sleep(0.1)\ny = sum(range(100000))\n", /*clear_first=*/true);
    REQUIRE(t.wait_steps(2, 10s));
    Step s = t.step(1);
    INFO(s.error.type << ": " << s.error.message);
    CHECK_FALSE(s.raised);
    CHECK(s.seconds >= 0.1);
    CHECK(global_is_set(g.get(), "y"));
  }
}

// interrupt_thread flags the target's sleeper only if one exists, and a thread gets
// its sleeper on its first time.sleep. An interrupt that arrives while a thread that
// has never slept is blocked in some other GIL-free C call (here a lock acquire),
// and which then reaches time.sleep with no bytecode boundary in between, leaves the
// new sleeper unflagged: the sleep runs its full length and Cancelled only fires
// after it returns.
TEST_CASE("an interrupt reaches a thread's first time.sleep", "[interrupts]") {
  GilRef g;
  {
    Gil gil;
    g = sleep_env();
    py_exec("lk = threading.Lock()\nlk.acquire()\n", g.get());
  }
  PyThread t(g.get());  // a fresh thread: it has never slept
  t.go(
      "ready = True\n"
      "list(map(operator.call, [lk.acquire, functools.partial(time.sleep, 2)]))\n"
      "finished = True\n");
  REQUIRE(wait_until([&] { return global_is_set(g.get(), "ready"); }, 10s));
  std::this_thread::sleep_for(100ms);  // the thread is now blocked in lk.acquire()
  Clock::time_point interrupted_at;
  {
    Gil gil;
    interrupted_at = Clock::now();
    interrupt_thread(t.tstate());
    PyRef lk = PyRef::borrow(PyDict_GetItemString(g.get(), "lk"));
    check(PyObject_CallMethod(lk.get(), "release", nullptr));
  }
  REQUIRE(t.wait_steps(1, 10s));
  Step s = t.step(0);
  CHECK(s.raised);
  CHECK(s.error.type == "Cancelled");
  double latency = std::chrono::duration<double>(s.ended - interrupted_at).count();
  INFO("Cancelled " << latency << " s after the interrupt");
  CHECK(latency < 1.0);
}

// ---------------------------------------------------------------- imports
//
// An interrupt must never land inside the import machinery or inside the
// module-level code of a module being imported: a half-executed module (or a
// module lock left half-updated) poisons the module for the life of the
// interpreter. While the target thread is importing, interrupts are deferred;
// the interrupter repeats them, so the exception lands once the import is over.

namespace {

// Writes module `name` into a fresh directory put first on sys.path (GIL held).
// Its body logs the run in sb_import_log.runs, runs `body` (~300 ms), then
// defines ready() and done: a module that is there but lacks them was cut short.
std::string write_slow_module(PyObject* g, const std::string& name, const std::string& body) {
  PyRef n = check(PyUnicode_FromString(name.c_str()));
  PyRef b = check(PyUnicode_FromString(body.c_str()));
  check_status(PyDict_SetItemString(g, "mod_name", n.get()));
  check_status(PyDict_SetItemString(g, "mod_body", b.get()));
  py_exec(
      "import importlib, os, sys, tempfile\n"
      "mod_dir = tempfile.mkdtemp(prefix='sb_import_')\n"
      "with open(os.path.join(mod_dir, 'sb_import_log.py'), 'w') as f:\n"
      "    f.write('runs = []\\n')\n"
      "mod_path = os.path.join(mod_dir, mod_name + '.py')\n"
      "with open(mod_path, 'w') as f:\n"
      "    f.write('import sb_import_log, time\\n'\n"
      "            'sb_import_log.runs.append(__name__)\\n' + mod_body +\n"
      "            'def ready():\\n    return 42\\n'\n"
      "            'done = True\\n')\n"
      "sys.path.insert(0, mod_dir)\n"
      "importlib.invalidate_caches()\n",
      g);
  return py_str(py_eval("mod_path", g).get());
}

// In sys.modules, initialised or not (PyImport_GetModule would wait for the import).
bool module_started(const std::string& name) {
  Gil gil;
  return PyDict_GetItemString(PyImport_GetModuleDict(), name.c_str()) != nullptr;
}

}  // namespace

TEST_CASE("an interrupt during an import is delivered once the import has finished", "[interrupts][import]") {
  struct Variant {
    const char* name;
    const char* body;
    bool by_hand;  // exec_module called by the code itself (no import statement)
  };
  auto v = GENERATE(Variant{"sb_slow_loop", "t = time.monotonic() + 0.3\nwhile time.monotonic() < t: pass\n", false},
                    Variant{"sb_slow_sleep", "time.sleep(0.3)\n", false},
                    Variant{"sb_slow_by_hand", "t = time.monotonic() + 0.3\nwhile time.monotonic() < t: pass\n", true});
  GilRef g;
  {
    Gil gil;
    g = sleep_env();
    write_slow_module(g.get(), v.name, v.body);
  }
  std::string import_code =
      v.by_hand ? "import importlib.util\n"
                  "spec = importlib.util.spec_from_file_location(mod_name, mod_path)\n"
                  "m = importlib.util.module_from_spec(spec)\n"
                  "sys.modules[mod_name] = m\n"
                  "spec.loader.exec_module(m)\n"
                : "import " + std::string(v.name) + "\n";
  PyThread t(g.get());
  t.go(import_code +
       "imported = True\n"
       "t = time.monotonic() + 5\n"
       "while time.monotonic() < t: pass\n"
       "finished = True\n");
  REQUIRE(wait_until([&] { return module_started(v.name); }, 10s));
  std::this_thread::sleep_for(30ms);  // inside the module's body
  // As the interrupter does: every 5 ms until the work is over.
  auto interrupted_at = Clock::now();
  while (!t.wait_steps(1, 5ms)) {
    Gil gil;
    interrupt_thread(t.tstate());
  }
  Step s = t.step(0);
  INFO(v.name << ": " << s.error.type << ": " << s.error.message << " (the work took " << s.seconds << " s)");
  CHECK(s.raised);
  CHECK(s.error.type == "Cancelled");
  CHECK(global_is_set(g.get(), "imported"));  // the import completed, then the interrupt landed
  CHECK_FALSE(global_is_set(g.get(), "finished"));
  double latency = std::chrono::duration<double>(s.ended - interrupted_at).count();
  CHECK(latency >= 0.2);  // waited for the rest of the ~300 ms body
  CHECK(latency < 2.0);

  Gil gil;
  // The module is complete, in sys.modules, and its body ran once.
  py_exec("import sb_import_log\nmod = sys.modules[mod_name]\n", g.get());
  CHECK(py_int(py_eval("int(getattr(mod, 'done', False))", g.get()).get()) == 1);
  CHECK(py_int(py_eval("mod.ready()", g.get()).get()) == 42);
  CHECK(py_int(py_eval("sb_import_log.runs.count(mod_name)", g.get()).get()) == 1);
  // Nothing is left pending on the thread: its next work runs undisturbed.
  t.go("time.sleep(0.05)\ny = sum(range(100000))\n", /*clear_first=*/true);
  {
    GilRelease release;
    REQUIRE(t.wait_steps(2, 10s));
  }
  CHECK_FALSE(t.step(1).raised);
  py_exec("sys.path.remove(mod_dir)\nsys.modules.pop(mod_name, None)\nsys.modules.pop('sb_import_log', None)\n", g.get());
}
