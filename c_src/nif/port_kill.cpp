// kill_port_program/1: how SnakeBridge.Worker hard-kills a port worker whose
// Python does not return (C code holding the GIL past a cancel). Erlang has no
// kill(2) of its own; this is one system call, where `kill` through
// System.cmd would start a process per kill.
#include <erl_nif.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "atoms.hpp"
#include "boundary.hpp"

namespace sb::nif {
namespace {

Term errno_error(ErlNifEnv* env, int e) {
  return enif_make_tuple2(env, atoms.error, enif_make_atom(env, e == ESRCH ? "esrch" : "eperm"));
}

// kill_port_program(os_pid) -> {:ok, :group} | {:ok, :process} | {:error, :esrch | :eperm}
//
// SIGKILL to the process group that `os_pid` leads: the port program calls
// setpgid(0, 0) first thing, so its group id is its pid, and the program and
// every process Python started in it die together. Should `os_pid` not lead
// its group (setpgid failed), the group is not ours: the program alone.
// The caller vouches that `os_pid` is its port program (SnakeBridge.Worker
// calls this only while the port is open, so the process has not been
// reaped and its pid cannot have been reused).
Term kill_port_program(ErlNifEnv* env, int64_t os_pid) {
  if (os_pid <= 1 || os_pid > INT32_MAX) throw ArgumentError("expected a process id greater than 1");
  const pid_t pid = static_cast<pid_t>(os_pid);
  const pid_t group = getpgid(pid);
  if (group == -1) return errno_error(env, errno);
  const bool leads = group == pid;
  if (kill(leads ? -pid : pid, SIGKILL) != 0) return errno_error(env, errno);
  return enif_make_tuple2(env, atoms.ok, enif_make_atom(env, leads ? "group" : "process"));
}

}  // namespace

SB_NIF("kill_port_program", kill_port_program, 0);

}  // namespace sb::nif
