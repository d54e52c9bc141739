// mp/detail/spin_policy.hpp: when a waiter should spin before it sleeps.
#pragma once

#include <atomic>
#include <cstdint>

namespace mp::detail {

// Spinning for a message pays only while its sender runs on another core.
// When the sender waits for ours, or was asleep (a wake-up takes tens of
// microseconds in a VM, long enough for a reader to drain a full queue), a
// spin only burns CPU: on a busy 2-core VM, where producer and consumer took
// turns, a queue reader's spin found a record in under 1% of its spins and
// made a bounded queue of ints 20% slower. So after a few fruitless spins in
// a row a waiter spins only on every 64th wait, to notice when spinning pays
// again. Shared by the threads of a process: racy between them, harmlessly,
// since it is only a hint.
class SpinPolicy {
 public:
  // Whether this wait should spin first; if so, report how it went to end().
  bool begin() noexcept {
    std::uint32_t fruitless = fruitless_.load(std::memory_order_relaxed);
    if (fruitless < tolerated || fruitless % retry_interval == 0) return true;
    fruitless_.store(fruitless + 1, std::memory_order_relaxed);
    return false;
  }
  void end(bool paid) noexcept {
    fruitless_.store(paid ? 0 : fruitless_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

 private:
  static constexpr std::uint32_t tolerated = 4;
  static constexpr std::uint32_t retry_interval = 64;
  std::atomic<std::uint32_t> fruitless_{0};
};

}  // namespace mp::detail
