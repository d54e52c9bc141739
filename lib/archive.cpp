// lib/archive.cpp: the parts of the cereal archives (detail/archive.hpp) that
// are not templates: readable type names for error messages, and the type tag
// that Connection messages carry.
//
// Invariants: a type name is only ever made more readable, never wrong: a
// template argument is left out only when it equals the standard default for
// the arguments before it, and a name the reader cannot parse is returned as
// demangled. A tag is at most 255 bytes of the mangled name.
#include "mp/detail/archive.hpp"

#include <cxxabi.h>

#include <array>
#include <cstdlib>
#include <memory>
#include <vector>

namespace mp::detail {

namespace {

// Standard templates whose trailing arguments have defaults, each given as a
// pattern over the earlier arguments ($0, $1); empty for an argument without one.
struct DefaultArguments {
  std::string_view name;
  std::array<std::string_view, 5> defaults;
};
constexpr DefaultArguments default_arguments[] = {
    {"std::vector", {"", "std::allocator<$0>"}},
    {"std::deque", {"", "std::allocator<$0>"}},
    {"std::list", {"", "std::allocator<$0>"}},
    {"std::forward_list", {"", "std::allocator<$0>"}},
    {"std::set", {"", "std::less<$0>", "std::allocator<$0>"}},
    {"std::multiset", {"", "std::less<$0>", "std::allocator<$0>"}},
    {"std::map", {"", "", "std::less<$0>", "std::allocator<std::pair<$0 const, $1>>"}},
    {"std::multimap", {"", "", "std::less<$0>", "std::allocator<std::pair<$0 const, $1>>"}},
    {"std::unordered_set", {"", "std::hash<$0>", "std::equal_to<$0>", "std::allocator<$0>"}},
    {"std::unordered_multiset", {"", "std::hash<$0>", "std::equal_to<$0>", "std::allocator<$0>"}},
    {"std::unordered_map",
     {"", "", "std::hash<$0>", "std::equal_to<$0>", "std::allocator<std::pair<$0 const, $1>>"}},
    {"std::unordered_multimap",
     {"", "", "std::hash<$0>", "std::equal_to<$0>", "std::allocator<std::pair<$0 const, $1>>"}},
    {"std::basic_string", {"", "std::char_traits<$0>", "std::allocator<$0>"}},
    {"std::basic_string_view", {"", "std::char_traits<$0>"}},
    {"std::unique_ptr", {"", "std::default_delete<$0>"}},
    {"std::queue", {"", "std::deque<$0>"}},
    {"std::stack", {"", "std::deque<$0>"}},
    {"std::priority_queue", {"", "std::vector<$0>", "std::less<$0>"}},
};

// The names the standard library's typedefs give, once defaults are left out.
constexpr std::pair<std::string_view, std::string_view> typedef_names[] = {
    {"std::basic_string<char>", "std::string"},
    {"std::basic_string<wchar_t>", "std::wstring"},
    {"std::basic_string<char8_t>", "std::u8string"},
    {"std::basic_string<char16_t>", "std::u16string"},
    {"std::basic_string<char32_t>", "std::u32string"},
    {"std::basic_string_view<char>", "std::string_view"},
    {"std::basic_string_view<wchar_t>", "std::wstring_view"},
    {"std::basic_string_view<char8_t>", "std::u8string_view"},
    {"std::basic_string_view<char16_t>", "std::u16string_view"},
    {"std::basic_string_view<char32_t>", "std::u32string_view"},
};

std::string expand(std::string_view pattern, const std::vector<std::string>& arguments) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '$' && i + 1 < pattern.size()) {
      out += arguments[static_cast<std::size_t>(pattern[++i] - '0')];
    } else {
      out += pattern[i];
    }
  }
  return out;
}

// `name<arguments>` with the trailing default arguments left out.
std::string instantiation(const std::string& name, std::vector<std::string> arguments) {
  for (const auto& entry : default_arguments) {
    if (entry.name != name) continue;
    while (arguments.size() > 1 && arguments.size() <= entry.defaults.size()) {
      std::string_view pattern = entry.defaults[arguments.size() - 1];
      if (pattern.empty() || arguments.back() != expand(pattern, arguments)) break;
      arguments.pop_back();
    }
  }
  std::string out = name + '<';
  for (std::size_t i = 0; i < arguments.size(); ++i) out += (i ? ", " : "") + arguments[i];
  out += '>';
  for (const auto& [spelled, typedef_name] : typedef_names)
    if (out == spelled) return std::string(typedef_name);
  return out;
}

void trim_trailing_spaces(std::string& text) {
  while (!text.empty() && text.back() == ' ') text.pop_back();
}

// Reads one type (or template argument) from `in` up to a ',' or '>' at its
// own level (a function type's parameters are inside it), rewriting each
// template instantiation in it. Returns false if the brackets do not match.
bool read_type(std::string_view& in, std::string& out) {
  int parentheses = 0;
  while (!in.empty() && (parentheses > 0 || (in.front() != ',' && in.front() != '>'))) {
    char c = in.front();
    in.remove_prefix(1);
    if (c != '<') {
      parentheses += c == '(' ? 1 : c == ')' ? -1 : 0;
      out += c;
      continue;
    }
    std::vector<std::string> arguments;
    for (;;) {
      while (!in.empty() && in.front() == ' ') in.remove_prefix(1);
      std::string argument;
      if (!read_type(in, argument) || in.empty()) return false;
      trim_trailing_spaces(argument);
      arguments.push_back(std::move(argument));
      char separator = in.front();
      in.remove_prefix(1);
      if (separator == '>') break;
    }
    trim_trailing_spaces(out);
    // The template's name is the qualified identifier just before the '<'.
    auto name_start = out.find_last_not_of(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
    name_start = name_start == std::string::npos ? 0 : name_start + 1;
    out.replace(name_start, std::string::npos,
                instantiation(out.substr(name_start), std::move(arguments)));
  }
  return true;
}

}  // namespace

std::string readable_type_name(std::string_view demangled) {
  // Inline namespaces of libstdc++ (std::__cxx11) and libc++ (std::__1).
  std::string plain(demangled);
  for (std::string_view inline_namespace : {"__cxx11::", "__1::"})
    for (auto at = plain.find(inline_namespace); at != std::string::npos;
         at = plain.find(inline_namespace, at))
      plain.erase(at, inline_namespace.size());
  std::string_view in(plain);
  std::string out;
  if (!read_type(in, out) || !in.empty()) return plain;
  return out;
}

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  return status == 0 && name ? readable_type_name(name.get()) : std::string(mangled);
}

void refuse_element_count(const char* mangled_container, std::uint64_t count,
                          std::size_t element_size, std::size_t bytes_left) {
  throw SerializationError(demangle(mangled_container) + " claims " + std::to_string(count) +
                           " elements of at least " + std::to_string(element_size) +
                           (element_size == 1 ? " byte" : " bytes") + " each, but only " +
                           std::to_string(bytes_left) + " bytes are left");
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
  const bool short_message = message.empty() || static_cast<unsigned char>(message[0]) + 1u > message.size();
  std::string_view sent = short_message ? "" : message.substr(1, static_cast<unsigned char>(message[0]));
  if (!short_message && sent == wanted) return message.substr(1 + sent.size());
  // A pickle starts with PROTO (0x80) and its version.
  if (message.size() > 1 && message[0] == '\x80' && message[1] <= 5)
    throw SerializationError(std::string(object) +
                             ": the message holds a pickle (a Python peer's send()): receive it as "
                             "mp::Object, but " + demangle(mangled) + " was requested");
  if (short_message)
    throw SerializationError(std::string(object) + ": cannot deserialize " + demangle(mangled) +
                             ": the message is not an mp object (no type tag)");
  throw SerializationError(std::string(object) + ": the message holds " +
                           demangle(std::string(sent).c_str()) + " but " + demangle(mangled) +
                           " was requested");
}

}  // namespace mp::detail
