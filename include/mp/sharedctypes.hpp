// mp/sharedctypes.hpp: Value, Array, RawValue, RawArray (Python:
// multiprocessing.sharedctypes).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <type_traits>

#include "mp/detail/shared_mapping.hpp"
#include "mp/detail/sync_shared_cells.hpp"
#include "mp/synchronize.hpp"

namespace mp {

// Value<T> (Python: multiprocessing.Value)
//
// One trivially copyable T in anonymous shared memory with its own RLock;
// copies of the handle and forked children share it. value() is raw access;
// load() and store() take the lock; get_lock() guards read-modify-write.
// Differs from Python: integral T also has lock-free fetch_add, fetch_sub,
// fetch_and, fetch_or, fetch_xor, exchange, compare_exchange and atomic_load,
// which make Python's lost-update v.value += 1 a single atomic step.
// Blocking: only load/store and get_lock() block, as RLock does.
// Peer death: a process dying under get_lock() is recovered as for RLock
// (get_lock().owner_died()); a torn T is possible then, a torn atomic is not.
template <class T>
class Value : public detail::AtomicOperations<Value<T>, T> {
  static_assert(std::is_trivially_copyable_v<T>, "Value holds trivially copyable types");

 public:
  explicit Value(T initial = T{})
      : cell_(detail::make_shared_object<detail::LockedCell<T>>("Value", initial)),
        lock_(std::shared_ptr<detail::RLockState>(cell_, &cell_->lock)) {}
  T& value() { return cell_->value; }
  T load() const {
    std::lock_guard guard(lock_);
    return cell_->value;
  }
  void store(T v) {
    std::lock_guard guard(lock_);
    cell_->value = v;
  }
  RLock& get_lock() { return lock_; }

 private:
  std::shared_ptr<detail::LockedCell<T>> cell_;
  mutable RLock lock_;
};

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
// filled or from an initializer list, with its own RLock. operator[] is
// unchecked; at() throws ValueError out of range (Python: IndexError).
// Elements are accessed raw: take get_lock() around anything that must be
// consistent. Blocking and peer death: as Value.
template <class T>
class Array : public detail::SharedElements<T, detail::RLockState> {
  using Elements = detail::SharedElements<T, detail::RLockState>;

 public:
  explicit Array(std::size_t size) : Elements(size, "Array"), lock_(this->header()) {}
  Array(std::initializer_list<T> init) : Elements(init, "Array"), lock_(this->header()) {}
  RLock& get_lock() { return lock_; }

 private:
  RLock lock_;
};

// RawArray<T> (Python: multiprocessing.RawArray): Array without a lock.
template <class T>
class RawArray : public detail::SharedElements<T, detail::NoHeader> {
  using Elements = detail::SharedElements<T, detail::NoHeader>;

 public:
  explicit RawArray(std::size_t size) : Elements(size, "RawArray") {}
  RawArray(std::initializer_list<T> init) : Elements(init, "RawArray") {}
};

}  // namespace mp
