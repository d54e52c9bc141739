// mp/detail/deadline.hpp: one monotonic deadline per operation. Python's
// timeout= seconds become any std::chrono::duration; negative means zero, and a
// duration too long to represent means "never".
#pragma once

#include <chrono>
#include <ctime>
#include <optional>

namespace mp::detail {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC on Linux

class Deadline {
 public:
  static Deadline never() noexcept { return Deadline(Clock::time_point::max()); }
  static Deadline now() noexcept { return Deadline(Clock::now()); }

  template <class Rep, class Period>
  static Deadline after(std::chrono::duration<Rep, Period> timeout) noexcept {
    // Anything beyond a century is "never", which also keeps the addition below from overflowing.
    constexpr std::chrono::duration<double> century(100.0 * 365 * 24 * 3600);
    if (std::chrono::duration<double>(timeout) >= century) return never();
    if (timeout <= timeout.zero()) return now();
    return Deadline(Clock::now() + std::chrono::ceil<Clock::duration>(timeout));
  }

  bool infinite() const noexcept { return at_ == Clock::time_point::max(); }
  bool expired() const noexcept { return !infinite() && Clock::now() >= at_; }
  Clock::time_point time_point() const noexcept { return at_; }

  // Time left (zero once expired); nullopt when infinite.
  std::optional<std::chrono::nanoseconds> remaining() const noexcept {
    if (infinite()) return std::nullopt;
    auto left = at_ - Clock::now();
    return left > left.zero() ? std::chrono::duration_cast<std::chrono::nanoseconds>(left)
                              : std::chrono::nanoseconds::zero();
  }

  // For poll(2): -1 when infinite, else milliseconds left rounded up.
  int poll_milliseconds() const noexcept {
    auto left = remaining();
    if (!left) return -1;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(*left).count();
    return ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms);
  }

  // Absolute CLOCK_MONOTONIC time, for futex and pthread clock waits.
  timespec monotonic_timespec() const noexcept {
    auto since = std::chrono::duration_cast<std::chrono::nanoseconds>(at_.time_since_epoch());
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(since.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(since.count() % 1'000'000'000);
    return ts;
  }

  // The earlier of this deadline and `slice` from now: waits that must look
  // around periodically (is a lock owner still alive?) sleep in slices.
  Deadline capped(std::chrono::nanoseconds slice) const noexcept {
    Deadline soon = after(slice);
    return soon.at_ < at_ ? soon : *this;
  }

 private:
  explicit Deadline(Clock::time_point at) noexcept : at_(at) {}
  Clock::time_point at_;
};

}  // namespace mp::detail
