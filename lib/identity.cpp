#include "mp/detail/identity.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>

namespace mp::detail {
namespace {

std::atomic<pid_t> cached_pid{0};
thread_local pid_t cached_tid = 0;

// Forgets the parent's values; the child reads its own on first use. Reading
// them here would cost every child two system calls, though most never ask.
void forget_in_child() noexcept {
  cached_pid.store(0, std::memory_order_relaxed);
  cached_tid = 0;  // the forking thread is the child's only thread
}

// Registered once, before the first fork that could matter: any code that asks
// for the pid has gone through here first.
pid_t register_and_read() noexcept {
  static const bool registered = (::pthread_atfork(nullptr, nullptr, forget_in_child), true);
  (void)registered;
  pid_t pid = ::getpid();
  cached_pid.store(pid, std::memory_order_relaxed);
  return pid;
}

}  // namespace

pid_t current_pid() noexcept {
  pid_t pid = cached_pid.load(std::memory_order_relaxed);
  return pid != 0 ? pid : register_and_read();
}

pid_t current_tid() noexcept {
  if (cached_tid == 0) {
    current_pid();  // make sure the fork handler that resets us is registered
    cached_tid = ::gettid();
  }
  return cached_tid;
}

}  // namespace mp::detail
