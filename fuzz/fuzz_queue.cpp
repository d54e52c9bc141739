// Fuzzes the shared-memory queue core as a state machine: the input is a
// sequence of puts (of sizes up to several chunks), gets and task_dones,
// checked against a std::deque model. Any difference, crash or leak of
// chunks once the queue is empty again is a finding. The queue gets 64 chunks
// of address space instead of 16384, so that inputs reach its end, where free
// chunks must be searched for, within seconds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>

#include "mp/detail/queue_core.hpp"
#include "mp/errors.hpp"

namespace {

mp::detail::QueueCore& shared_queue() {
  static mp::detail::QueueCore queue(0, "fuzz queue");  // one mapping, reused
  static const bool limited = (queue.limit_address_space(64), true);
  (void)limited;
  return queue;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mp::detail::QueueCore& queue = shared_queue();
  std::deque<std::string> model;
  std::string out;
  const auto now = mp::detail::Deadline::now();
  for (std::size_t i = 0; i + 2 < size; i += 3) {
    const std::uint8_t op = data[i];
    const std::size_t amount = (std::size_t{data[i + 1]} << 8 | data[i + 2]);
    if (op % 3 != 0) {
      // Mostly small records, sometimes one that spans chunks.
      std::size_t length = op % 16 == 1 ? amount * 256 : amount % 4096;
      std::string record(length, static_cast<char>('a' + op % 26));
      try {
        if (!queue.put(record, now)) std::abort();
      } catch (const mp::OSError&) {
        continue;  // no room left in the address space: the queue is unchanged
      }
      model.push_back(std::move(record));
    } else {
      bool got = queue.get(out, now);
      if (got != !model.empty()) std::abort();
      if (got) {
        if (out != model.front()) std::abort();
        model.pop_front();
      }
    }
    if (queue.qsize() != model.size()) std::abort();
  }
  while (!model.empty()) {
    if (!queue.get(out, now) || out != model.front()) std::abort();
    model.pop_front();
  }
  while (queue.task_done()) {
  }
  if (queue.qsize() != 0 || queue.resident_chunks() > 1) std::abort();
  return 0;
}
