// mp/synchronize.hpp: Lock, RLock, Semaphore, BoundedSemaphore, Condition,
// Event, Barrier (Python: multiprocessing.synchronize).
//
// Every primitive is a handle on a few futex words in anonymous shared memory:
// copies share one object, children reach it by fork, nothing is named and
// nothing is left in /dev/shm. All timeouts run on the monotonic clock; a
// negative timeout means zero; block=false ignores any timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "mp/detail/deadline.hpp"
#include "mp/detail/repr.hpp"
#include "mp/detail/sync_lock_word.hpp"

namespace mp {

// Lock (Python: multiprocessing.Lock)
//
// As Python: any thread of any process may release a held Lock; release() of
// an unlocked Lock throws ValueError; a thread acquiring a Lock it holds
// deadlocks (use a timeout or RLock).
// Blocking: acquire() waits forever, acquire(timeout) at most timeout;
// waiters sleep on a futex, an uncontended acquire/release makes no syscall.
// Peer death (better than Python): when the holding process dies, a waiter
// notices within ~20 ms and takes the lock over; a non-blocking acquire checks
// at once. The takeover is reported by owner_died(), which stays true for every
// later holder until one of them calls mark_consistent() after repairing what
// the lock protects. The holder is recorded by pid and process start time, so
// a new process that got a dead holder's pid is not taken for the holder.
// repr() (and operator<<) is Python's: <Lock(owner=None)>, the holding
// process's name when it is this one (Python adds "|thread" for a thread
// other than the main one: a Lock records no thread), or SomeOtherProcess.
class Lock : public detail::Lockable<Lock> {
 public:
  Lock();
  using Lockable::acquire;
  bool acquire(bool block = true) {
    return word_->try_acquire_fast() ||
           acquire_until(block ? detail::Deadline::never() : detail::Deadline::now());
  }
  bool acquire_until(const detail::Deadline& deadline);
  void release() {
    if (!detail::lock_word_release(*word_)) released_too_often();
  }
  bool locked() const;
  bool owner_died() const;
  void mark_consistent();
  std::string repr() const;

 private:
  friend class Condition;
  [[noreturn]] static void released_too_often();
  bool held_by_caller_process() const;
  std::shared_ptr<detail::LockWord> word_;
};

// RLock (Python: multiprocessing.RLock)
//
// Recursive: its holder (one thread of one process) may acquire it again and
// must release it as often. release() by any other thread or process, or of
// an unheld RLock, throws ValueError (Python: AssertionError).
// Blocking and peer death: as Lock; a takeover from a dead holder starts at
// depth 1 and sets owner_died(), also when the taker is a new process with
// the dead holder's pid (and so a main thread with its tid).
// repr() is Python's: <RLock(None, 0)>, <RLock(MainProcess, 2)> for the
// calling thread's own hold (C++ threads have no names to add), else
// <RLock(SomeOtherThread, nonzero)> or <RLock(SomeOtherProcess, nonzero)>.
class RLock : public detail::Lockable<RLock> {
 public:
  RLock();
  explicit RLock(std::shared_ptr<detail::RLockState> state);  // for Value/Array: lock in their mapping
  using Lockable::acquire;
  bool acquire_until(const detail::Deadline& deadline);
  void release();
  bool locked() const;
  bool owner_died() const;
  void mark_consistent();
  std::string repr() const;

 private:
  friend class Condition;
  std::shared_ptr<detail::RLockState> state_;
};

namespace detail {
struct SemaphoreState;
struct ConditionState;
struct BarrierState;
}  // namespace detail

// Semaphore (Python: multiprocessing.Semaphore)
//
// A counter: acquire() takes one, waiting while it is zero; release() adds one
// and wakes one waiter. get_value() works (Python: not on macOS). Negative
// initial values throw ValueError.
// Blocking: as Lock. Peer death: a semaphore has no owner, so a process dying
// between acquire and release loses that unit, as in Python.
// repr() is Python's: <Semaphore(value=3)>, <BoundedSemaphore(value=1, maxvalue=2)>.
class Semaphore : public detail::Lockable<Semaphore> {
 public:
  explicit Semaphore(int value = 1);
  using Lockable::acquire;
  bool acquire_until(const detail::Deadline& deadline);
  void release();
  int get_value() const;
  std::string repr() const;

 protected:
  Semaphore(int value, std::uint32_t maximum, const char* kind);

 private:
  std::shared_ptr<detail::SemaphoreState> state_;
};

// BoundedSemaphore (Python: multiprocessing.BoundedSemaphore): a Semaphore
// whose release() above the initial value throws ValueError.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(int value = 1);
};

// Condition (Python: multiprocessing.Condition)
//
// A condition variable over a Lock or an RLock (default: a new RLock); a
// Condition made from a lock handle shares that lock. wait() releases every
// recursion level of an RLock and restores them. wait/notify without holding
// the lock throw ValueError (Python: AssertionError); for a Lock, "holding"
// means this process holds it, since a Lock records no thread.
// Differs from Python: notify() never blocks (Python's waits for each woken
// sleeper to acknowledge); wait(timeout) returns false on timeout and true only
// when a notify() issued after the wait began was delivered to it.
// Blocking: wait() until notified, wait(timeout) at most timeout plus the time
// to reacquire the lock. Peer death: the lock recovers as Lock/RLock do
// (owner_died()); a waiter that dies leaves no trace except that a later
// notify may wake one waiter more than asked.
// repr() is Python's: <Condition(<RLock(None, 0)>, 0)>, the lock and the
// number of waiters not yet woken.
class Condition : public detail::Lockable<Condition> {
 public:
  Condition();
  explicit Condition(Lock lock);
  explicit Condition(RLock lock);
  using Lockable::acquire;
  bool acquire_until(const detail::Deadline& deadline);
  void release();
  bool owner_died() const;
  void mark_consistent();

  bool wait() { return wait_until(detail::Deadline::never()); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(detail::Deadline::after(timeout));
  }
  bool wait_until(const detail::Deadline& deadline);

  template <class Predicate>
  bool wait_for(Predicate predicate) {
    return wait_for_until(predicate, detail::Deadline::never());
  }
  template <class Predicate, class Rep, class Period>
  bool wait_for(Predicate predicate, std::chrono::duration<Rep, Period> timeout) {
    return wait_for_until(predicate, detail::Deadline::after(timeout));
  }
  // Python's wait_for: the predicate's last value.
  template <class Predicate>
  bool wait_for_until(Predicate& predicate, const detail::Deadline& deadline) {
    bool result = predicate();
    while (!result && !deadline.expired()) {
      wait_until(deadline);
      result = predicate();
    }
    return result;
  }

  void notify(int n = 1);
  void notify_all();
  std::string repr() const;

 private:
  void require_held(const char* method) const;
  std::variant<Lock, RLock> lock_;
  std::shared_ptr<detail::ConditionState> state_;
};

// Event (Python: multiprocessing.Event)
//
// A flag: set() raises it and wakes every waiter, clear() lowers it, wait()
// returns once it is raised. wait(timeout) returns the flag, so false means
// timeout. Peer death: nothing to recover; no lock is involved.
// repr() is Python's: <Event at 0x7f3a2c1b4000 set> (or unset), the address
// of the shared flag, the same in every process that inherited it.
class Event {
 public:
  Event();
  void set();
  void clear();
  bool is_set() const;
  bool wait() { return wait_until(detail::Deadline::never()); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(detail::Deadline::after(timeout));
  }
  bool wait_until(const detail::Deadline& deadline);
  std::string repr() const;

 private:
  std::shared_ptr<std::atomic<std::uint32_t>> flag_;
};

// Barrier (Python: multiprocessing.Barrier, i.e. threading.Barrier)
//
// wait() returns the arrival index in [0, parties). The last arrival runs the
// action (each process uses its own copy, inherited at fork) once per cycle
// before anyone is released; an action that throws breaks the barrier and the
// exception propagates in that party. A wait that times out (its own timeout,
// or the barrier's default) breaks the barrier for everyone: they all throw
// BrokenBarrierError, as do later waits until reset(). abort() breaks it;
// reset() breaks it for current waiters and makes it usable again.
// Peer death: a party that dies while waiting still counts as arrived for that
// cycle, and one that never arrives makes the others wait for their timeout;
// a party dying inside the barrier's lock is recovered as for Lock.
class Barrier {
 public:
  explicit Barrier(int parties, std::function<void()> action = {},
                   std::optional<std::chrono::nanoseconds> timeout = {});
  int wait();
  template <class Rep, class Period>
  int wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(detail::Deadline::after(timeout));
  }
  int wait_until(const detail::Deadline& deadline);
  void reset();
  void abort();
  int parties() const;
  int n_waiting() const;
  bool broken() const;

 private:
  void break_barrier();
  Condition condition_;
  std::function<void()> action_;
  std::optional<std::chrono::nanoseconds> timeout_;
  std::shared_ptr<detail::BarrierState> state_;
};

}  // namespace mp
