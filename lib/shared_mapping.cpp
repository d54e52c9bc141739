#include "mp/detail/shared_mapping.hpp"

#include <sys/mman.h>

#include "mp/detail/syscall.hpp"

namespace mp::detail {

SharedMapping::SharedMapping(std::size_t size, std::string_view object) : size_(size) {
  void* address = MAP_FAILED;
  retry("mmap", [&] {
    address = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return address == MAP_FAILED ? -1 : 0;
  });
  if (address == MAP_FAILED) throw_os_error("mmap", errno, object);
  data_ = address;
}

SharedMapping::~SharedMapping() { ::munmap(data_, size_); }

}  // namespace mp::detail
