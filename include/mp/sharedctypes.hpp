// mp/sharedctypes.hpp: Value, Array, RawValue, RawArray (Python:
// multiprocessing.sharedctypes).
#pragma once

#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "mp/detail/shared_mapping.hpp"
#include "mp/detail/sync_shared_cells.hpp"
#include "mp/synchronize.hpp"

namespace mp {

// LockOption<L> (Python: the lock= argument of Value and Array): true (the
// default) gives the object a new lock of its own, false gives it none (as
// Python's lock=False: plain reads and writes, and get_lock() throws
// mp::ValueError, where Python has no get_lock attribute), and a caller's
// Lock or RLock is shared: copies of a lock handle are the same lock, so two
// objects made with one lock exclude each other, across processes.
template <class LockType>
class LockOption {
 public:
  LockOption(std::same_as<bool> auto wanted) : wanted_(wanted) {}
  LockOption(LockType lock) : lock_(std::make_unique<LockType>(std::move(lock))), wanted_(true) {}

  // The caller's lock; else the object's own one, made by `make_own`, if a
  // lock is wanted at all.
  template <class MakeOwn>
  std::optional<LockType> resolve(MakeOwn make_own) && {
    if (lock_) return std::move(*lock_);
    if (wanted_) return make_own();
    return std::nullopt;
  }

 private:
  // A pointer, not a std::optional: GCC 12 cannot see that an empty
  // optional<RLock> destroys no shared_ptr, and its -Wmaybe-uninitialized
  // (an error under -Werror) fires in every sanitized includer.
  std::unique_ptr<LockType> lock_;
  bool wanted_;
};

namespace detail {
template <class LockType>
concept value_lock = std::same_as<LockType, RLock> || std::same_as<LockType, Lock>;

// A new lock for a Value or Array: an RLock lives in the object's own
// mapping (`words`), a Lock gets one of its own.
template <class LockType>
LockType own_lock(std::shared_ptr<RLockState> words) {
  if constexpr (std::same_as<LockType, RLock>)
    return RLock(std::move(words));
  else
    return Lock();
}

[[noreturn]] inline void throw_no_lock(const char* object) {
  throw ValueError(std::string(object) + ".get_lock: made with lock=false, it has no lock "
                   "(Python: AttributeError)");
}
}  // namespace detail

// Value<T> (Python: multiprocessing.Value)
//
// One trivially copyable T in anonymous shared memory with its own RLock;
// copies of the handle and forked children share it. value() is raw access;
// load() and store() take the lock; get_lock() guards read-modify-write.
// Python's lock= argument is the second one: Value<int> v(0, false) has no
// lock (load and store are plain; get_lock() throws mp::ValueError), and
// Value v(0, lock) shares the caller's mp::Lock or mp::RLock (the type is
// then Value<int, mp::Lock>, whose get_lock() returns that Lock).
// Differs from Python: integral T also has lock-free fetch_add, fetch_sub,
// fetch_and, fetch_or, fetch_xor, exchange, compare_exchange and atomic_load,
// which make Python's lost-update v.value += 1 a single atomic step.
// Blocking: only load/store and get_lock() block, as the lock does.
// Peer death: a process dying under get_lock() is recovered as for RLock
// (get_lock().owner_died()); a torn T is possible then, a torn atomic is not.
template <class T, class LockType = RLock>
class Value : public detail::AtomicOperations<Value<T, LockType>, T> {
  static_assert(std::is_trivially_copyable_v<T>, "Value holds trivially copyable types");
  static_assert(detail::value_lock<LockType>, "a Value's lock is an mp::Lock or an mp::RLock");

 public:
  explicit Value(T initial = T{}) : Value(initial, true) {}
  Value(T initial, LockOption<LockType> lock)
      : cell_(detail::make_shared_object<detail::LockedCell<T>>("Value", initial)),
        lock_(std::move(lock).resolve([&] {
          return detail::own_lock<LockType>(std::shared_ptr<detail::RLockState>(cell_, &cell_->lock));
        })) {}
  T& value() { return cell_->value; }
  T load() const {
    if (!lock_) return cell_->value;
    std::lock_guard guard(*lock_);
    return cell_->value;
  }
  void store(T v) {
    if (!lock_) {
      cell_->value = v;
      return;
    }
    std::lock_guard guard(*lock_);
    cell_->value = v;
  }
  LockType& get_lock() {
    if (!lock_) detail::throw_no_lock("Value");
    return *lock_;
  }

 private:
  std::shared_ptr<detail::LockedCell<T>> cell_;
  mutable std::optional<LockType> lock_;
};

template <class T>
Value(T, Lock) -> Value<T, Lock>;
template <class T>
Value(T, RLock) -> Value<T, RLock>;
template <class T>
Value(T, bool) -> Value<T>;

// RawValue<T> (Python: multiprocessing.RawValue): Value without a lock; load
// and store are plain reads and writes.
template <class T>
class RawValue : public detail::AtomicOperations<RawValue<T>, T> {
  static_assert(std::is_trivially_copyable_v<T>, "RawValue holds trivially copyable types");

 public:
  explicit RawValue(T initial = T{}) : cell_(detail::make_shared_object<T>("RawValue", initial)) {}
  T& value() { return *cell_; }
  T load() const { return *cell_; }
  void store(T v) { *cell_ = v; }

 private:
  std::shared_ptr<T> cell_;
};

// Array<T> (Python: multiprocessing.Array)
//
// A fixed number of trivially copyable T in anonymous shared memory, zero
// filled, from an initializer list, or copied from any range (a vector, a
// string, a view; each element converted as by static_cast, so an int too
// big for a short wraps where Python raises OverflowError; bytes such as a
// std::span<const std::byte> give each byte as 0..255, like Python's bytes),
// with its own RLock. The lock argument is
// Python's lock=, as for Value: false (no lock; get_lock() throws
// mp::ValueError) or a caller's Lock or RLock to share. operator[] is
// unchecked; at() throws ValueError out of range (Python: IndexError).
// Elements are accessed raw: take get_lock() around anything that must be
// consistent. Blocking and peer death: as Value.
template <class T, class LockType = RLock>
class Array : public detail::SharedElements<T, detail::RLockState> {
  static_assert(detail::value_lock<LockType>, "an Array's lock is an mp::Lock or an mp::RLock");
  using Elements = detail::SharedElements<T, detail::RLockState>;

 public:
  explicit Array(std::size_t size) : Array(size, true) {}
  Array(std::size_t size, LockOption<LockType> lock) : Elements(size, "Array"), lock_(own(std::move(lock))) {}
  Array(std::initializer_list<T> init) : Array(init, true) {}
  Array(std::initializer_list<T> init, LockOption<LockType> lock)
      : Elements(init, "Array"), lock_(own(std::move(lock))) {}
  // A copy of another handle shares its array, as every handle does.
  template <detail::element_range<T> Range>
    requires(!std::same_as<std::remove_cvref_t<Range>, Array>)
  explicit Array(Range&& range, LockOption<LockType> lock = true)
      : Elements(std::forward<Range>(range), "Array"), lock_(own(std::move(lock))) {}
  LockType& get_lock() {
    if (!lock_) detail::throw_no_lock("Array");
    return *lock_;
  }

 private:
  std::optional<LockType> own(LockOption<LockType> lock) {
    return std::move(lock).resolve([&] { return detail::own_lock<LockType>(this->header()); });
  }
  std::optional<LockType> lock_;
};

// RawArray<T> (Python: multiprocessing.RawArray): Array without a lock.
template <class T>
class RawArray : public detail::SharedElements<T, detail::NoHeader> {
  using Elements = detail::SharedElements<T, detail::NoHeader>;

 public:
  explicit RawArray(std::size_t size) : Elements(size, "RawArray") {}
  RawArray(std::initializer_list<T> init) : Elements(init, "RawArray") {}
  template <detail::element_range<T> Range>
    requires(!std::same_as<std::remove_cvref_t<Range>, RawArray>)
  explicit RawArray(Range&& range) : Elements(std::forward<Range>(range), "RawArray") {}
};

}  // namespace mp
