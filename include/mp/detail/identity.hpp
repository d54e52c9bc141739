// mp/detail/identity.hpp: this process's pid and this thread's tid without a
// system call each time. Lock owners are recorded on every uncontended
// acquire, where a getpid() syscall would cost more than the lock itself. The
// caches are reset in the child after any fork (pthread_atfork), including
// forks the library did not make, and filled again on first use. The same
// holds for the owner stamp, which costs a read of /proc/self/stat.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>

namespace mp::detail {

pid_t current_pid() noexcept;
pid_t current_tid() noexcept;

// Owner stamps: who holds a lock, in a form that pid reuse cannot fake. The
// pid is in the low 32 bits, and the high 32 bits hold a tag of the process's
// start time (/proc/<pid>/stat field 22, clock ticks since boot, cut to 32
// bits). Two processes with one pid and one tag would have to start in the
// same clock tick (10 ms) or 2^32 ticks (497 days at 100 Hz) apart. Tag 0
// means "unknown": /proc is missing, or belongs to another pid namespace
// (its /proc/self/stat names another pid), so the pid alone must do.
// Cached like the pid and forgotten after fork; inline, because every
// uncontended lock acquire asks for it.
extern std::atomic<std::uint64_t> cached_owner_stamp;  // 0: not read yet (a stamp's pid is never 0)
std::uint64_t read_owner_stamp() noexcept;
inline std::uint64_t current_owner_stamp() noexcept {
  std::uint64_t stamp = cached_owner_stamp.load(std::memory_order_relaxed);
  return stamp != 0 ? stamp : read_owner_stamp();
}
inline pid_t stamp_pid(std::uint64_t stamp) noexcept { return static_cast<pid_t>(stamp & 0x7fffffffu); }
inline std::uint32_t stamp_tag(std::uint64_t stamp) noexcept { return static_cast<std::uint32_t>(stamp >> 32); }

// What /proc/<pid>/stat says of the process that has `pid` now.
struct ProcessStart {
  std::uint32_t tag;  // as in an owner stamp
  bool exited;        // a zombie, or being reaped
};
// nullopt when it cannot be read (no such process, no /proc).
std::optional<ProcessStart> read_process_start(pid_t pid) noexcept;

}  // namespace mp::detail
