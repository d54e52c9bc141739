#include "mp/detail/fd.hpp"

#include <signal.h>
#include <unistd.h>

#include <ctime>

#include "mp/detail/syscall.hpp"

namespace mp::detail {

void FileDescriptor::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {
sigset_t sigpipe_set() noexcept {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  return set;
}
bool sigpipe_pending() noexcept {
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  return sigismember(&pending, SIGPIPE) == 1;
}
}  // namespace

SigpipeSuppressed::SigpipeSuppressed() noexcept : was_pending_(sigpipe_pending()) {
  sigset_t block = sigpipe_set();
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &block, &old);
  was_blocked_ = sigismember(&old, SIGPIPE) == 1;
}

SigpipeSuppressed::~SigpipeSuppressed() {
  if (!was_pending_ && sigpipe_pending()) {
    sigset_t set = sigpipe_set();
    timespec zero{};
    while (sigtimedwait(&set, nullptr, &zero) == -1 && errno == EINTR) {
    }
  }
  if (!was_blocked_) {
    sigset_t unblock = sigpipe_set();
    pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);
  }
}

void write_all(int fd, const void* data, std::size_t size, std::string_view object) {
  SigpipeSuppressed no_sigpipe;
  const char* cursor = static_cast<const char*>(data);
  while (size > 0) {
    auto written = check("write", [&] { return ::write(fd, cursor, size); }, object);
    cursor += written;
    size -= static_cast<std::size_t>(written);
  }
}

}  // namespace mp::detail
