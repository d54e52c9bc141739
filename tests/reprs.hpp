// The Python side of the repr tests: the lines tests/helpers/reprs.py prints
// for one section under a real interpreter, and the normalisation it applies
// (pids to N, addresses to ADDR), for mp's reprs of the same states.
#pragma once

#include <doctest/doctest.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

namespace test_support {

inline std::string normalized_repr(const std::string& repr) {
  static const std::regex pids(R"((pid|parent)=\d+)"), addresses("0x[0-9a-f]+");
  return std::regex_replace(std::regex_replace(repr, pids, "$1=N"), addresses, "ADDR");
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
