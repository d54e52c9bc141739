// mp/detail/queue_core.hpp: the untyped shared-memory queue behind Queue,
// SimpleQueue, JoinableQueue and the Pool: variable-size byte records, many
// producers and consumers (processes and threads), crash-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "mp/detail/deadline.hpp"

namespace mp::detail {

struct QueueShared;

class QueueCore {
 public:
  // maxsize counts records; 0 is unbounded. Creates the shared memory now:
  // create queues before forking the processes that use them.
  QueueCore(std::size_t maxsize, std::string_view object);
  ~QueueCore();
  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;

  // Appends a copy of `record`. Waits for room (bounded queues) until the
  // deadline; false if there was none. Never waits when unbounded.
  bool put(std::string_view record, const Deadline& deadline);
  // Moves the oldest record into `out` (its capacity is reused); false if
  // none came before the deadline.
  bool get(std::string& out, const Deadline& deadline);

  std::size_t qsize() const noexcept;
  std::size_t maxsize() const noexcept;

  // JoinableQueue: every put adds an unfinished task, task_done removes one
  // (false if there was none), join waits until none is left.
  bool task_done();
  bool join(const Deadline& deadline);

  // 4 MiB chunks holding records now (freed ones are not counted), for tests.
  std::size_t resident_chunks() const noexcept;
  // Makes only the first `chunks` 4 MiB chunks usable, for tests that must
  // reach the end of the address space without walking 32 GiB.
  void limit_address_space(std::uint32_t chunks);

 private:
  QueueShared* shared_;
  std::size_t mapped_size_;
  std::string object_;
};

}  // namespace mp::detail
