#include "mp/detail/syscall.hpp"

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>

namespace mp::detail {
namespace {

struct Fault {
  char call[32] = {};
  int code = 0;
  int skip = 0;
  int count = 0;
};

// A spin lock rather than std::mutex: a child forked while another thread held
// it must not inherit a mutex that nobody will ever unlock, and the table is
// touched only by tests.
class SpinLock {
 public:
  void lock() noexcept {
    while (flag_.test_and_set(std::memory_order_acquire)) {
    }
  }
  void unlock() noexcept { flag_.clear(std::memory_order_release); }

 private:
  std::atomic_flag flag_ = ATOMIC_FLAG_INIT;
};

SpinLock table_lock;
std::array<Fault, 8> table;
std::atomic<int> armed{0};

}  // namespace

int injected_fault(std::string_view call) noexcept {
  if (armed.load(std::memory_order_relaxed) == 0) return 0;
  std::lock_guard guard(table_lock);
  for (Fault& fault : table) {
    if (fault.count == 0 || call != fault.call) continue;
    if (fault.skip > 0) {
      --fault.skip;
      return 0;
    }
    if (--fault.count == 0) armed.fetch_sub(1, std::memory_order_relaxed);
    return fault.code;
  }
  return 0;
}

void inject_fault(std::string_view call, int code, int count, int skip) {
  if (call.size() >= sizeof(Fault::call) || count < 1 || skip < 0 || code <= 0)
    throw ValueError("inject_fault: bad arguments for '" + std::string(call) + "'");
  std::lock_guard guard(table_lock);
  for (Fault& fault : table) {
    if (fault.count != 0) continue;
    std::memcpy(fault.call, call.data(), call.size());
    fault.call[call.size()] = '\0';
    fault.code = code;
    fault.skip = skip;
    fault.count = count;
    armed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  throw ValueError("inject_fault: too many faults armed at once");
}

void clear_faults() noexcept {
  std::lock_guard guard(table_lock);
  table = {};
  armed.store(0, std::memory_order_relaxed);
}

std::string os_error_message(std::string_view call, int code, std::string_view object) {
  std::string message;
  if (!object.empty()) {
    message.append(object);
    message.append(": ");
  }
  message.append(call);
  message.append(" failed: ");
  message.append(std::strerror(code));
  return message;
}

void throw_os_error(std::string_view call, int code, std::string_view object) {
  std::string message = os_error_message(call, code, object);
  if (code == EEXIST) throw FileExistsError(message, code);
  if (code == ENOENT) throw FileNotFoundError(message, code);
  throw OSError(message, code);
}

}  // namespace mp::detail
