// mp/detail/futex.hpp: process-shared futex waits on 32-bit words in shared
// memory. Every blocking primitive of the library sleeps here, with an absolute
// CLOCK_MONOTONIC deadline, so that an idle waiter uses no CPU.
#pragma once

#include <atomic>
#include <cstdint>

#include "mp/detail/deadline.hpp"

namespace mp::detail {

// Sleeps while word == expected, until woken or the deadline passes. Returns
// false only on timeout; a true return may be spurious, so callers re-check.
// Signals never escape as EINTR: an interrupted wait returns true.
bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const Deadline& deadline);

// Wakes up to `count` waiters of word; returns how many were woken.
int futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept;

inline constexpr int futex_wake_all = 0x7fffffff;

// The same on the low 32 bits of a 64-bit word (a lock word: the half that
// holds the pid); `expected` is that half's value.
bool futex_wait(const std::atomic<std::uint64_t>& word, std::uint32_t expected,
                const Deadline& deadline);
int futex_wake(const std::atomic<std::uint64_t>& word, int count) noexcept;

// A short pause for spin loops.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace mp::detail
