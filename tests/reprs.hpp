// The Python side of the repr tests: the lines tests/helpers/reprs.py prints
// for one section under a real interpreter, and the normalisation it applies
// (pids to N, addresses to ADDR), for mp's reprs of the same states.
#pragma once

#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "support.hpp"

namespace test_support {

// Each `prefix` followed by one or more characters for which `kept` holds
// becomes `replacement`. (Not std::regex: GCC 12 warns inside its regex
// automaton with -Werror=maybe-uninitialized in the sanitized builds.)
inline std::string replace_runs(const std::string& text, std::string_view prefix, bool (*kept)(char),
                                std::string_view replacement) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t end = i + prefix.size();
    if (text.compare(i, prefix.size(), prefix) == 0 && end < text.size() && kept(text[end])) {
      while (end < text.size() && kept(text[end])) ++end;
      out += replacement;
      i = end;
    } else {
      out += text[i++];
    }
  }
  return out;
}

inline std::string normalized_repr(const std::string& repr) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  auto hex_digit = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  std::string pids = replace_runs(replace_runs(repr, "pid=", digit, "pid=N"), "parent=", digit, "parent=N");
  return replace_runs(pids, "0x", hex_digit, "ADDR");
}

inline std::vector<std::string> python_reprs(const std::string& python, const std::string& section) {
  Program program({python, MP_SOURCE_ROOT "/tests/helpers/reprs.py", section});
  CHECK(program.wait(60s) == 0);
  INFO(program.err());
  std::vector<std::string> lines;
  std::istringstream out(program.out());
  for (std::string line; std::getline(out, line);) lines.push_back(line);
  return lines;
}

}  // namespace test_support
