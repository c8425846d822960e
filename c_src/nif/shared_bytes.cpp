// Large binaries handed to a local port worker through shared memory
// (docs/protocol.md, "Shared bytes"): the caller writes the bytes into a
// POSIX shared-memory object named for the worker, the request names it
// (ext 16), and the program maps it, unlinks it and gives Python a view of the
// mapping. The BEAM's port driver copies a command twice before the pipe
// (flattened, then queued when the pipe is full) and holds a scheduler
// meanwhile; this is one copy, on a dirty scheduler.
#include <dirent.h>
#include <erl_nif.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "shared_bytes.hpp"

#include "../core/shared_memory.hpp"
#include "atoms.hpp"
#include "boundary.hpp"

namespace sb::nif {
namespace {

// Names are "/snakebridge-<os pid>-<n>": the program accepts no other.
void check_name(const std::string& name) {
  static const std::string prefix = "/snakebridge-";
  bool ok = name.size() > prefix.size() && name.size() < 64 && name.compare(0, prefix.size(), prefix) == 0;
  for (size_t i = prefix.size(); ok && i < name.size(); ++i) {
    ok = (name[i] >= '0' && name[i] <= '9') || name[i] == '-';
  }
  if (!ok) throw ArgumentError("expected a shared-bytes name \"/snakebridge-<os pid>-<n>\"");
}

Term errno_error(ErlNifEnv* env, int e) {
  const char* reason = e == ENOSPC ? "enospc" : e == EEXIST ? "eexist" : e == ENOENT ? "enoent" : e == EACCES ? "eacces"
                     : e == EMFILE || e == ENFILE ? "emfile" : e == ENOMEM ? "enomem" : "eio";
  return enif_make_tuple2(env, atoms.error, enif_make_atom(env, reason));
}

// shm_write(name, binary) -> :ok | {:error, reason}. Dirty (I/O): a large
// binary takes milliseconds to copy. Nothing is left behind on failure.
Term shm_write(ErlNifEnv* env, std::string name, Term data) {
  check_name(name);
  ErlNifBinary bin;
  if (!enif_inspect_binary(env, data.t, &bin)) throw ArgumentError("expected a binary");
  int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error(env, errno);
  // The size first: tmpfs then refuses at once a size it cannot hold.
  int err = ftruncate(fd, static_cast<off_t>(bin.size)) != 0 ? errno : write_all(fd, reinterpret_cast<const char*>(bin.data), bin.size);
  close(fd);
  if (err) {
    shm_unlink(name.c_str());
    return errno_error(env, err);
  }
  return atoms.ok;
}

// shm_unlink(name) -> :ok (gone already is fine).
Term shm_unlink_nif(ErlNifEnv*, std::string name) {
  check_name(name);
  shm_unlink(name.c_str());
  return atoms.ok;
}

// shm_clean(prefix) -> count: unlinks every object whose name starts with
// `prefix` ("/snakebridge-<os pid>-"): what a worker's program had not read
// when it died.
Term shm_clean(ErlNifEnv* env, std::string prefix) {
  check_name(prefix);
  const char* bare = prefix.c_str() + 1;  // /dev/shm lists names without the slash
  const size_t bare_size = prefix.size() - 1;
  int64_t count = 0;
  if (DIR* dir = opendir("/dev/shm")) {
    char path[300];
    while (dirent* e = readdir(dir)) {
      if (std::strncmp(e->d_name, bare, bare_size) != 0) continue;
      std::snprintf(path, sizeof path, "/%s", e->d_name);
      if (shm_unlink(path) == 0) ++count;
    }
    closedir(dir);
  }
  return enif_make_int64(env, count);
}

// An object a worker wrote for a reply: "/snakebridge-<os pid>-r<n>".
bool reply_name(const std::string& name) {
  static const std::string prefix = "/snakebridge-";
  size_t r = name.find("-r", prefix.size());
  if (name.size() >= 64 || name.compare(0, prefix.size(), prefix) != 0 || r == std::string::npos) return false;
  auto digits = [&](size_t from, size_t to) {
    if (from >= to) return false;
    for (size_t i = from; i < to; ++i) {
      if (name[i] < '0' || name[i] > '9') return false;
    }
    return true;
  };
  return digits(prefix.size(), r) && digits(r + 2, name.size());
}

// A mapping an Elixir binary points into: unmapped with the binary's last reference.
ErlNifResourceType* g_mapping_type = nullptr;
struct Mapping {
  void* data;
  size_t size;
};
void mapping_dtor(ErlNifEnv*, void* p) {
  auto* m = static_cast<Mapping*>(p);
  if (m->data) munmap(m->data, m->size);
}

// shm_take(name, size) -> {:ok, binary} | {:error, reason}. Dirty (I/O): the
// mapping's pages are populated here. The object is unlinked whatever comes
// of it (it is read once); the binary points into the mapping, no copy.
Term shm_take(ErlNifEnv* env, std::string name, uint64_t size) {
  if (!reply_name(name)) throw ArgumentError("expected a shared-bytes name \"/snakebridge-<os pid>-r<n>\"");
  void* data = nullptr;
  int err = take_shared(name, size, &data);
  if (err == EBADMSG) return enif_make_tuple2(env, atoms.error, enif_make_atom(env, "size"));
  if (err) return errno_error(env, err);
  if (size == 0) {
    ErlNifBinary empty;
    enif_alloc_binary(0, &empty);
    return enif_make_tuple2(env, atoms.ok, enif_make_binary(env, &empty));
  }
  auto* m = static_cast<Mapping*>(enif_alloc_resource(g_mapping_type, sizeof(Mapping)));
  m->data = data;
  m->size = size;
  ERL_NIF_TERM bin = enif_make_resource_binary(env, m, data, size);
  enif_release_resource(m);
  return enif_make_tuple2(env, atoms.ok, bin);
}

}  // namespace

void open_shared_bytes_types(ErlNifEnv* env) {
  auto flags = static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER);
  g_mapping_type = enif_open_resource_type(env, nullptr, "snakebridge_shared_mapping", mapping_dtor, flags, nullptr);
}

SB_NIF("shm_take", shm_take, ERL_NIF_DIRTY_JOB_IO_BOUND);
SB_NIF("shm_write", shm_write, ERL_NIF_DIRTY_JOB_IO_BOUND);
SB_NIF("shm_unlink", shm_unlink_nif, 0);
SB_NIF("shm_clean", shm_clean, ERL_NIF_DIRTY_JOB_IO_BOUND);

}  // namespace sb::nif
