// mp/queues.hpp: Queue, SimpleQueue, JoinableQueue (Python:
// multiprocessing.Queue, SimpleQueue, JoinableQueue).
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "mp/detail/archive.hpp"
#include "mp/detail/deadline.hpp"
#include "mp/detail/queue_core.hpp"
#include "mp/detail/repr.hpp"
#include "mp/errors.hpp"

namespace mp {

// Queue<T> (Python: multiprocessing.Queue)
//
// A FIFO of T in anonymous shared memory, for any number of producer and
// consumer processes and threads. Create it before start(): children reach it
// by inheritance, as in Python; copies of the handle share it.
//
// Differs from Python: typed (cereal instead of pickle); no feeder thread:
// put() serializes in the calling thread and returns once the item is in
// shared memory, so a value that cannot be serialized throws from put() and
// leaves the queue unchanged, and a producer may exit at once without losing
// anything; qsize(), empty() and full() are exact; unbounded means unbounded
// (while memory and 32 GiB of address space last); close() makes later put
// and get in this process throw mp::ValueError.
// Blocking: put waits while a bounded queue is full, get while it is empty; a
// waiter spins briefly and then sleeps on a futex (no CPU while idle); the
// timed forms use the monotonic clock and throw mp::Full / mp::Empty, at
// their deadline whatever the other processes do: a live process that holds
// the producers' or consumers' lock (stopped, or copying a huge item) is
// waited for only until then, and put_nowait/get_nowait only try once. A
// call that throws Full or Empty left the queue unchanged.
// Memory: a put that needs a new chunk reserves its pages first, so memory
// exhaustion is an mp::OSError (ENOMEM, ENOSPC) naming the queue from put,
// the queue unchanged, never a SIGBUS.
// Peer death: a process killed anywhere inside put or get (kill -9 included)
// never leaves a torn item visible and never blocks the others for long: the
// lock it held (producers and consumers have one each) is taken over within
// a 20 ms liveness slice by the next process that waits for it, which repairs
// the bookkeeping. An item whose get had moved past it dies with its taker.
// repr() (and operator<<): <Queue maxsize=0 qsize=3>, or <Queue closed>
// (Python prints only its class and address).
template <class T>
class Queue {
 public:
  explicit Queue(std::size_t maxsize = 0) : state_(std::make_shared<State>(maxsize, "Queue")) {}

  void put(const T& item) { put_until(item, detail::Deadline::never(), "Queue.put"); }
  template <class Rep, class Per>
  void put(const T& item, std::chrono::duration<Rep, Per> timeout) {
    put_until(item, detail::Deadline::after(timeout), "Queue.put");
  }
  void put(const T& item, bool block) {
    put_until(item, block ? detail::Deadline::never() : detail::Deadline::now(), "Queue.put");
  }
  void put_nowait(const T& item) { put_until(item, detail::Deadline::now(), "Queue.put_nowait"); }

  T get() { return get_until(detail::Deadline::never(), "Queue.get"); }
  template <class Rep, class Per>
  T get(std::chrono::duration<Rep, Per> timeout) {
    return get_until(detail::Deadline::after(timeout), "Queue.get");
  }
  T get(bool block) {
    return get_until(block ? detail::Deadline::never() : detail::Deadline::now(), "Queue.get");
  }
  T get_nowait() { return get_until(detail::Deadline::now(), "Queue.get_nowait"); }

  std::size_t qsize() const { return state_->core.qsize(); }
  bool empty() const { return qsize() == 0; }
  bool full() const {
    std::size_t maxsize = state_->core.maxsize();
    return maxsize != 0 && qsize() >= maxsize;
  }
  // Closes this process's handles to the queue; other processes go on.
  void close() { state_->closed = true; }
  std::string repr() const { return repr_as("Queue"); }

 protected:
  // SimpleQueue has no maxsize to show.
  std::string repr_as(std::string_view kind, bool with_maxsize = true) const {
    std::string text = "<" + std::string(kind);
    if (state_->closed) return text + " closed>";
    if (with_maxsize) text += " maxsize=" + std::to_string(state_->core.maxsize());
    return text + " qsize=" + std::to_string(qsize()) + ">";
  }

  struct State {
    State(std::size_t maxsize, std::string_view object) : core(maxsize, object) {}
    detail::QueueCore core;
    bool closed = false;
  };

  // `method` is a string_view so that a literal's length is known where it is
  // passed, not counted on every call.
  void require_open(std::string_view method) const {
    if (state_->closed) throw ValueError(std::string(method) + ": the queue is closed");
  }

  void put_until(const T& item, const detail::Deadline& deadline, std::string_view method) {
    require_open(method);
    bool stored;
    if constexpr (detail::has_plain_encoding<T>) {
      // Copied into the queue from where it lies: no message is built first.
      detail::PlainEncoding<T> encoding(item);
      stored = state_->core.put(encoding.head(), encoding.body(), deadline);
    } else {
      // Serialized here, in the caller's thread, into a buffer that keeps its capacity.
      thread_local std::string buffer;
      buffer.clear();
      detail::dump_into(buffer, item, method);
      stored = state_->core.put(buffer, deadline);
    }
    if (!stored)
      throw Full(std::string(method) +
                 (full() ? ": the queue is full (maxsize " + std::to_string(state_->core.maxsize()) + ")"
                         : ": timed out while another process or thread held the producers' lock"));
  }

  T get_until(const detail::Deadline& deadline, std::string_view method) {
    require_open(method);
    if constexpr (detail::has_plain_encoding<T>) {
      // A number or a string is decoded straight from the queue, under the
      // consumers' lock: that is one copy, as copying it out would be, and
      // producers do not wait for it. A record that does not decode is
      // still taken, then reported.
      T value{};
      std::exception_ptr malformed;
      auto decode = [&](std::string_view record) {
        try {
          value = detail::loads<T>(record, method);
        } catch (...) {
          malformed = std::current_exception();
        }
      };
      if (!state_->core.get(decode, deadline)) throw_empty(method);
      if (malformed) std::rethrow_exception(malformed);
      return value;
    } else {
      // Anything else is copied out and decoded once the lock is released,
      // so that cereal's slower decoding holds up no other consumer.
      thread_local std::string buffer;  // keeps its capacity
      if (!state_->core.get(buffer, deadline)) throw_empty(method);
      return detail::loads<T>(buffer, method);
    }
  }

  [[noreturn]] void throw_empty(std::string_view method) const {
    throw Empty(std::string(method) + (empty() ? ": the queue is empty"
                                               : ": timed out while another process or thread held the consumers' lock"));
  }

  std::shared_ptr<State> state_;
};

// SimpleQueue<T> (Python: multiprocessing.SimpleQueue): an unbounded Queue
// with only put, get, empty and close. Same sharing, blocking and crash
// behaviour as Queue. repr(): <SimpleQueue qsize=1>.
template <class T>
class SimpleQueue {
 public:
  void put(const T& item) { queue_.put(item); }
  T get() { return queue_.get(); }
  bool empty() const { return queue_.empty(); }
  void close() { queue_.close(); }
  std::string repr() const { return queue_.repr_as("SimpleQueue", false); }

 private:
  // A Queue of its own kind, so that repr() can name it.
  struct Core : Queue<T> {
    using Queue<T>::repr_as;
  };
  Core queue_;
};

// JoinableQueue<T> (Python: multiprocessing.JoinableQueue): a Queue that
// counts unfinished tasks: each put adds one, task_done() removes one
// (mp::ValueError when there is none), join() waits until none is left.
// The count lives in shared memory and is repaired like the rest after a
// process dies inside put. repr(): <JoinableQueue maxsize=0 qsize=2>.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  using Queue<T>::Queue;
  std::string repr() const { return this->repr_as("JoinableQueue"); }

  void task_done() {
    this->require_open("JoinableQueue.task_done");
    if (!this->state_->core.task_done())
      throw ValueError("JoinableQueue.task_done: task_done() called too many times");
  }
  void join() {
    this->require_open("JoinableQueue.join");
    this->state_->core.join(detail::Deadline::never());
  }
  // Beyond Python: false if tasks are still unfinished after the timeout.
  template <class Rep, class Per>
  bool join(std::chrono::duration<Rep, Per> timeout) {
    this->require_open("JoinableQueue.join");
    return this->state_->core.join(detail::Deadline::after(timeout));
  }
};

}  // namespace mp
