// mp/detail/pool_messages.hpp: what travels between a pool and its workers,
// through the shared-memory queues.
#pragma once

#include <cstdint>
#include <string>

namespace mp::detail {

// To a worker. seq 0 tells it to exit.
struct TaskMessage {
  std::uint64_t seq = 0;
  std::uintptr_t runner = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(seq, runner, payload);
  }
};

enum class ResultKind : std::uint8_t { succeeded, failed, initializer_failed, worker_exited, stop };

// To the pool's result thread, from the workers and from its own watcher.
struct ResultMessage {
  ResultKind kind = ResultKind::succeeded;
  std::uint32_t worker = 0;
  std::uint64_t generation = 0;
  std::uint64_t seq = 0;
  std::string type_name;  // failed: the thrown type
  std::string payload;    // succeeded: the encoded result; failed: what()
  template <class Archive>
  void serialize(Archive& archive) {
    archive(kind, worker, generation, seq, type_name, payload);
  }
};

}  // namespace mp::detail
