// What Python cannot do inside the BEAM (docs/backends.md, "What in-process
// cannot do"). The BEAM owns the OS process: its signals, its exit, its
// address space. In-process, Python runs on threads of the BEAM, so:
//
// - signal.signal raises ValueError (as on any thread that is not Python's
//   main thread) with a message that names the way out: a port worker with
//   threads: 1, whose Python runs on its own process's main thread;
// - signal.alarm, signal.setitimer and signal.raise_signal, os.kill and
//   os.killpg aimed at this process with a signal other than 0, os._exit and
//   os.abort would end the VM: RuntimeError instead;
// - os.fork and os.forkpty would copy the BEAM (its threads gone, its locks
//   held, its file descriptors shared): RuntimeError. multiprocessing starts
//   its processes with "spawn" by default instead (a fresh interpreter, the
//   same executable and sys.path), so it works; "fork" is refused as above.
//
// Segfaults in C extensions cannot be caught: they end the VM (documented).
#pragma once

namespace sb {

// GIL held, once at start-up, in the BEAM only.
void install_in_process_limits();

}  // namespace sb
