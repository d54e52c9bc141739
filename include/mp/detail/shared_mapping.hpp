// mp/detail/shared_mapping.hpp: anonymous MAP_SHARED memory that children
// inherit at fork. It has no name, so nothing can be left in /dev/shm: the
// kernel frees it when the last process that maps it unmaps it or dies.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <string_view>
#include <utility>

namespace mp::detail {

class SharedMapping {
 public:
  // Zero-filled; throws mp::OSError naming `object` when the kernel refuses.
  SharedMapping(std::size_t size, std::string_view object);
  ~SharedMapping();
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;

  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  void* data_;
  std::size_t size_;
};

// Constructs a T in a mapping of its own and returns a handle that keeps the
// mapping alive in this process. T's destructor never runs: other processes may
// still be using the object when this one lets go of it, so shared objects must
// not own process-local resources.
template <class T, class... Args>
std::shared_ptr<T> make_shared_object(std::string_view object, Args&&... args) {
  auto mapping = std::make_shared<SharedMapping>(sizeof(T), object);
  T* value = ::new (mapping->data()) T(std::forward<Args>(args)...);
  return std::shared_ptr<T>(std::move(mapping), value);
}

}  // namespace mp::detail
