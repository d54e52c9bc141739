// mp/detail/queue_core.hpp: the untyped shared-memory queue behind Queue,
// SimpleQueue, JoinableQueue and the Pool: variable-size byte records, many
// producers and consumers (processes and threads), crash-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "mp/detail/deadline.hpp"
#include "mp/detail/fd.hpp"
#include "mp/detail/spin_policy.hpp"

namespace mp::detail {

struct QueueShared;

class QueueCore {
 public:
  // maxsize counts records; 0 is unbounded. Creates the shared memory now:
  // create queues before forking the processes that use them. `spin`: a
  // reader spins briefly before it sleeps, for a record about to arrive, as
  // long as such spins keep finding one. The Pool turns it off: its threads
  // and workers often outnumber the cores, and a spinning reader takes the CPU
  // its record has to come from.
  QueueCore(std::size_t maxsize, std::string_view object, bool spin = true);
  ~QueueCore();
  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;

  // Every call below with a deadline returns false once it passes, also
  // while another live process holds the lock the call needs (stopped, or
  // copying a huge record); a call that returns false changed nothing.
  //
  // Appends a copy of `record`. Waits for room (bounded queues) until the
  // deadline; false if there was none. Throws mp::OSError (ENOMEM, ENOSPC)
  // naming the queue, the queue unchanged, when the kernel cannot give the
  // record's memory.
  bool put(std::string_view record, const Deadline& deadline) { return put({}, record, deadline); }
  // Appends one record made of `head`, then `body`: a message in two pieces
  // is copied into the queue without being joined first.
  bool put(std::string_view head, std::string_view body, const Deadline& deadline) {
    return put(head, body, deadline, false);
  }
  // Like put(record), for a queue whose reader may be helped by watchers:
  // while one is registered (watch()), the record wakes no sleeping reader,
  // since a watcher polls the head itself. A watcher takes what it may and
  // calls wake_readers() for a record it leaves; unwatch() wakes them for
  // any record still there. So a record is always either seen by a watcher
  // or wakes the readers, and a waking costs nothing while a watcher takes
  // the records (the Pool: a future's result() takes its own result while
  // the result thread sleeps on).
  bool put_unless_watched(std::string_view record, const Deadline& deadline) {
    return put({}, record, deadline, true);
  }
  void watch() noexcept;
  void unwatch() noexcept;
  // Wakes the readers asleep for a record, if any.
  void wake_readers() noexcept;
  // Moves the oldest record into `out` (its capacity is reused); false if
  // none came before the deadline.
  bool get(std::string& out, const Deadline& deadline);
  // Passes the oldest record to `take` and removes it, under the consumers'
  // lock, so a record decoded as fast as it is copied needs no copy in
  // between; anything slower holds up the other consumers (not producers). If
  // `take` throws, the record stays, as get(out) leaves it when `out` cannot
  // grow. False if none came before the deadline.
  bool get(const std::function<void(std::string_view)>& take, const Deadline& deadline);
  // For a queue with one consumer (thread or process): waits for the oldest
  // record like get(), but leaves it where it is and returns a view of it,
  // valid until pop_and_peek() removes it. Only the consumer frees or reuses
  // the memory of a record, so it stays put meanwhile, and a large record is
  // read without being copied. If the consumer dies before removing it, the
  // record stays at the head.
  bool peek(std::string_view& out, const Deadline& deadline);
  // Removes the record the last peek() or pop_and_peek() returned, then
  // peeks at the next one, under one hold of the consumers' lock. The
  // removal waits for the lock whatever the deadline.
  bool pop_and_peek(std::string_view& out, const Deadline& deadline);

  std::size_t qsize() const noexcept;
  std::size_t maxsize() const noexcept;

  // JoinableQueue: every put adds an unfinished task, task_done removes one
  // (false if there was none), join waits until none is left.
  bool task_done();
  bool join(const Deadline& deadline);

  // Records live in chunks of this size; a bigger one takes a run of them.
  // 2 MiB: a producer and a consumer that keep pace cycle through two or
  // three chunks, which stay in the CPU caches (4 MiB chunks made 1 KiB items
  // about 30% slower), and a record of up to 2 MiB needs no run.
  static constexpr std::size_t chunk_bytes = std::size_t{2} << 20;
  // Chunks in use now (the head chunk at least; freed ones are not counted),
  // for tests.
  std::size_t resident_chunks() const noexcept;
  // Makes only the first `chunks` chunks usable, for tests that must
  // reach the end of the address space without walking 32 GiB.
  void limit_address_space(std::uint32_t chunks);

 private:
  FileDescriptor memfd_;  // for reserving pages
  QueueShared* shared_;
  std::size_t mapped_size_;
  bool put(std::string_view head, std::string_view body, const Deadline& deadline,
           bool unless_watched);

  std::string object_;
  bool spin_;
  SpinPolicy spin_policy_;  // for this process's readers
  // What a waiting reader spins with: null when this queue never spins.
  SpinPolicy* spin_hint() noexcept { return spin_ ? &spin_policy_ : nullptr; }
};

}  // namespace mp::detail
