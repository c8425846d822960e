#include "interpreter.hpp"
#include "prebuilt_bytes.hpp"

#include "elixir_terms.hpp"

#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "errors.hpp"
#include "in_process_limits.hpp"
#include "interrupts.hpp"
#include "operations.hpp"
#include "stdio.hpp"
#include "values.hpp"

namespace sb {

namespace {

std::once_flag g_init_once;
std::atomic<bool> g_ready{false};
PyInterpreterState* g_interp = nullptr;
std::string g_init_error;

thread_local PyThreadState* t_state = nullptr;
thread_local int t_depth = 0;  // nesting of Gil scopes on this thread
thread_local bool t_keep = false;  // an outermost Gil scope keeps the GIL when it ends
thread_local bool t_kept = false;  // ...and this thread holds it so, outside any scope

std::mutex g_release_mu;
std::vector<PyObject*> g_release_queue;
std::atomic<size_t> g_release_count{0};

void set_config_string(PyConfig* config, wchar_t** field, const std::string& value) {
  PyStatus st = PyConfig_SetBytesString(config, field, value.c_str());
  if (PyStatus_Exception(st)) {
    throw std::runtime_error(std::string("cannot set Python config: ") +
                             (st.err_msg ? st.err_msg : "unknown error"));
  }
}

// PYTHONPATH's directories, where plain Python puts them: ahead of the standard
// library, in order, each made absolute (an empty entry is the current
// directory). CPython's own path calculation cannot do it here: getpath.py
// reads config.pythonpath_env only when use_environment is set, which start()
// turns off so that a stray PYTHONHOME cannot break start-up. (Unlike plain
// Python, a sitecustomize in a PYTHONPATH directory is therefore not run.)
void insert_pythonpath(PyObject* sys_path, const std::string& pythonpath) {
  PyRef abspath = PyRef::steal(PyImport_ImportModule("os.path"));
  if (abspath) abspath = PyRef::steal(PyObject_GetAttrString(abspath.get(), "abspath"));
  if (!abspath) {
    PyErr_Clear();
    return;
  }
  Py_ssize_t at = 0;
  size_t begin = 0;
  while (true) {
    size_t end = pythonpath.find(':', begin);
    std::string entry = pythonpath.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    PyRef text = PyRef::steal(PyUnicode_DecodeFSDefaultAndSize(entry.data(), static_cast<Py_ssize_t>(entry.size())));
    PyRef dir = text ? PyRef::steal(PyObject_CallOneArg(abspath.get(), text.get())) : PyRef();
    if (dir && PyList_Insert(sys_path, at, dir.get()) == 0) {
      ++at;
    } else {
      PyErr_Clear();
    }
    if (end == std::string::npos) break;
    begin = end + 1;
  }
}

// GIL held, once: what every request relies on, ready before the first one.
void prepare(const InterpreterConfig& cfg) {
  try {
    ensure_datetime_api();
    cancelled_exception();
    install_elixir_module();
    // Imported now, so that reporting an error never has to import it.
    PyRef traceback = PyRef::steal(PyImport_ImportModule("traceback"));
    if (!traceback) PyErr_Clear();
    // threading takes the thread that first imports it for Python's main
    // thread: the one starting the interpreter (the port program's main
    // thread; in the BEAM one that runs no calls), never whichever thread
    // happens to import it first.
    PyRef threading = PyRef::steal(PyImport_ImportModule("threading"));
    if (!threading) PyErr_Clear();
    install_interruptible_sleep(cfg.owns_process);
    if (!cfg.owns_process) install_in_process_limits();
    install_import_guard();
    if (cfg.emit_output) install_stdio(cfg.emit_output);
  } catch (const PythonException& e) {
    throw std::runtime_error(std::string("Python started but could not be prepared: ") + e.what());
  }
}

void start(const InterpreterConfig& cfg) {
  // The BEAM loads NIFs RTLD_LOCAL; extension modules (numpy, _ctypes) expect the
  // Py* symbols to be global, so re-open libpython with RTLD_GLOBAL first.
  if (!cfg.libpython_soname.empty() &&
      !dlopen(cfg.libpython_soname.c_str(), RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) &&
      !dlopen(cfg.libpython_soname.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
    throw std::runtime_error("cannot re-open " + cfg.libpython_soname + " RTLD_GLOBAL: " +
                             dlerror());
  }

  // Python allocates large objects (bytes, arrays) with malloc. Past the mmap
  // threshold each one is a fresh mapping that page-faults on first write and is
  // unmapped on free: measured here, a 1 MiB bytes copy took ~400 µs instead of
  // ~20 µs. glibc raises the threshold by itself after the first such free, but
  // not once the threshold has been set explicitly, as in the BEAM. Keep blocks
  // under 4 MiB in the heap, and give memory back once 32 MiB sit free at its top.
  // Larger blocks (numpy arrays, which numpy puts on huge pages from 4 MiB, so
  // they fault in cheaply) are mapped and go back to the system when freed:
  // kept in the heap, 1,000 arrays of 8 MiB made and dropped left the process
  // 15-23 MB above where it started (docs/arrays.md).
  mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);

  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  struct Clear {
    PyConfig* c;
    ~Clear() { PyConfig_Clear(c); }
  } clear{&config};
  // In the BEAM, the BEAM owns signals; a port program is Python's own process.
  config.install_signal_handlers = cfg.owns_process ? 1 : 0;
  config.parse_argv = 0;
  config.use_environment = 0;  // a stray PYTHONHOME must not break start-up
  config.buffered_stdio = 0;
  if (!cfg.python_executable.empty()) {
    // program_name drives the path calculation: a venv's bin/python finds its
    // pyvenv.cfg and so its site-packages; sys.executable reports the same path.
    set_config_string(&config, &config.program_name, cfg.python_executable);
    set_config_string(&config, &config.executable, cfg.python_executable);
  }

  PyStatus st = Py_InitializeFromConfig(&config);
  if (PyStatus_Exception(st)) {
    throw std::runtime_error(std::string("Python failed to start: ") +
                             (st.func ? std::string(st.func) + ": " : "") +
                             (st.err_msg ? st.err_msg : "unknown error"));
  }
  note_allocators_at_start();

  // ERTS ignores SIGCHLD; an ignored SIGCHLD makes the kernel reap children itself,
  // so subprocess's waitpid() fails with ECHILD. The BEAM's own children belong to
  // its forker process, so restoring the default here is safe.
  struct sigaction sa;
  if (sigaction(SIGCHLD, nullptr, &sa) == 0 && sa.sa_handler == SIG_IGN) {
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, nullptr);
  }

  PyRef sys_path = PyRef::borrow(PySys_GetObject("path"));
  if (!cfg.pythonpath.empty()) insert_pythonpath(sys_path.get(), cfg.pythonpath);
  for (auto it = cfg.extra_paths.rbegin(); it != cfg.extra_paths.rend(); ++it) {
    PyRef p = PyRef::steal(PyUnicode_DecodeFSDefault(it->c_str()));
    if (!p || PyList_Insert(sys_path.get(), 0, p.get()) < 0) PyErr_Clear();
  }

  prepare(cfg);
  g_interp = PyInterpreterState_Get();
  t_state = PyEval_SaveThread();  // this thread keeps its main thread state for later
}

}  // namespace

void initialize_interpreter(const InterpreterConfig& config) {
  std::call_once(g_init_once, [&] {
    try {
      start(config);
      g_ready = true;
    } catch (const std::exception& e) {
      g_init_error = e.what();
    }
  });
  if (!g_ready) throw std::runtime_error(g_init_error);
}

bool interpreter_ready() { return g_ready.load(std::memory_order_acquire); }

void clear_thread_locals() {
  PyThreadState* ts = PyThreadState_Get();
  // What threading.local, asyncio's current loop and the caches of C modules
  // keep per thread, then contextvars (decimal's context among them).
  Py_CLEAR(ts->dict);
  Py_CLEAR(ts->context);
  ++ts->context_ver;
}

namespace {
constexpr int kGilWaiters = 2;
std::mutex g_turn_mu;
std::condition_variable g_turn_cv;
int g_turns = 0;  // threads holding a turn
}  // namespace

GilTurn::GilTurn(const std::function<bool()>& abandoned) {
  if (t_kept) {
    bypass_ = true;  // no wait: the GIL is this thread's already
    return;
  }
  std::unique_lock<std::mutex> lock(g_turn_mu);
  while (g_turns >= kGilWaiters) {
    if (abandoned()) return;
    g_turn_cv.wait_for(lock, std::chrono::milliseconds(10));
  }
  if (abandoned()) return;
  ++g_turns;
  held_ = true;
}

void GilTurn::done() {
  if (!held_) return;
  held_ = false;
  {
    std::lock_guard<std::mutex> lock(g_turn_mu);
    --g_turns;
  }
  g_turn_cv.notify_one();
}

PyThreadState* this_thread_state() {
  if (!t_state) t_state = PyThreadState_New(g_interp);
  return t_state;
}

Gil::Gil() : acquired_(t_depth == 0) {
  if (acquired_) {
    if (t_kept) t_kept = false;  // still ours from the last scope (keep_gil_between_scopes)
    else PyEval_RestoreThread(this_thread_state());
  }
  ++t_depth;
}

Gil::~Gil() {
  --t_depth;
  if (!acquired_) return;
  if (t_keep) t_kept = true;
  else PyEval_SaveThread();
}

bool keep_gil_between_scopes(bool on) { return std::exchange(t_keep, on); }
bool gil_kept() { return t_kept; }

void release_kept_gil() {
  if (!t_kept) return;
  t_kept = false;
  PyEval_SaveThread();
}

GilRelease::GilRelease() : saved_(PyEval_SaveThread()), depth_(std::exchange(t_depth, 0)) {}
GilRelease::~GilRelease() {
  PyEval_RestoreThread(saved_);
  t_depth = depth_;
}

void release_later(PyObject* obj) {
  if (!obj) return;
  std::lock_guard<std::mutex> lock(g_release_mu);
  g_release_queue.push_back(obj);
  g_release_count.store(g_release_queue.size(), std::memory_order_relaxed);
}

size_t drain_released(size_t max) {
  if (g_release_count.load(std::memory_order_relaxed) == 0) return 0;
  std::vector<PyObject*> batch;
  size_t remaining;
  {
    std::lock_guard<std::mutex> lock(g_release_mu);
    size_t n = std::min(max, g_release_queue.size());
    batch.assign(g_release_queue.end() - static_cast<std::ptrdiff_t>(n), g_release_queue.end());
    g_release_queue.resize(g_release_queue.size() - n);
    remaining = g_release_queue.size();
    g_release_count.store(remaining, std::memory_order_relaxed);
  }
  // Outside the lock: a __del__ may drop more references and re-enter release_later.
  for (PyObject* o : batch) Py_DECREF(o);
  return remaining;
}

size_t pending_releases() { return g_release_count.load(std::memory_order_relaxed); }

}  // namespace sb
