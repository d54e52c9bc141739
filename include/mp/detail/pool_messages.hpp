// mp/detail/pool_messages.hpp: the records that travel between a pool and
// its workers through the shared-memory queues. They are laid out by hand, not
// through cereal, so that a payload is copied once into the queue and read in
// place on the other side.
//
//   task:   seq u64 | runner u64 | payload            (seq 0: exit)
//   result: kind u8 | worker u32 | generation u64 | seq u64 | run time u64 |
//           payload (succeeded: the encoded result; failed and
//           initializer_failed: the exception's record, detail/remote_exception.hpp)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mp::detail {

enum class ResultKind : std::uint8_t { succeeded, failed, initializer_failed, worker_exited, stop };

struct TaskRecord {
  std::uint64_t seq = 0;
  std::uintptr_t runner = 0;
  std::string_view payload;  // points into the record
};

struct ResultRecord {
  ResultKind kind = ResultKind::succeeded;
  std::uint32_t worker = 0;
  std::uint64_t generation = 0;
  std::uint64_t seq = 0;
  std::uint64_t run_ns = 0;  // how long the task took in the worker
  std::string_view payload;  // succeeded: the encoded result; failed: the exception record
};

// A task record is built with its header left blank (begin_task, then the
// payload is appended) and sealed in place when it is sent, so the payload is
// never copied again to put a header in front of it. A task sent again after
// a death is simply sealed again.
inline constexpr std::size_t task_header_size = 2 * sizeof(std::uint64_t);
void begin_task(std::string& out);
void seal_task(std::string& record, std::uint64_t seq, std::uintptr_t runner);
// Throws SerializationError if the record is malformed.
TaskRecord decode_task(std::string_view record);

// Writes a result's header into `out` (cleared first); the payload is then
// appended to `out` by whoever produces it.
void begin_result(std::string& out, ResultKind kind, std::uint32_t worker,
                  std::uint64_t generation, std::uint64_t seq);
// Sets the run time in a result record begun by begin_result.
void stamp_run_time(std::string& result, std::uint64_t run_ns);
// Throws SerializationError if the record is malformed.
ResultRecord decode_result(std::string_view record);

}  // namespace mp::detail
