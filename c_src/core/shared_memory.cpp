#include "shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace sb {

int write_all(int fd, const char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}

int take_shared(const std::string& name, size_t size, void** data) {
  *data = nullptr;
  int fd = shm_open(name.c_str(), O_RDONLY | O_CLOEXEC, 0);
  int err = fd < 0 ? errno : 0;
  shm_unlink(name.c_str());
  struct stat st {};
  if (!err && fstat(fd, &st) != 0) err = errno;
  if (!err && static_cast<uint64_t>(st.st_size) != size) err = EBADMSG;
  if (!err && size > 0) {
    void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) err = errno;
    else *data = p;
  }
  if (fd >= 0) close(fd);
  return err;
}

}  // namespace sb
