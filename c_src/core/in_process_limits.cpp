#include "in_process_limits.hpp"

#include "errors.hpp"
#include "pyref.hpp"

namespace sb {
namespace {

const char* const kLimitsSource = R"PY(
import os, signal, sys
import importlib.machinery

_WAY_OUT = ("in-process, Python runs on threads of the BEAM, which owns this OS process; "
            "use a port worker (SnakeBridge.Pool; threads: 1 for signal handlers), where Python is a process of its own")


def _refused(name, why):
    def refused(*args, **kwargs):
        raise RuntimeError(f"{name} is not available in-process ({why}): {_WAY_OUT}")
    refused.__name__ = name.rsplit(".", 1)[-1]
    refused.__qualname__ = refused.__name__
    return refused


def _signal(signalnum, handler):
    raise ValueError(f"signal.signal() cannot install a handler in-process: {_WAY_OUT}")


_kill, _killpg = os.kill, os.killpg


def _kill_checked(pid, sig):
    if sig != 0 and pid in (0, os.getpid(), -os.getpgrp()):
        raise RuntimeError(f"os.kill() of this process is not available in-process (it is the BEAM): {_WAY_OUT}")
    return _kill(pid, sig)


def _killpg_checked(pgid, sig):
    if sig != 0 and pgid in (0, os.getpgrp()):
        raise RuntimeError(f"os.killpg() of this process group is not available in-process (it holds the BEAM): {_WAY_OUT}")
    return _killpg(pgid, sig)


_kill_checked.__name__ = "kill"
_killpg_checked.__name__ = "killpg"
_signal.__name__ = "signal"

os.fork = _refused("os.fork", "it would copy the BEAM")
if hasattr(os, "forkpty"):
    os.forkpty = _refused("os.forkpty", "it would copy the BEAM")
os._exit = _refused("os._exit", "it would end the VM")
os.abort = _refused("os.abort", "it would end the VM")
os.kill = _kill_checked
os.killpg = _killpg_checked
signal.signal = _signal
signal.alarm = _refused("signal.alarm", "its SIGALRM would end the VM")
signal.setitimer = _refused("signal.setitimer", "its signal would end the VM")
signal.raise_signal = _refused("signal.raise_signal", "it signals the BEAM")


class _SpawnByDefault:
    """multiprocessing starts processes with "spawn" unless told otherwise
    (its default, "fork", would copy the BEAM). Set when multiprocessing.context
    is first imported, so that nothing is imported before it is needed."""

    def find_spec(self, name, path=None, target=None):
        if name != "multiprocessing.context":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_spawn(module):
            exec_module(module)
            module._default_context = module.DefaultContext(module._concrete_contexts["spawn"])

        spec.loader.exec_module = exec_and_spawn
        return spec


sys.meta_path.insert(0, _SpawnByDefault())
)PY";

}  // namespace

void install_in_process_limits() {
  PyRef globals = check(PyDict_New());
  check_status(PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()));
  check_status(
      PyDict_SetItemString(globals.get(), "__name__", PyRef::steal(PyUnicode_FromString("snakebridge_limits")).get()));
  check(PyRun_String(kLimitsSource, Py_file_input, globals.get(), globals.get()));
}

}  // namespace sb
