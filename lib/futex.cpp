// lib/futex.cpp: the futex calls under every blocking primitive (futex.hpp).
// Invariants: waits take absolute CLOCK_MONOTONIC deadlines, so EINTR retries
// and wall-clock steps never stretch or shorten them; words are never
// FUTEX_PRIVATE, because they live in memory shared between processes.
#include "mp/detail/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bit>
#include <cerrno>

#include "mp/detail/syscall.hpp"

namespace mp::detail {
namespace {
// The kernel reads and compares these words itself: we only pass addresses.
std::uint32_t* address(const std::atomic<std::uint32_t>& word) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return reinterpret_cast<std::uint32_t*>(const_cast<std::atomic<std::uint32_t>*>(&word));
}
std::uint32_t* low_half(const std::atomic<std::uint64_t>& word) noexcept {
  static_assert(sizeof(std::atomic<std::uint64_t>) == sizeof(std::uint64_t));
  auto* halves = reinterpret_cast<std::uint32_t*>(const_cast<std::atomic<std::uint64_t>*>(&word));
  return halves + (std::endian::native == std::endian::little ? 0 : 1);
}

bool wait_on(std::uint32_t* word, std::uint32_t expected, const Deadline& deadline) {
  if (deadline.expired()) return false;
  timespec at = deadline.monotonic_timespec();
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a retry
  // after EINTR does not stretch the wait. Not FUTEX_PRIVATE: the word lives in
  // memory shared between processes.
  long rc = retry("futex", [&] {
    return ::syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected,
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

int wake_on(std::uint32_t* word, int count) noexcept {
  // A wake cannot fail on a valid word; an injected fault just wakes nobody.
  long rc = retry("futex", [&] {
    return ::syscall(SYS_futex, word, FUTEX_WAKE, count, nullptr, nullptr, 0);
  });
  return rc < 0 ? 0 : static_cast<int>(rc);
}
}  // namespace

bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const Deadline& deadline) {
  return wait_on(address(word), expected, deadline);
}
int futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
  return wake_on(address(word), count);
}

bool futex_wait(const std::atomic<std::uint64_t>& word, std::uint32_t expected,
                const Deadline& deadline) {
  return wait_on(low_half(word), expected, deadline);
}
int futex_wake(const std::atomic<std::uint64_t>& word, int count) noexcept {
  return wake_on(low_half(word), count);
}

}  // namespace mp::detail
