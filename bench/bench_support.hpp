// What every bench program shares: timing a body, and the RESULT line that
// bench/run.py reads ("RESULT <workload> <impl> <value> <unit>").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>

namespace bench {

// Nanoseconds per operation of `body`, which performs `operations` of them.
template <class Body>
double ns_per_op(std::size_t operations, Body&& body) {
  auto start = std::chrono::steady_clock::now();
  body();
  std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / static_cast<double>(operations);
}

// Nanoseconds per call of `call`, called `calls` times.
template <class Call>
double ns_per_call(std::size_t calls, Call&& call) {
  return ns_per_op(calls, [&] {
    for (std::size_t i = 0; i < calls; ++i) call();
  });
}

inline void report(const char* workload, const char* impl, double value, const char* unit = "ns/op") {
  std::printf("RESULT %s %s %.1f %s\n", workload, impl, value, unit);
  std::fflush(stdout);
}

}  // namespace bench
