// mp/shared_memory.hpp: SharedMemory (Python: multiprocessing.shared_memory).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>

namespace mp {

// SharedMemory (Python: multiprocessing.shared_memory.SharedMemory)
//
// A named POSIX shared memory segment (shm_open), reachable by name from any
// process, Python's included: name() is Python's name (no leading '/').
// SharedMemory(name, true, size) creates it (name nullopt: a fresh "psm_xxxxxxxx"
// name) and throws FileExistsError if the name exists; SharedMemory(name,
// false) attaches, ignores size, and throws FileNotFoundError if it does not.
// size() may exceed the request (page rounding). Bad arguments throw
// ValueError with Python's texts; names with NUL or '/' are refused.
// Differs from Python: creation reserves the pages (posix_fallocate), so a full
// /dev/shm is an OSError here instead of a SIGBUS on first touch. Ownership is
// explicit: the creating handle owns the name and unlinks it when destroyed in
// the creating process, unless unlink() or release_ownership() ran first; a
// handle that only attached never removes the segment (Python's resource
// tracker also unlinks segments that attachers merely used). unlink() works
// once; a second one throws FileNotFoundError.
// Blocking: none. Peer death: a creator that dies without unlinking (kill -9
// included) has its still-owned names unlinked by a reaper process once it
// and every child forked from it are gone; attachers keep their mappings.
// release_ownership() lets a segment outlive its creator on purpose.
class SharedMemory {
 public:
  SharedMemory(std::optional<std::string> name, bool create, std::size_t size = 0);
  ~SharedMemory();
  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  const std::string& name() const { return name_; }
  std::size_t size() const { return size_; }
  std::span<std::byte> buf();
  void close();
  void unlink();
  // Gives up the creator's unlink-on-destruction, for a segment meant to outlive this handle.
  void release_ownership() noexcept;

 private:
  void swap(SharedMemory& other) noexcept;
  void remove_name() noexcept;
  std::string name_;
  std::size_t size_ = 0;
  std::byte* data_ = nullptr;
  int owner_pid_ = 0;  // the creating process while it still owns the name
};

}  // namespace mp
