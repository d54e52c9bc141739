#include "mp/detail/pool_messages.hpp"

#include <cstring>

#include "mp/detail/remote_exception.hpp"
#include "mp/errors.hpp"

namespace mp::detail {
namespace {

template <class T>
void append(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

// Reads fixed-size fields off the front of a record, refusing to run past it.
class Reader {
 public:
  Reader(std::string_view record, const char* what) : rest_(record), what_(what) {}
  template <class T>
  T take() {
    T value;
    std::memcpy(&value, take_bytes(sizeof value).data(), sizeof value);
    return value;
  }
  std::string_view take_bytes(std::size_t size) {
    if (size > rest_.size())
      throw SerializationError(std::string(what_) + ": the record is truncated");
    std::string_view bytes = rest_.substr(0, size);
    rest_.remove_prefix(size);
    return bytes;
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
  const char* what_;
};

}  // namespace

void begin_task(std::string& out) { out.assign(task_header_size, '\0'); }

void seal_task(std::string& record, std::uint64_t seq, std::uintptr_t runner) {
  auto address = static_cast<std::uint64_t>(runner);
  std::memcpy(record.data(), &seq, sizeof seq);
  std::memcpy(record.data() + sizeof seq, &address, sizeof address);
}

TaskRecord decode_task(std::string_view record) {
  Reader reader(record, "Pool: task record");
  TaskRecord task;
  task.seq = reader.take<std::uint64_t>();
  task.runner = static_cast<std::uintptr_t>(reader.take<std::uint64_t>());
  task.payload = reader.rest();
  return task;
}

void begin_result(std::string& out, ResultKind kind, std::uint32_t worker,
                  std::uint64_t generation, std::uint64_t seq) {
  out.clear();
  append(out, static_cast<std::uint8_t>(kind));
  append(out, worker);
  append(out, generation);
  append(out, seq);
  append(out, std::uint64_t{0});  // the run time, stamped once known
}

void stamp_run_time(std::string& result, std::uint64_t run_ns) {
  constexpr std::size_t offset =
      sizeof(std::uint8_t) + sizeof(std::uint32_t) + 2 * sizeof(std::uint64_t);
  std::memcpy(result.data() + offset, &run_ns, sizeof run_ns);
}

ResultRecord decode_result(std::string_view record) {
  Reader reader(record, "Pool: result record");
  ResultRecord result;
  auto kind = reader.take<std::uint8_t>();
  if (kind > static_cast<std::uint8_t>(ResultKind::stop))
    throw SerializationError("Pool: result record of unknown kind " + std::to_string(kind));
  result.kind = static_cast<ResultKind>(kind);
  result.worker = reader.take<std::uint32_t>();
  result.generation = reader.take<std::uint64_t>();
  result.seq = reader.take<std::uint64_t>();
  result.run_ns = reader.take<std::uint64_t>();
  result.payload = reader.rest();
  return result;
}

void describe_current_exception(std::string& result, ResultKind kind, std::uint32_t worker,
                                std::uint64_t generation, std::uint64_t seq) {
  begin_result(result, kind, worker, generation, seq);
  capture_current_exception(result);
}

std::exception_ptr remote_failure(const ResultRecord& message, std::string_view context) {
  try {
    return rethrowable(decode_exception_record(message.payload, "Pool: a worker's failure record"),
                       "Pool: a worker's failure record", context);
  } catch (...) {
    return std::current_exception();
  }
}

const CodeAddressCodec* code_address_codec = nullptr;

}  // namespace mp::detail
