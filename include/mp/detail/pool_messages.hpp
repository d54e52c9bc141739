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
#include <exception>
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

// Makes `result` a failure record (kind failed or initializer_failed) for
// the exception being handled. Call it inside a catch block.
void describe_current_exception(std::string& result, ResultKind kind, std::uint32_t worker,
                                std::uint64_t generation, std::uint64_t seq);
// The exception a failure record stands for, `context` in front of its
// message; a record that does not decode gives that SerializationError.
std::exception_ptr remote_failure(const ResultRecord& message, std::string_view context = {});

// How a code address (a function pointer, a runner) travels. Without a codec
// (null, the default) it is the raw address, which holds in the forks of
// this process. Between processes that load the same binary at different
// addresses (MPI ranks under PIE and ASLR), mpi::Pool installs one that
// writes (module, offset) and resolves it in the receiver's own layout.
struct CodeAddressCodec {
  std::uint64_t (*encode)(std::uintptr_t address);
  std::uintptr_t (*decode)(std::uint64_t code);  // throws SerializationError if unknown
};
extern const CodeAddressCodec* code_address_codec;

inline std::uint64_t encode_code_address(std::uintptr_t address) {
  const CodeAddressCodec* codec = code_address_codec;
  return codec ? codec->encode(address) : address;
}
inline std::uintptr_t decode_code_address(std::uint64_t code) {
  const CodeAddressCodec* codec = code_address_codec;
  return codec ? codec->decode(code) : static_cast<std::uintptr_t>(code);
}

}  // namespace mp::detail
