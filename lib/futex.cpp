#include "mp/detail/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "mp/detail/syscall.hpp"

namespace mp::detail {
namespace {
std::uint32_t* address(const std::atomic<std::uint32_t>& word) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return reinterpret_cast<std::uint32_t*>(const_cast<std::atomic<std::uint32_t>*>(&word));
}
}  // namespace

bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const Deadline& deadline) {
  if (deadline.expired()) return false;
  timespec at = deadline.monotonic_timespec();
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a retry
  // after EINTR does not stretch the wait. Not FUTEX_PRIVATE: the word lives in
  // memory shared between processes.
  long rc = retry("futex", [&] {
    return ::syscall(SYS_futex, address(word), FUTEX_WAIT_BITSET, expected,
                     deadline.infinite() ? nullptr : &at, nullptr, FUTEX_BITSET_MATCH_ANY);
  });
  if (rc == 0) return true;
  switch (errno) {
    case EAGAIN:  // the word changed before we slept
      return true;
    case ETIMEDOUT:
      return false;
    default:
      throw_os_error("futex(FUTEX_WAIT)", errno);
  }
}

int futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
  // A wake cannot fail on a valid word; an injected fault just wakes nobody.
  long rc = retry("futex", [&] {
    return ::syscall(SYS_futex, address(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
  });
  return rc < 0 ? 0 : static_cast<int>(rc);
}

}  // namespace mp::detail
