// Pool throughput and latency, per task. The peer is Python's Pool (fork
// context), measured by bench/peers/pool.py in the same run.
#include <chrono>
#include <cstdio>
#include <numeric>
#include <vector>

#include "mp/pool.hpp"

namespace {

long square(long x) { return x * x; }

template <class Body>
double ns_per_op(std::size_t operations, Body&& body) {
  auto start = std::chrono::steady_clock::now();
  body();
  std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / static_cast<double>(operations);
}

void report(const char* workload, double value) {
  std::printf("RESULT %s mp %.1f ns/op\n", workload, value);
}

}  // namespace

int main() {
  mp::Pool pool(2);
  std::vector<long> big(200'000);
  std::iota(big.begin(), big.end(), 0L);
  std::vector<long> small(20'000);
  std::iota(small.begin(), small.end(), 0L);

  pool.map(square, small);  // warm the workers and the rings
  report("pool_map_default", ns_per_op(big.size(), [&] { pool.map(square, big); }));
  report("pool_map_chunksize1", ns_per_op(small.size(), [&] { pool.map(square, small, 1); }));
  constexpr std::size_t calls = 5'000;
  report("pool_apply_async_get", ns_per_op(calls, [&] {
    for (std::size_t i = 0; i < calls; ++i) pool.apply_async(square, static_cast<long>(i)).get();
  }));
}
