// mp/detail/identity.hpp: this process's pid and this thread's tid without a
// system call each time. Lock owners are recorded on every uncontended
// acquire, where a getpid() syscall would cost more than the lock itself. The
// caches are reset in the child after any fork (pthread_atfork), including
// forks the library did not make, and filled again on first use.
#pragma once

#include <sys/types.h>

namespace mp::detail {

pid_t current_pid() noexcept;
pid_t current_tid() noexcept;

}  // namespace mp::detail
