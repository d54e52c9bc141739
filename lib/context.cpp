// lib/context.cpp: get_context, set_start_method, get_start_method and
// get_all_start_methods (Python: multiprocessing.context).
// Invariants:
//  - "fork" is the only start method; every other name is refused with an
//    mp::ValueError before anything changes;
//  - the setting is one process-wide flag, "the start method has been fixed",
//    set by set_start_method and by get_start_method() (as Python's
//    _actual_context); a forked child inherits it, as in Python.
#include "mp/context.hpp"

#include <atomic>
#include <string>

#include "mp/errors.hpp"

namespace mp {
namespace {

std::atomic<bool> start_method_fixed{false};

// The fork context, or the reason `method` is not one, named after `caller`.
void require_fork(std::string_view method, std::string_view caller) {
  if (method == "fork") return;
  std::string call = std::string(caller) + "(\"" + std::string(method) + "\"): ";
  if (method == "spawn")
    throw ValueError(call +
                     "mp starts processes by fork only. Python's spawn runs a fresh interpreter "
                     "that re-imports the main module to find the target by name; a C++ program "
                     "has no such import, and mp's targets (lambdas, functors with their "
                     "arguments) exist only in the parent's memory, which fork copies. Use "
                     "\"fork\" (or no argument); to run a separate program, use "
                     "mp::subprocess::Popen");
  if (method == "forkserver")
    throw ValueError(call +
                     "mp starts processes by fork only and has no fork server: its targets "
                     "live in the parent's memory, which a server forked earlier would not "
                     "have. Use \"fork\" (or no argument)");
  throw ValueError(call + "cannot find context for '" + std::string(method) +
                   "' (mp has only \"fork\")");
}

}  // namespace

Context get_context(std::optional<std::string_view> method) {
  if (method) require_fork(*method, "get_context");
  return Context{};
}

void set_start_method(std::string_view method, bool force) {
  require_fork(method, "set_start_method");
  if (start_method_fixed.exchange(true) && !force)
    throw ProcessError(
        "set_start_method(\"fork\"): the start method has already been set (Python: "
        "RuntimeError 'context has already been set'); pass force = true");
}

std::optional<std::string> get_start_method(bool allow_none) {
  if (allow_none && !start_method_fixed.load()) return std::nullopt;
  start_method_fixed.store(true);
  return "fork";
}

std::string get_start_method() { return *get_start_method(false); }

std::vector<std::string> get_all_start_methods() { return {"fork"}; }

}  // namespace mp
