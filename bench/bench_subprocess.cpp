// Latency of starting and reaping a command: mp::subprocess::run beside the
// raw system-call floor (posix_spawn + waitpid of the same resolved path) and
// Boost.Process (boost::process::system, given the resolved path too, since its
// search_path needs the compiled Boost.Filesystem), alternating in one run. The Python peer is bench/peers/subprocess.py.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <boost/process/system.hpp>

#include "bench_support.hpp"
#include "mp/subprocess.hpp"

extern char** environ;

namespace {

using bench::ns_per_call;
using bench::report;

double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

// The raw floor: what any implementation must do at least, with the PATH
// search already done.
void raw_spawn_wait(const char* path, char* const argv[]) {
  pid_t pid;
  if (posix_spawn(&pid, path, nullptr, nullptr, argv, environ) != 0) std::abort();
  int status;
  while (waitpid(pid, &status, 0) == -1) {
  }
}

}  // namespace

int main() {
  namespace sp = mp::subprocess;
  std::string resolved = ::access("/usr/bin/true", X_OK) == 0 ? "/usr/bin/true" : "/bin/true";
  char* true_argv[] = {resolved.data(), nullptr};
  sp::RunOptions capture;
  capture.capture_output = true;

  // Alternate the implementations round by round so that drift in the
  // machine's load hits all of them alike; report each one's median round.
  constexpr int rounds = 5, operations = 200;
  std::vector<double> mp_true, raw_true, boost_true, mp_capture;
  for (int round = 0; round < rounds; ++round) {
    mp_true.push_back(ns_per_call(operations, [] { sp::run({"true"}); }));
    raw_true.push_back(ns_per_call(operations, [&] { raw_spawn_wait(resolved.c_str(), true_argv); }));
    boost_true.push_back(
        ns_per_call(operations, [&] { boost::process::system(resolved); }));
    mp_capture.push_back(ns_per_call(operations, [&] { sp::run({"echo", "hello"}, capture); }));
  }
  report("run_true", "mp", median(mp_true));
  report("run_true", "raw", median(raw_true));
  report("run_true", "boost", median(boost_true));
  report("run_capture_echo", "mp", median(mp_capture));
}
