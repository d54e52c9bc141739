// mp/detail/archive.hpp: cereal archives that write straight into a
// std::string and read from a byte span, without iostreams.
//
// The input archive is bounded: a container's element count is believed only
// if the bytes that remain can hold that many elements, each at least the
// fewest bytes its type can be encoded in (known at compile time), and this is
// checked before anything is allocated. So a corrupt or hostile message makes
// the reader allocate no more than an honest message of the same length could.
// Any decoding failure becomes mp::SerializationError.
#pragma once

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/bitset.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/forward_list.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/valarray.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

#include "mp/detail/own_encoding.hpp"
#include "mp/errors.hpp"

namespace mp::detail {

class OutputArchive : public cereal::OutputArchive<OutputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit OutputArchive(std::string& out)
      : cereal::OutputArchive<OutputArchive, cereal::AllowEmptyClassElision>(this), out_(out) {}
  void saveBinary(const void* data, std::size_t size) {
    out_.append(static_cast<const char*>(data), size);
  }

 private:
  std::string& out_;
};

class InputArchive : public cereal::InputArchive<InputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit InputArchive(std::string_view in)
      : cereal::InputArchive<InputArchive, cereal::AllowEmptyClassElision>(this), in_(in) {}
  void loadBinary(void* data, std::size_t size) {
    if (size == 0) return;  // an empty vector's data() may be null
    if (size > in_.size())
      throw SerializationError("message is truncated: " + std::to_string(size) + " bytes wanted, " +
                               std::to_string(in_.size()) + " left");
    std::memcpy(data, in_.data(), size);
    in_.remove_prefix(size);
  }
  std::size_t remaining() const noexcept { return in_.size(); }

  // The element count a container's size tag at the current position
  // claims, without consuming it; 0 if fewer bytes than a tag remain (the
  // load then fails on its own as truncated).
  std::uint64_t peek_count() const noexcept {
    cereal::size_type count = 0;
    if (in_.size() >= sizeof count) std::memcpy(&count, in_.data(), sizeof count);
    return count;
  }

 private:
  std::string_view in_;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const T& t) {
  ar.saveBinary(std::addressof(t), sizeof(t));
}
template <class T>
std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>> CEREAL_LOAD_FUNCTION_NAME(
    InputArchive& ar, T& t) {
  ar.loadBinary(std::addressof(t), sizeof(t));
}
// A bool must be 0 or 1: any other byte is not a bool, and loading it as one
// would be undefined behaviour.
inline void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, bool& b) {
  unsigned char byte = 0;
  ar.loadBinary(&byte, 1);
  if (byte > 1) throw SerializationError("a bool holds " + std::to_string(byte));
  b = byte == 1;
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const cereal::SizeTag<T>& t) {
  ar(t.size);
}
// A size tag read outside the containers below (a user's own load code, the
// pool's chunks) knows nothing of its elements; each costs at least one byte,
// so a count larger than what is left is a lie: refuse it before anyone
// resizes. (So a container of empty types that serialize to nothing cannot be
// received: give such a type one byte, as detail::NoValue does.)
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, cereal::SizeTag<T>& t) {
  ar(t.size);
  if (t.size > ar.remaining())
    throw SerializationError("message claims " + std::to_string(t.size) +
                             " elements but only " + std::to_string(ar.remaining()) +
                             " bytes are left");
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const cereal::BinaryData<T>& bd) {
  ar.saveBinary(bd.data, static_cast<std::size_t>(bd.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, cereal::BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}

// A type with its own encoding, inside a cereal-serialized value: its bytes
// as a string.
template <class T>
  requires has_own_encoding<T>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const T& value) {
  std::string bytes;
  OwnEncoding<T>::dump(bytes, value);
  ar(bytes);
}
template <class T>
  requires has_own_encoding<T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, T& value) {
  std::string bytes;
  ar(bytes);
  value = OwnEncoding<T>::load(bytes);
}

// The readable name of a type, for error messages: demangled, with the
// standard library's inline namespaces and default arguments left out
// ("std::map<std::string, std::vector<double>>", not
// "std::map<std::__cxx11::basic_string<char, ...>, ...>").
std::string demangle(const char* mangled);
// The same for a name that is already demangled.
std::string readable_type_name(std::string_view demangled);
template <class T>
std::string type_name() {
  return demangle(typeid(T).name());
}

// The containers that cereal writes as a size tag (the element count) followed
// by the elements.
template <class T>
inline constexpr bool is_counted_container_v = false;
template <class T, class A>
inline constexpr bool is_counted_container_v<std::vector<T, A>> = true;
template <class T, class A>
inline constexpr bool is_counted_container_v<std::deque<T, A>> = true;
template <class T, class A>
inline constexpr bool is_counted_container_v<std::list<T, A>> = true;
template <class T, class A>
inline constexpr bool is_counted_container_v<std::forward_list<T, A>> = true;
template <class C, class Tr, class A>
inline constexpr bool is_counted_container_v<std::basic_string<C, Tr, A>> = true;
template <class T>
inline constexpr bool is_counted_container_v<std::valarray<T>> = true;
template <class K, class C, class A>
inline constexpr bool is_counted_container_v<std::set<K, C, A>> = true;
template <class K, class C, class A>
inline constexpr bool is_counted_container_v<std::multiset<K, C, A>> = true;
template <class K, class V, class C, class A>
inline constexpr bool is_counted_container_v<std::map<K, V, C, A>> = true;
template <class K, class V, class C, class A>
inline constexpr bool is_counted_container_v<std::multimap<K, V, C, A>> = true;
template <class K, class H, class E, class A>
inline constexpr bool is_counted_container_v<std::unordered_set<K, H, E, A>> = true;
template <class K, class H, class E, class A>
inline constexpr bool is_counted_container_v<std::unordered_multiset<K, H, E, A>> = true;
template <class K, class V, class H, class E, class A>
inline constexpr bool is_counted_container_v<std::unordered_map<K, V, H, E, A>> = true;
template <class K, class V, class H, class E, class A>
inline constexpr bool is_counted_container_v<std::unordered_multimap<K, V, H, E, A>> = true;

// The fewest bytes a value of T takes in this archive's encoding. It must
// never overestimate (an honest message would be refused), so a type whose
// encoding is not known here counts as 0: a user's empty class is elided and
// takes nothing.
template <class T>
struct MinEncodedSize {
  static constexpr std::size_t value = [] {
    if constexpr (std::is_arithmetic_v<T> || std::is_enum_v<T>)
      return sizeof(T);
    else if constexpr (is_counted_container_v<T>)
      return sizeof(cereal::size_type);  // the count, even of an empty one
    else
      return std::size_t{0};
  }();
};
template <class T>
inline constexpr std::size_t min_encoded_size_v = MinEncodedSize<std::remove_cv_t<T>>::value;

template <class T, std::size_t N>
struct MinEncodedSize<std::array<T, N>> {
  static constexpr std::size_t value = N * min_encoded_size_v<T>;
};
template <class A, class B>
struct MinEncodedSize<std::pair<A, B>> {
  static constexpr std::size_t value = min_encoded_size_v<A> + min_encoded_size_v<B>;
};
template <class... Ts>
struct MinEncodedSize<std::tuple<Ts...>> {
  static constexpr std::size_t value = (std::size_t{0} + ... + min_encoded_size_v<Ts>);
};
template <class T>
struct MinEncodedSize<std::optional<T>> {
  static constexpr std::size_t value = 1;  // the nullopt flag
};
template <class... Ts>
struct MinEncodedSize<std::variant<Ts...>> {
  static constexpr std::size_t value = sizeof(std::int32_t) + std::min({min_encoded_size_v<Ts>...});
};
template <class T>
struct MinEncodedSize<std::complex<T>> {
  static constexpr std::size_t value = 2 * min_encoded_size_v<T>;
};
template <class Rep, class Period>
struct MinEncodedSize<std::chrono::duration<Rep, Period>> {
  static constexpr std::size_t value = min_encoded_size_v<Rep>;
};
template <class Clock, class Duration>
struct MinEncodedSize<std::chrono::time_point<Clock, Duration>> {
  static constexpr std::size_t value = min_encoded_size_v<Duration>;
};

// Throws SerializationError unless `count` elements of Container, each at least
// its element's minimum encoded size (and at least one byte, as for any size
// tag), fit in `bytes_left`.
[[noreturn]] void refuse_element_count(const char* mangled_container, std::uint64_t count,
                                      std::size_t element_size, std::size_t bytes_left);
template <class Container>
void check_element_count(std::uint64_t count, std::size_t bytes_left) {
  constexpr std::size_t element_size =
      std::max<std::size_t>(1, min_encoded_size_v<typename Container::value_type>);
  if (count > bytes_left / element_size) [[unlikely]]  // the refusal is out of line
    refuse_element_count(typeid(Container).name(), count, element_size, bytes_left);
}

// Reads the size tag of a Container written by cereal (or in its format) and
// returns the count, refused as above if the rest cannot hold it.
template <class Container>
std::size_t load_element_count(InputArchive& ar) {
  cereal::size_type count = 0;
  ar(cereal::make_size_tag(count));
  check_element_count<Container>(count, ar.remaining());
  return static_cast<std::size_t>(count);
}

// Each counted container is loaded by cereal's own code once its count has
// passed the check above. These overloads are more specialized than cereal's
// (they name the archive), so overload resolution picks them for this archive.
template <class Container>
void load_counted(InputArchive& ar, Container& container) {
  static_assert(is_counted_container_v<Container>);
  if (ar.remaining() >= sizeof(cereal::size_type))
    check_element_count<Container>(ar.peek_count(), ar.remaining() - sizeof(cereal::size_type));
  cereal::CEREAL_LOAD_FUNCTION_NAME(ar, container);
}
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::vector<T, A>& c) { load_counted(ar, c); }
template <class A>  // cereal has its own overload for vector<bool>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::vector<bool, A>& c) { load_counted(ar, c); }
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::deque<T, A>& c) { load_counted(ar, c); }
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::list<T, A>& c) { load_counted(ar, c); }
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::forward_list<T, A>& c) { load_counted(ar, c); }
template <class C, class Tr, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::basic_string<C, Tr, A>& c) { load_counted(ar, c); }
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::valarray<T>& c) { load_counted(ar, c); }
template <class K, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::set<K, C, A>& c) { load_counted(ar, c); }
template <class K, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::multiset<K, C, A>& c) { load_counted(ar, c); }
template <class K, class V, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::map<K, V, C, A>& c) { load_counted(ar, c); }
template <class K, class V, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::multimap<K, V, C, A>& c) { load_counted(ar, c); }
template <class K, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::unordered_set<K, H, E, A>& c) { load_counted(ar, c); }
template <class K, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::unordered_multiset<K, H, E, A>& c) { load_counted(ar, c); }
template <class K, class V, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::unordered_map<K, V, H, E, A>& c) { load_counted(ar, c); }
template <class K, class V, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::unordered_multimap<K, V, H, E, A>& c) { load_counted(ar, c); }

// Numbers and strings, the commonest items, are encoded and decoded without
// building cereal's archives, whose hash maps cost more to create and destroy
// than the item itself (a queue of ints spent a quarter of its time there).
// The bytes are exactly cereal's (a number's own bytes; a string's 8-byte
// length, then its characters), so either side may take either path.
template <class T>
inline constexpr bool has_plain_encoding = std::is_arithmetic_v<T> || std::is_same_v<T, std::string>;

// The plain encoding of a value where it lies: head() then body(), for a
// sender that copies them straight to their destination instead of building
// the message first. Valid while the value is.
template <class T>
class PlainEncoding {
  static_assert(has_plain_encoding<T>);

 public:
  explicit PlainEncoding(const T& value) : value_(value) {
    if constexpr (std::is_same_v<T, std::string>) length_ = value.size();
  }
  std::string_view head() const noexcept {
    if constexpr (std::is_same_v<T, std::string>)
      return {reinterpret_cast<const char*>(&length_), sizeof length_};
    else
      return {};
  }
  std::string_view body() const noexcept {
    if constexpr (std::is_same_v<T, std::string>)
      return value_;
    else
      return {reinterpret_cast<const char*>(std::addressof(value_)), sizeof value_};
  }

 private:
  const T& value_;
  cereal::size_type length_ = 0;  // a string's head
};

// Appends the serialized value to `out`. Throws SerializationError naming
// `object` if the value's own save code throws; `out` is then restored.
template <class T>
void dump_into(std::string& out, const T& value, std::string_view object) {
  const std::size_t mark = out.size();
  try {
    if constexpr (has_own_encoding<T>) {
      OwnEncoding<T>::dump(out, value);
    } else if constexpr (has_plain_encoding<T>) {
      PlainEncoding<T> encoding(value);
      out.append(encoding.head());
      out.append(encoding.body());
    } else {
      OutputArchive archive(out);
      archive(value);
    }
  } catch (const std::exception& e) {
    out.resize(mark);
    throw SerializationError(std::string(object) + ": cannot serialize " + type_name<T>() + ": " +
                             e.what());
  }
}

template <class T>
std::string dumps(const T& value, std::string_view object) {
  std::string out;
  dump_into(out, value, object);
  return out;
}

// Decodes a whole message as T. Trailing bytes or any decoding failure throw
// SerializationError naming `object` and T.
template <class T>
T loads(std::string_view bytes, std::string_view object) {
  T value{};
  try {
    // The plain decodings take only well-formed bytes; anything else goes the
    // cereal way, which names what is wrong.
    if constexpr (has_own_encoding<T>) {
      return OwnEncoding<T>::load(bytes);
    } else if constexpr (std::is_same_v<T, bool>) {
      if (bytes.size() == 1 && static_cast<unsigned char>(bytes[0]) <= 1) {
        value = bytes[0] == 1;
        return value;
      }
    } else if constexpr (std::is_arithmetic_v<T>) {
      if (bytes.size() == sizeof value) {
        std::memcpy(&value, bytes.data(), sizeof value);
        return value;
      }
    } else if constexpr (std::is_same_v<T, std::string>) {
      cereal::size_type length;
      if (bytes.size() >= sizeof length) {
        std::memcpy(&length, bytes.data(), sizeof length);
        if (length == bytes.size() - sizeof length) {
          value.assign(bytes.substr(sizeof length));
          return value;
        }
      }
    }
    InputArchive archive(bytes);
    archive(value);
    if (archive.remaining() != 0)
      throw SerializationError(std::to_string(archive.remaining()) + " bytes left over");
  } catch (const std::exception& e) {
    throw SerializationError(std::string(object) + ": cannot deserialize " + type_name<T>() +
                             ": " + e.what());
  }
  return value;
}

// Tagged messages carry the sender's type, so that recv<int>() of a message
// holding a std::string names both types instead of decoding garbage. Layout:
// one byte n, n bytes of typeid(T).name() (mangled, short), then the payload.
void append_type_tag(std::string& out, const char* mangled);
// Checks the tag against `mangled` and returns the payload; throws
// SerializationError naming `object`, the sent type and the requested type.
std::string_view strip_type_tag(std::string_view message, const char* mangled,
                                std::string_view object);

template <class T>
std::string dumps_tagged(const T& value, std::string_view object) {
  std::string out;
  if constexpr (!has_own_encoding<T>) append_type_tag(out, typeid(T).name());
  dump_into(out, value, object);
  return out;
}

template <class T>
T loads_tagged(std::string_view message, std::string_view object) {
  if constexpr (has_own_encoding<T>)
    return loads<T>(message, object);
  else
    return loads<T>(strip_type_tag(message, typeid(T).name(), object), object);
}

}  // namespace mp::detail

CEREAL_REGISTER_ARCHIVE(mp::detail::OutputArchive)
CEREAL_REGISTER_ARCHIVE(mp::detail::InputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(mp::detail::InputArchive, mp::detail::OutputArchive)
