// Fuzzes container sizes in the bounded input archive: arbitrary bytes are
// decoded as container-heavy types (nested vectors, maps, sets, lists, arrays
// of big elements, strings, optionals, variants, tuples), and every byte the
// decoding allocates is counted by the replaced global operator new below.
// A message of n bytes must cost at most kBytesPerInputByte * n + kFixedBytes
// allocated bytes, whether it decodes or is refused with SerializationError:
// an element count is believed only if the rest can hold that many elements,
// so what is allocated is what an honest message of that length could cost.
//
// kBytesPerInputByte is the largest ratio, among the types below, of what an
// element occupies in memory to the fewest bytes it is encoded in (a list
// node of one byte is 24 bytes; an empty std::optional<std::string> in a
// vector is 40 bytes for a one-byte flag). kFixedBytes covers the error
// message and its type names.
#include <array>
#include <chrono>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <forward_list>
#include <list>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <valarray>
#include <variant>
#include <vector>

#include "mp/detail/archive.hpp"

namespace {

constexpr std::size_t kBytesPerInputByte = 64;
constexpr std::size_t kFixedBytes = 64 * 1024;

// Bytes requested from operator new while `counting` is set.
bool counting = false;
std::size_t allocated = 0;

void* allocate(std::size_t size, std::size_t alignment) {
  if (counting) allocated += size;
  void* p = alignment <= alignof(std::max_align_t)
                ? std::malloc(size ? size : 1)
                : std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
  return p;
}

template <class T>
void decode(std::string_view bytes) {
  try {
    (void)mp::detail::loads<T>(bytes, "fuzz");
  } catch (const mp::SerializationError&) {
  }
}

using MiB = std::array<char, 1 << 20>;
using Decoder = void (*)(std::string_view);
constexpr Decoder decoders[] = {
    &decode<std::vector<MiB>>,
    &decode<std::vector<std::vector<std::vector<double>>>>,
    &decode<std::map<std::string, std::vector<double>>>,
    &decode<std::vector<std::string>>,
    &decode<std::list<std::uint8_t>>,
    &decode<std::unordered_multiset<std::uint16_t>>,
    &decode<std::deque<std::array<std::uint32_t, 1000>>>,
    &decode<std::set<std::vector<std::array<char, 4096>>>>,
    &decode<std::tuple<std::string, std::vector<std::pair<int, std::string>>,
                       std::optional<std::vector<int>>>>,
    &decode<std::variant<std::vector<std::string>, std::map<int, std::string>,
                         std::array<double, 64>, std::monostate>>,
    &decode<std::vector<std::optional<std::string>>>,
    &decode<std::vector<std::variant<int, std::string, std::vector<char>>>>,
    &decode<std::vector<bool>>,
    &decode<std::unordered_map<std::string, std::array<char, 256>>>,
    &decode<std::vector<std::u16string>>,
    &decode<std::valarray<double>>,
    &decode<std::forward_list<std::int16_t>>,
    &decode<std::vector<std::pair<std::chrono::milliseconds, std::complex<float>>>>,
    &decode<std::multimap<std::int8_t, std::optional<std::array<char, 16>>>>,
    &decode<std::vector<std::tuple<MiB, std::string>>>,
};

}  // namespace

// These are the program's allocation functions: what operator new returns
// comes from malloc, so freeing it is right (GCC cannot know that).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
  if (void* p = allocate(size, 0)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, std::align_val_t alignment) {
  if (void* p = allocate(size, static_cast<std::size_t>(alignment))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return operator new(size, alignment);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, 0); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, 0); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  constexpr std::size_t kinds = sizeof decoders / sizeof decoders[0];
  const std::size_t kind = data[0] % kinds;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  allocated = 0;
  counting = true;
  decoders[kind](bytes);
  counting = false;
  const std::size_t limit = kBytesPerInputByte * bytes.size() + kFixedBytes;
  if (allocated > limit) {
    std::fprintf(stderr, "decoding %zu bytes as type %zu allocated %zu bytes (limit %zu)\n",
                 bytes.size(), kind, allocated, limit);
    std::abort();
  }
  return 0;
}
