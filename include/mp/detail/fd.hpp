// mp/detail/fd.hpp: an owned file descriptor, and writes that can never kill
// the process with SIGPIPE.
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>

namespace mp::detail {

class FileDescriptor {
 public:
  FileDescriptor() noexcept = default;
  explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
  ~FileDescriptor() { reset(); }
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.release()) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the old descriptor. close() is never retried: on Linux the
  // descriptor is gone even when close() reports EINTR.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// While alive, SIGPIPE is blocked in this thread; a SIGPIPE raised by our own
// writes meanwhile is consumed before unblocking, so a write to a closed pipe
// fails with EPIPE instead of killing the process. Signals that were already
// pending, or that other threads receive, are left alone.
class SigpipeSuppressed {
 public:
  SigpipeSuppressed() noexcept;
  ~SigpipeSuppressed();
  SigpipeSuppressed(const SigpipeSuppressed&) = delete;
  SigpipeSuppressed& operator=(const SigpipeSuppressed&) = delete;

 private:
  bool was_pending_;
  bool was_blocked_;
};

// Writes all of data to a blocking descriptor (pipe, socket, file), retrying
// partial writes and EINTR. A closed reader gives mp::OSError(EPIPE) naming
// `object`; SIGPIPE never fires.
void write_all(int fd, const void* data, std::size_t size, std::string_view object);

}  // namespace mp::detail
