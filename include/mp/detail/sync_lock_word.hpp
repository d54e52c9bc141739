// mp/detail/sync_lock_word.hpp: the shared words under Lock, RLock, Condition,
// Semaphore and Barrier, and the lock fast paths, inline because an
// uncontended acquire and release must cost one atomic instruction each.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "mp/detail/deadline.hpp"
#include "mp/detail/identity.hpp"

namespace mp::detail {

// word: 0 when free, else the holder's owner stamp (identity.hpp: pid in the
// low half, start-time tag in the high half), with contended_bit set in the
// low half when someone may sleep on it. Pids fit in 22 bits (pid_max <=
// 2^22), so the bit never collides with one.
//
// Why one 64-bit word: the stamp must be claimed whole. A waiter that read the
// pid and the tag from two words could pair one process's pid with another's
// tag and take a live holder for dead. An uncontended acquire stays one
// compare-and-swap (acquire order: what the previous holder wrote under the
// lock is visible to us) and release one exchange (release order: all our
// writes under the lock land before the word reads free). Waiters sleep on
// the low half with a 32-bit futex, having set contended_bit: the kernel puts
// a waiter to sleep only while that half still equals the value it read, and
// a release makes it 0, so a sleeper either sees the release or sleeps on a
// word held with the bit set, whose release will wake one.
struct LockWord {
  static constexpr std::uint64_t contended_bit = 1u << 31;
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
                "the word is shared between processes: it must be lock-free");
  std::atomic<std::uint64_t> word{0};
  // Set when an acquire took the lock over from a dead holder; cleared by
  // mark_consistent(). It stays set for every later holder until then,
  // because the state the dead holder guarded may still be half-updated.
  std::atomic<std::uint32_t> owner_died{0};

  static std::uint64_t holder(std::uint64_t value) noexcept { return value & ~contended_bit; }
  // The half a waiter's futex compares, as it appears in a value of word.
  static std::uint32_t futex_half(std::uint64_t value) noexcept { return static_cast<std::uint32_t>(value); }

  bool try_acquire_fast() noexcept {
    std::uint64_t expected = 0;
    return word.compare_exchange_strong(expected, current_owner_stamp(), std::memory_order_acquire,
                                        std::memory_order_relaxed);
  }
};

// Blocks until acquired (true) or the deadline passes (false). Sleeps in slices
// and takes the lock over when its recorded holder is dead.
bool lock_word_acquire_slow(LockWord& lock, const Deadline& deadline);
void lock_word_wake_one(LockWord& lock) noexcept;

// Releases; false when the lock was not held (the caller reports it).
inline bool lock_word_release(LockWord& lock) noexcept {
  std::uint64_t previous = lock.word.exchange(0, std::memory_order_release);
  if (previous & LockWord::contended_bit) lock_word_wake_one(lock);
  return previous != 0;
}

// RLock: the holder's thread and recursion depth beside the word. Only the
// holder writes them; it clears owner_tid before releasing the word. The
// stamp in the word decides which process holds it: a new process whose pid
// and main thread's tid are a dead holder's own does not hold it.
struct RLockState {
  LockWord lock;
  std::atomic<std::int32_t> owner_tid{0};
  std::atomic<std::uint32_t> depth{0};

  bool held_by_caller() const noexcept {
    return owner_tid.load(std::memory_order_relaxed) == current_tid() &&
           LockWord::holder(lock.word.load(std::memory_order_relaxed)) == current_owner_stamp();
  }
};

// Whether the process that stamped a lock word still runs: false once it has
// exited (a zombie counts as dead: the waiter may be the parent that has not
// reaped the killed holder yet) or when its pid now names a process that
// started later.
bool owner_alive(std::uint64_t stamp);

// The standard Lockable and TimedLockable members (std::lock_guard,
// std::unique_lock, std::scoped_lock) and Python's acquire(timeout), on top of
// Derived's acquire_until(Deadline) and release(). Derived may hide
// acquire(bool) with a faster one.
template <class Derived>
class Lockable {
 public:
  bool acquire(bool block = true) {
    return self().acquire_until(block ? Deadline::never() : Deadline::now());
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return self().acquire_until(Deadline::after(timeout));
  }
  void lock() { self().acquire(true); }
  void unlock() { self().release(); }
  bool try_lock() { return self().acquire(false); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return acquire(timeout);
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> at) {
    return acquire(at - Clock::now());
  }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

}  // namespace mp::detail
