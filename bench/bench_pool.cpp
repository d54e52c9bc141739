// Pool throughput and latency, per task. The peer is Python's Pool (fork
// context), measured by bench/peers/pool.py in the same run.
#include <chrono>
#include <cstdio>
#include <numeric>
#include <vector>

#include "bench_support.hpp"
#include "mp/pool.hpp"

namespace {

using bench::ns_per_op;

long square(long x) { return x * x; }


}  // namespace

int main() {
  mp::Pool pool(2);
  std::vector<long> big(200'000);
  std::iota(big.begin(), big.end(), 0L);
  std::vector<long> small(20'000);
  std::iota(small.begin(), small.end(), 0L);

  pool.map(square, small);  // warm the workers and the rings
  bench::report("pool_map_default", "mp", ns_per_op(big.size(), [&] { pool.map(square, big); }));
  bench::report("pool_map_chunksize1", "mp", ns_per_op(small.size(), [&] { pool.map(square, small, 1); }));
  constexpr std::size_t calls = 5'000;
  bench::report("pool_apply_async_get", "mp", ns_per_op(calls, [&] {
    for (std::size_t i = 0; i < calls; ++i) pool.apply_async(square, static_cast<long>(i)).get();
  }));
}
