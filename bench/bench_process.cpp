// Process start+join latency: mp::Process running a no-op target, beside the
// raw system-call floor (fork, _exit in the child, waitpid), alternating round
// by round in one run. The Python peer is bench/peers/process_peer.py.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "mp/process.hpp"

namespace {

constexpr int rounds = 5, operations = 300;

template <class Body>
double ns_per_op(int count, Body&& body) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < count; ++i) body();
  std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / count;
}

void report(const char* impl, double value) {
  std::printf("RESULT process_start_join %s %.1f ns/op\n", impl, value);
  std::fflush(stdout);
}

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
  ns_per_op(20, mp_start_join);  // warm up: first forks and page faults
  ns_per_op(20, raw_start_join);
  // Every round's value is printed; bench/run.py takes the median.
  for (int round = 0; round < rounds; ++round) {
    report("mp", ns_per_op(operations, mp_start_join));
    report("raw", ns_per_op(operations, raw_start_join));
  }
}
