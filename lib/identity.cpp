#include "mp/detail/identity.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "mp/detail/fd.hpp"
#include "mp/detail/syscall.hpp"

namespace mp::detail {
namespace {

std::atomic<pid_t> cached_pid{0};
thread_local pid_t cached_tid = 0;

// Forgets the parent's values; the child reads its own on first use. Reading
// them here would cost every child two system calls, though most never ask.
void forget_in_child() noexcept {
  cached_pid.store(0, std::memory_order_relaxed);
  cached_owner_stamp.store(0, std::memory_order_relaxed);
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

// The fields of /proc/<pid>/stat that tell one process from another.
struct StatFields {
  pid_t pid;          // field 1: the pid in the namespace of this /proc
  char state;         // field 3
  std::uint64_t start_ticks;  // field 22
};

std::optional<StatFields> read_stat(const char* path) noexcept {
  int fd = static_cast<int>(retry("open", [&] { return ::open(path, O_RDONLY | O_CLOEXEC); }));
  if (fd < 0) return std::nullopt;
  FileDescriptor file(fd);
  // One read from offset 0 is one snapshot of the process. Field 22 ends
  // well within 1 KiB, even with every number at its widest.
  char text[1024];
  ssize_t size = retry("read", [&] { return ::read(file.get(), text, sizeof text - 1); });
  if (size <= 0) return std::nullopt;
  text[size] = '\0';
  // Field 2, the command name, is in parentheses and may hold spaces and
  // ')' itself: the fixed fields resume after the last ')'.
  const char* after_name = std::strrchr(text, ')');
  if (after_name == nullptr || after_name[1] != ' ' || after_name[2] == '\0') return std::nullopt;
  StatFields fields{};
  fields.pid = static_cast<pid_t>(std::strtol(text, nullptr, 10));
  fields.state = after_name[2];
  const char* field = after_name + 2;  // field 3
  for (int number = 3; number < 22; ++number) {
    field = std::strchr(field, ' ');
    if (field == nullptr) return std::nullopt;
    ++field;
  }
  fields.start_ticks = std::strtoull(field, nullptr, 10);
  return fields;
}

std::uint32_t start_tag(const StatFields& fields) noexcept {
  return static_cast<std::uint32_t>(fields.start_ticks);
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

std::atomic<std::uint64_t> cached_owner_stamp{0};

std::uint64_t read_owner_stamp() noexcept {
  const pid_t pid = current_pid();  // registers the fork handler that forgets the stamp
  std::optional<StatFields> self = read_stat("/proc/self/stat");
  const std::uint32_t tag = self && self->pid == pid ? start_tag(*self) : 0;
  const std::uint64_t stamp = (std::uint64_t{tag} << 32) | static_cast<std::uint32_t>(pid);
  cached_owner_stamp.store(stamp, std::memory_order_relaxed);
  return stamp;
}

std::optional<ProcessStart> read_process_start(pid_t pid) noexcept {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::optional<StatFields> fields = read_stat(path);
  if (!fields) return std::nullopt;
  return ProcessStart{start_tag(*fields), fields->state == 'Z' || fields->state == 'X'};
}

}  // namespace mp::detail
