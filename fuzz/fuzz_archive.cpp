// Fuzzes the decoding of pool task and result records (and the exception
// record a failed result carries, rebuilt as its exception), and cereal decoding
// through the library's bounded archive into the standard types users send.
// Decoding must succeed or throw mp::SerializationError: no crash, no
// allocation the input merely claims.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <vector>

#include "mp/detail/archive.hpp"
#include "mp/detail/pool_messages.hpp"
#include "mp/detail/pool_task.hpp"
#include "mp/detail/remote_exception.hpp"

namespace {

template <class Decode>
void decode_record(Decode decode, std::string_view bytes) {
  try {
    (void)decode(bytes);
  } catch (const mp::SerializationError&) {
  }
}

// A result record, then its payload as a worker's exception record.
mp::detail::ResultRecord decode_result_and_exception(std::string_view bytes) {
  mp::detail::ResultRecord result = mp::detail::decode_result(bytes);
  try {
    (void)mp::detail::rethrowable(mp::detail::decode_exception_record(result.payload, "fuzz"),
                                  "fuzz");
  } catch (const mp::SerializationError&) {
  }
  return result;
}

template <class T>
void decode(std::string_view bytes) {
  try {
    (void)mp::detail::loads<T>(bytes, "fuzz");
  } catch (const mp::SerializationError&) {
  }
  try {
    (void)mp::detail::loads_tagged<T>(bytes, "fuzz");
  } catch (const mp::SerializationError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0: decode_record(mp::detail::decode_task, bytes); break;
    case 1: decode_record(decode_result_and_exception, bytes); break;
    case 2: decode<std::vector<std::string>>(bytes); break;
    case 3: decode<std::map<std::string, std::vector<int>>>(bytes); break;
    case 4: decode<std::variant<std::vector<std::string>, std::vector<int>, std::string>>(bytes); break;
    case 5: decode<std::tuple<int, std::optional<std::string>, double>>(bytes); break;
    case 6: decode<std::vector<std::vector<std::uint64_t>>>(bytes); break;
    default: decode<std::vector<mp::detail::NoValue>>(bytes); break;
  }
  return 0;
}
