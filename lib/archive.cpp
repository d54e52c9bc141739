#include "mp/detail/archive.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace mp::detail {

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

void append_type_tag(std::string& out, const char* mangled) {
  std::string_view tag(mangled);
  // Longer names are cut: the tag only has to tell types apart in practice, and
  // the error message demangles what it has.
  if (tag.size() > 255) tag = tag.substr(0, 255);
  out.push_back(static_cast<char>(tag.size()));
  out.append(tag);
}

std::string_view strip_type_tag(std::string_view message, const char* mangled,
                                std::string_view object) {
  std::string_view wanted(mangled);
  if (wanted.size() > 255) wanted = wanted.substr(0, 255);
  if (message.empty() || static_cast<unsigned char>(message[0]) + 1u > message.size())
    throw SerializationError(std::string(object) + ": cannot deserialize " + demangle(mangled) +
                             ": the message is not an mp object (no type tag)");
  std::string_view sent = message.substr(1, static_cast<unsigned char>(message[0]));
  if (sent != wanted)
    throw SerializationError(std::string(object) + ": the message holds " +
                             demangle(std::string(sent).c_str()) + " but " + demangle(mangled) +
                             " was requested");
  return message.substr(1 + sent.size());
}

}  // namespace mp::detail
