// mp/detail/archive.hpp: cereal archives that write straight into a
// std::string and read from a byte span, without iostreams.
//
// The input archive is bounded: every length prefix (cereal's SizeTag) is
// checked against the bytes that remain before anything is allocated, so a
// corrupt or hostile message cannot make us allocate what it asks for. Any
// decoding failure becomes mp::SerializationError.
#pragma once

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/bitset.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

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
// Every element of every container this library sends costs at least one byte,
// so a count larger than what is left is a lie: refuse it before cereal resizes.
// (So a container of empty types that serialize to nothing cannot be received:
// give such a type one byte, as detail::NoValue does.)
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

// The demangled name of a type, for error messages ("std::string" style names
// come out as the compiler spells them).
std::string demangle(const char* mangled);
template <class T>
std::string type_name() {
  return demangle(typeid(T).name());
}

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
    if constexpr (has_plain_encoding<T>) {
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
    if constexpr (std::is_same_v<T, bool>) {
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
  append_type_tag(out, typeid(T).name());
  dump_into(out, value, object);
  return out;
}

template <class T>
T loads_tagged(std::string_view message, std::string_view object) {
  return loads<T>(strip_type_tag(message, typeid(T).name(), object), object);
}

}  // namespace mp::detail

CEREAL_REGISTER_ARCHIVE(mp::detail::OutputArchive)
CEREAL_REGISTER_ARCHIVE(mp::detail::InputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(mp::detail::InputArchive, mp::detail::OutputArchive)
