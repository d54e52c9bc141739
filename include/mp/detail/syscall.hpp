// mp/detail/syscall.hpp: the one door every system call of the library goes
// through. It retries EINTR, turns errno into mp::OSError, and lets tests inject
// a failure into a named call (inject_fault) without mocking the OS.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>

#include "mp/errors.hpp"

namespace mp::detail {

// Returns the errno to fake for this call of `call`, or 0 to make the real call.
// Cheap when no fault is armed: one relaxed atomic load.
int injected_fault(std::string_view call) noexcept;

// Builds "object: call failed: strerror" (or without the object) and throws the
// matching mp::OSError subclass.
[[noreturn]] void throw_os_error(std::string_view call, int code, std::string_view object = {});
std::string os_error_message(std::string_view call, int code, std::string_view object = {});

// Runs fn() (a system call returning -1 and setting errno on failure), retrying
// EINTR. Returns its result; on failure returns -1 with errno set. Use this
// where some errno values are expected outcomes (EAGAIN, ETIMEDOUT, ESRCH).
template <class F>
auto retry(std::string_view call, F&& fn) -> decltype(fn()) {
  for (;;) {
    decltype(fn()) result;
    if (int fault = injected_fault(call)) {
      errno = fault;
      result = -1;
    } else {
      result = fn();
    }
    if (result != -1 || errno != EINTR) return result;
  }
}

// As retry(), but a failure throws mp::OSError naming the object and the call.
template <class F>
auto check(std::string_view call, F&& fn, std::string_view object = {}) -> decltype(fn()) {
  auto result = retry(call, fn);
  if (result == -1) throw_os_error(call, errno, object);
  return result;
}

// As check(), for hot paths whose object name costs an allocation to build
// ("Process.join(Process-1)"): `describe()` builds it only on failure.
template <class F, class Describe>
auto check_described(std::string_view call, F&& fn, Describe&& describe) -> decltype(fn()) {
  auto result = retry(call, fn);
  if (result == -1) {
    int code = errno;  // describe() may allocate and so change errno
    throw_os_error(call, code, describe());
  }
  return result;
}

// Test hook: the next `count` calls of `call` after `skip` successful ones fail
// with `code`. Inherited by children forked while armed.
void inject_fault(std::string_view call, int code, int count = 1, int skip = 0);
void clear_faults() noexcept;

}  // namespace mp::detail
