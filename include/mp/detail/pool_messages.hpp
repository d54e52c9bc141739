// mp/detail/pool_messages.hpp: the records that travel between a pool and
// its workers through the shared-memory queues. They are laid out by hand, not
// through cereal, so that a payload is copied once into the queue and read in
// place on the other side.
//
//   task:   seq u64 | runner u64 | payload            (seq 0: exit)
//   result: kind u8 | worker u32 | generation u64 | seq u64 | type length u32 |
//           type name | payload
#pragma once

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
  std::string_view type_name;  // failed: the thrown type
  std::string_view payload;    // succeeded: the encoded result; failed: what()
};

void encode_task(std::string& out, std::uint64_t seq, std::uintptr_t runner,
                 std::string_view payload);
// Throws SerializationError if the record is malformed.
TaskRecord decode_task(std::string_view record);

// Writes a result's header into `out` (cleared first); the payload is then
// appended to `out` by whoever produces it.
void begin_result(std::string& out, ResultKind kind, std::uint32_t worker,
                  std::uint64_t generation, std::uint64_t seq, std::string_view type_name = {});
// Throws SerializationError if the record is malformed.
ResultRecord decode_result(std::string_view record);

}  // namespace mp::detail
