// mp/detail/sync_shared_cells.hpp: the storage under Value/RawValue and
// Array/RawArray: trivially copyable values in anonymous shared memory, with
// or without an RLock's words in front of them.
#pragma once

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <ranges>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "mp/detail/shared_mapping.hpp"
#include "mp/detail/sync_lock_word.hpp"
#include "mp/errors.hpp"

namespace mp::detail {

// Python's v.value += 1 loses updates; these do not. They are lock-free and do
// not take the lock, so one Value should be updated either through them or
// under get_lock(), not both at once.
template <class Derived, class T>
class AtomicOperations {
 public:
  T fetch_add(T delta) requires std::integral<T> { return cell().fetch_add(delta); }
  T fetch_sub(T delta) requires std::integral<T> { return cell().fetch_sub(delta); }
  T fetch_and(T mask) requires std::integral<T> { return cell().fetch_and(mask); }
  T fetch_or(T mask) requires std::integral<T> { return cell().fetch_or(mask); }
  T fetch_xor(T mask) requires std::integral<T> { return cell().fetch_xor(mask); }
  T exchange(T desired) requires std::integral<T> { return cell().exchange(desired); }
  bool compare_exchange(T& expected, T desired) requires std::integral<T> {
    return cell().compare_exchange_strong(expected, desired);
  }
  T atomic_load() requires std::integral<T> { return cell().load(); }

 private:
  std::atomic_ref<T> cell() { return std::atomic_ref<T>(static_cast<Derived&>(*this).value()); }
};

struct NoHeader {};

// A range whose elements initialise a T: they convert to it, or they are
// bytes (std::byte), each giving its value 0..255 as Python's bytes do.
template <class Range, class T>
concept element_range =
    std::ranges::input_range<Range> &&
    (std::convertible_to<std::ranges::range_reference_t<Range>, T> ||
     (std::same_as<std::remove_cvref_t<std::ranges::range_reference_t<Range>>, std::byte> &&
      std::is_arithmetic_v<T>));

template <class T, class From>
T element_from(const From& from) {
  if constexpr (std::same_as<From, std::byte> && !std::same_as<T, std::byte>)
    return static_cast<T>(std::to_integer<unsigned char>(from));
  else
    return static_cast<T>(from);  // the range's elements convert to T: asked for, not a slip
}

// size elements of T after a Header, in one mapping of their own.
template <class T, class Header>
class SharedElements {
  static_assert(std::is_trivially_copyable_v<T>, "shared arrays hold trivially copyable types");

 public:
  SharedElements(std::size_t size, const char* object) : object_(object), size_(size) {
    if (size > (std::numeric_limits<std::size_t>::max() - elements_offset) / sizeof(T))
      throw ValueError(std::string(object) + ": " + std::to_string(size) + " elements do not fit in memory");
    // A mapping cannot be empty; a zero-length array still gets its header page.
    mapping_ = std::make_shared<SharedMapping>(elements_offset + size * sizeof(T) + 1, object);
    header_ = ::new (mapping_->data()) Header();
    data_ = reinterpret_cast<T*>(static_cast<std::byte*>(mapping_->data()) + elements_offset);
  }
  SharedElements(std::initializer_list<T> init, const char* object)
      : SharedElements(init.size(), object) {
    if (init.size() != 0) std::memcpy(static_cast<void*>(data_), init.begin(), init.size() * sizeof(T));
  }
  // A range that can be counted before it is copied (sized, or traversable
  // twice) is copied in place; a single-pass one is gathered first.
  template <element_range<T> Range>
    requires std::ranges::sized_range<Range> || std::ranges::forward_range<Range>
  SharedElements(Range&& range, const char* object)
      : SharedElements(static_cast<std::size_t>(std::ranges::distance(range)), object) {
    std::size_t i = 0;
    for (auto&& element : range) {
      if (i == size_) break;
      data_[i++] = element_from<T>(element);
    }
  }
  template <element_range<T> Range>
  SharedElements(Range&& range, const char* object) : SharedElements(gather(range), object) {}

  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  T& at(std::size_t i) {
    if (i >= size_)
      throw ValueError(std::string(object_) + ".at: index " + std::to_string(i) +
                       " out of range for size " + std::to_string(size_));
    return data_[i];
  }
  std::size_t size() const { return size_; }
  std::span<T> span() { return {data_, size_}; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }

 protected:
  std::shared_ptr<Header> header() const { return std::shared_ptr<Header>(mapping_, header_); }

 private:
  template <class Range>
  static std::vector<T> gather(Range& range) {
    std::vector<T> elements;
    for (auto&& element : range) elements.push_back(element_from<T>(element));
    return elements;
  }

 private:
  static constexpr std::size_t elements_offset =
      (sizeof(Header) + alignof(T) - 1) / alignof(T) * alignof(T);
  const char* object_;
  std::size_t size_;
  std::shared_ptr<SharedMapping> mapping_;
  Header* header_;
  T* data_;
};

template <class T>
struct LockedCell {
  explicit LockedCell(const T& initial) : value(initial) {}
  RLockState lock;
  T value;
};

}  // namespace mp::detail
