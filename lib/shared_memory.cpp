#include "mp/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "mp/detail/fd.hpp"
#include "mp/detail/identity.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/errors.hpp"

namespace mp {
namespace {

using detail::check;
using detail::retry;

std::string random_name() {
  unsigned char bytes[4];
  check("getrandom", [&] { return ::getrandom(bytes, sizeof bytes, 0); }, "SharedMemory");
  char name[16];
  std::snprintf(name, sizeof name, "psm_%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  return name;
}

std::string object_name(const std::string& name) { return "SharedMemory('" + name + "')"; }

void check_name(const std::string& name) {
  if (name.find('\0') != std::string::npos)
    throw ValueError("SharedMemory: embedded null character in name");
  if (name.empty() || name.find('/') != std::string::npos)
    throw ValueError("SharedMemory: invalid name '" + name + "': it must be non-empty, without '/'");
}

// posix_fallocate returns the error instead of setting errno.
int reserve_pages(int fd, std::size_t size) {
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
  if (rc == 0) return 0;
  errno = rc;
  return -1;
}

}  // namespace

SharedMemory::SharedMemory(std::optional<std::string> name, bool create, std::size_t size) {
  if (!name && !create) throw ValueError("SharedMemory: 'name' can only be None if create=True");
  if (create && size == 0)
    throw ValueError("SharedMemory: 'size' must be a positive number different from zero");
  if (name) check_name(*name);

  detail::FileDescriptor fd;
  for (;;) {
    name_ = name ? *name : random_name();
    std::string path = "/" + name_;
    int flags = create ? O_CREAT | O_EXCL | O_RDWR : O_RDWR;
    int opened = retry("shm_open", [&] { return ::shm_open(path.c_str(), flags, 0600); });
    if (opened >= 0) {
      fd.reset(opened);
      break;
    }
    // A generated name that happens to exist is retried, as in Python.
    if (!(create && !name && errno == EEXIST)) detail::throw_os_error("shm_open", errno, object_name(name_));
  }
  if (create) {
    owner_pid_ = detail::current_pid();
    try {
      check("posix_fallocate", [&] { return reserve_pages(fd.get(), size); }, object_name(name_));
    } catch (...) {
      remove_name();
      throw;
    }
  }
  struct stat status{};
  check("fstat", [&] { return ::fstat(fd.get(), &status); }, object_name(name_));
  size_ = static_cast<std::size_t>(status.st_size);
  if (size_ == 0) return;  // an empty segment someone else created: nothing to map
  void* data = MAP_FAILED;
  try {
    check("mmap", [&] {
      data = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
      return data == MAP_FAILED ? -1 : 0;
    }, object_name(name_));
  } catch (...) {
    if (create) remove_name();
    throw;
  }
  data_ = static_cast<std::byte*>(data);
}

SharedMemory::~SharedMemory() {
  close();
  if (owner_pid_ != 0 && owner_pid_ == detail::current_pid()) remove_name();
}

SharedMemory::SharedMemory(SharedMemory&& other) noexcept { swap(other); }

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  SharedMemory old(std::move(*this));
  swap(other);
  return *this;
}

void SharedMemory::swap(SharedMemory& other) noexcept {
  std::swap(name_, other.name_);
  std::swap(size_, other.size_);
  std::swap(data_, other.data_);
  std::swap(owner_pid_, other.owner_pid_);
}

std::span<std::byte> SharedMemory::buf() {
  if (!data_ && size_ != 0) throw ValueError(object_name(name_) + ".buf: the handle is closed");
  return {data_, size_};
}

void SharedMemory::close() {
  if (!data_) return;
  retry("munmap", [&] { return ::munmap(data_, size_); });
  data_ = nullptr;
}

void SharedMemory::unlink() {
  std::string path = "/" + name_;
  owner_pid_ = 0;
  check("shm_unlink", [&] { return ::shm_unlink(path.c_str()); }, object_name(name_));
}

void SharedMemory::remove_name() noexcept {
  std::string path = "/" + name_;
  retry("shm_unlink", [&] { return ::shm_unlink(path.c_str()); });
}

}  // namespace mp
