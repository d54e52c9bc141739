#include "mp/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "mp/detail/fd.hpp"
#include "mp/detail/identity.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/errors.hpp"

namespace mp {
namespace {

using detail::check;
using detail::retry;

std::string random_name() {
  unsigned char bytes[4];
  check("getrandom", [&] { return ::getrandom(bytes, sizeof bytes, 0); }, "SharedMemory");
  char name[16];
  std::snprintf(name, sizeof name, "psm_%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  return name;
}

std::string object_name(const std::string& name) { return "SharedMemory('" + name + "')"; }

void check_name(const std::string& name) {
  if (name.find('\0') != std::string::npos)
    throw ValueError("SharedMemory: embedded null character in name");
  if (name.empty() || name.find('/') != std::string::npos)
    throw ValueError("SharedMemory: invalid name '" + name + "': it must be non-empty, without '/'");
}

// posix_fallocate returns the error instead of setting errno.
int reserve_pages(int fd, std::size_t size) {
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
  if (rc == 0) return 0;
  errno = rc;
  return -1;
}

// The name reaper: a process of its own, started at the first creation, that
// unlinks the names this process (or a child forked from it) created and has
// not removed, once every one of them is gone, kill -9 included. It reads
// "+name" and "-name" records from a pipe whose write end this process and its
// forked children hold; end of file means they have all exited. Python's
// resource tracker does this job for Python's SharedMemory.
class NameReaper {
 public:
  static NameReaper& instance() {
    static NameReaper reaper;
    return reaper;
  }

  // Best effort: without a reaper (fork refused), the creator's own unlink
  // is all there is.
  void track(const std::string& name) noexcept { send('+', name); }
  void forget(const std::string& name) noexcept { send('-', name); }

 private:
  // One record per write: at most PIPE_BUF bytes, so records from several
  // threads and processes never interleave. Longer names cannot be created.
  static constexpr std::size_t record_size = 512;
  static constexpr std::size_t max_names = 1 << 16;

  NameReaper() {
    int ends[2];
    if (retry("pipe2", [&] { return ::pipe2(ends, O_CLOEXEC); }) != 0) return;
    pid_t middle = retry("fork", [] { return ::fork(); });
    if (middle == 0) {
      // The reaper is a grandchild in a session of its own: no zombie of
      // ours, and no SIGINT from the terminal's Ctrl-C.
      ::setsid();
      if (::fork() == 0) run(ends[0]);
      ::_exit(0);
    }
    ::close(ends[0]);
    if (middle > 0) {
      retry("waitpid", [&] { return ::waitpid(middle, nullptr, 0); });
      write_end_ = ends[1];
    } else {
      ::close(ends[1]);
    }
  }

  void send(char operation, const std::string& name) noexcept {
    if (write_end_ < 0 || name.size() + 2 > record_size) return;
    char record[record_size] = {};
    record[0] = operation;
    std::memcpy(record + 1, name.data(), name.size());
    detail::SigpipeSuppressed no_sigpipe;
    retry("write", [&] { return ::write(write_end_, record, record_size); });
  }

  // After fork in a process that may have threads: raw system calls only (no
  // allocation, no lock, not even the fault-injection table's), until _exit.
  [[noreturn]] static void run(int read_end) {
    if (read_end != 3) ::dup2(read_end, 3);
    ::close_range(0, 2, 0);
    ::close_range(4, ~0U, 0);
    ::chdir("/");
    void* memory = ::mmap(nullptr, max_names * record_size, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) ::_exit(1);
    auto* names = static_cast<char(*)[record_size]>(memory);
    std::size_t count = 0;
    char record[record_size];
    for (;;) {
      ssize_t got;
      do got = ::read(3, record, record_size);
      while (got < 0 && errno == EINTR);
      if (got != static_cast<ssize_t>(record_size)) break;  // end of file: every holder is gone
      record[record_size - 1] = '\0';
      if (record[0] == '+' && count < max_names) {
        std::memcpy(names[count++], record, record_size);
      } else if (record[0] == '-') {
        for (std::size_t i = 0; i < count; ++i)
          if (std::strcmp(names[i] + 1, record + 1) == 0) {
            std::memcpy(names[i], names[--count], record_size);
            break;
          }
      }
    }
    for (std::size_t i = 0; i < count; ++i) {
      names[i][0] = '/';
      ::shm_unlink(names[i]);
    }
    ::_exit(0);
  }

  int write_end_ = -1;
};

}  // namespace

SharedMemory::SharedMemory(std::optional<std::string> name, bool create, std::size_t size) {
  if (!name && !create) throw ValueError("SharedMemory: 'name' can only be None if create=True");
  if (create && size == 0)
    throw ValueError("SharedMemory: 'size' must be a positive number different from zero");
  if (name) check_name(*name);

  detail::FileDescriptor fd;
  for (;;) {
    name_ = name ? *name : random_name();
    std::string path = "/" + name_;
    int flags = create ? O_CREAT | O_EXCL | O_RDWR : O_RDWR;
    int opened = retry("shm_open", [&] { return ::shm_open(path.c_str(), flags, 0600); });
    if (opened >= 0) {
      fd.reset(opened);
      break;
    }
    // A generated name that happens to exist is retried, as in Python.
    if (!(create && !name && errno == EEXIST)) detail::throw_os_error("shm_open", errno, object_name(name_));
  }
  if (create) {
    owner_pid_ = detail::current_pid();
    NameReaper::instance().track(name_);
    try {
      check("posix_fallocate", [&] { return reserve_pages(fd.get(), size); }, object_name(name_));
    } catch (...) {
      remove_name();
      throw;
    }
  }
  struct stat status{};
  check("fstat", [&] { return ::fstat(fd.get(), &status); }, object_name(name_));
  size_ = static_cast<std::size_t>(status.st_size);
  if (size_ == 0) return;  // an empty segment someone else created: nothing to map
  void* data = MAP_FAILED;
  try {
    check("mmap", [&] {
      data = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
      return data == MAP_FAILED ? -1 : 0;
    }, object_name(name_));
  } catch (...) {
    if (create) remove_name();
    throw;
  }
  data_ = static_cast<std::byte*>(data);
}

SharedMemory::~SharedMemory() {
  close();
  if (owner_pid_ != 0 && owner_pid_ == detail::current_pid()) remove_name();
}

SharedMemory::SharedMemory(SharedMemory&& other) noexcept { swap(other); }

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  SharedMemory old(std::move(*this));
  swap(other);
  return *this;
}

void SharedMemory::swap(SharedMemory& other) noexcept {
  std::swap(name_, other.name_);
  std::swap(size_, other.size_);
  std::swap(data_, other.data_);
  std::swap(owner_pid_, other.owner_pid_);
}

std::span<std::byte> SharedMemory::buf() {
  if (!data_ && size_ != 0) throw ValueError(object_name(name_) + ".buf: the handle is closed");
  return {data_, size_};
}

void SharedMemory::close() {
  if (!data_) return;
  retry("munmap", [&] { return ::munmap(data_, size_); });
  data_ = nullptr;
}

void SharedMemory::unlink() {
  std::string path = "/" + name_;
  release_ownership();
  check("shm_unlink", [&] { return ::shm_unlink(path.c_str()); }, object_name(name_));
}

void SharedMemory::release_ownership() noexcept {
  // Forgotten before any unlink: dying in between leaves the name behind
  // rather than letting the reaper remove a segment someone else created under
  // the same name.
  if (owner_pid_ == detail::current_pid()) NameReaper::instance().forget(name_);
  owner_pid_ = 0;
}

void SharedMemory::remove_name() noexcept {
  release_ownership();
  std::string path = "/" + name_;
  retry("shm_unlink", [&] { return ::shm_unlink(path.c_str()); });
}

}  // namespace mp
