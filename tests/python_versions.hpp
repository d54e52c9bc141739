// The Python interpreters interop tests run against: CPython 3.11, 3.12 and
// 3.13, from pyenv (~/.pyenv or $PYENV_ROOT) where it has them, else python3
// on PATH when it is that version. In CI (CI=true) a missing 3.12 or 3.13 is
// a failed check, not a silent skip; elsewhere it is a loud message.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "support.hpp"

namespace test_support {

struct PythonInterpreter {
  std::string path;
  std::string version;  // "3.12"
};

inline std::string python_version_of(const std::string& python) {
  Program program({python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"});
  auto line = program.read_line(30s);
  program.wait(30s);
  return line.value_or("");
}

// meson runs each test with MALLOC_PERTURB_ set, which the Python peers
// would inherit: CPython then fills every large buffer it allocates and
// frees, and one 100 MiB exchange of test_object took 20 times longer
// (380 s instead of 21 s over 3 versions). It checks our allocations, not
// Python's; this process read it at its start, so only children lose it.
inline void prepare_python_children() { ::unsetenv("MALLOC_PERTURB_"); }

inline std::vector<PythonInterpreter> python_interpreters() {
  prepare_python_children();
  const char* home = std::getenv("HOME");
  const char* pyenv_root = std::getenv("PYENV_ROOT");
  std::filesystem::path versions =
      std::filesystem::path(pyenv_root ? pyenv_root : std::string(home ? home : "/root") + "/.pyenv") /
      "versions";
  const std::string path_python_version = python_version_of("python3");
  std::vector<PythonInterpreter> found;
  std::vector<std::string> missing;
  for (std::string wanted : {"3.11", "3.12", "3.13"}) {
    std::string best;  // the newest patch release pyenv has
    int best_patch = -1;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(versions, error)) {
      std::string name = entry.path().filename();
      std::string python = entry.path() / "bin" / "python3";
      if (name.rfind(wanted + ".", 0) != 0 || ::access(python.c_str(), X_OK) != 0) continue;
      int patch = std::atoi(name.c_str() + wanted.size() + 1);
      if (patch > best_patch) {
        best = python;
        best_patch = patch;
      }
    }
    if (best.empty() && path_python_version == wanted) best = "python3";
    if (!best.empty() && python_version_of(best) == wanted)
      found.push_back({best, wanted});
    else
      missing.push_back(wanted);
  }
  std::string absent;
  for (const std::string& version : missing) absent += " " + version;
  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true") {
    INFO("CI=true: Python interop must cover 3.11, 3.12 and 3.13; missing:" << absent);
    CHECK(missing.empty());
  } else if (!missing.empty()) {
    MESSAGE("WARNING: Python interop NOT tested against" << absent << " (not installed)");
  }
  return found;
}

}  // namespace test_support
