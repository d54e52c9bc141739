// Process start+join latency: mp::Process running a no-op target, beside the
// raw system-call floor (fork, _exit in the child, waitpid), alternating round
// by round in one run. The Python peer is bench/peers/process_peer.py.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "bench_support.hpp"
#include "mp/process.hpp"

namespace {

using bench::ns_per_call;
using bench::report;

constexpr int rounds = 5, operations = 300;

void mp_start_join() {
  mp::Process process([] {});
  process.start();
  process.join();
}

void raw_start_join() {
  pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) ::_exit(0);
  int status;
  while (::waitpid(pid, &status, 0) == -1) {
  }
}

}  // namespace

int main() {
  ns_per_call(20, mp_start_join);  // warm up: first forks and page faults
  ns_per_call(20, raw_start_join);
  // Every round's value is printed; bench/run.py takes the median.
  for (int round = 0; round < rounds; ++round) {
    report("process_start_join", "mp", ns_per_call(operations, mp_start_join));
    report("process_start_join", "raw", ns_per_call(operations, raw_start_join));
  }
}
