// mp/detail/own_encoding.hpp: the hook for a type that brings its own byte
// encoding instead of cereal's (mp::Object: a pickle).
#pragma once

#include <string>
#include <string_view>

namespace mp::detail {

// Specialized with static void dump(std::string& out, const T&) (appends)
// and static T load(std::string_view). Queues, connections and cereal
// archives then use that encoding; a Connection message of such a type
// carries no type tag (the encoding describes itself), so that it is
// exactly what a Python peer's send() writes.
template <class T>
struct OwnEncoding {};

template <class T>
concept has_own_encoding = requires(std::string& out, const T& value, std::string_view bytes) {
  OwnEncoding<T>::dump(out, value);
  { OwnEncoding<T>::load(bytes) };
};

}  // namespace mp::detail
