// ProcessPoolExecutor round trip and map, per task. The peer is Python's
// concurrent.futures.ProcessPoolExecutor (fork context), measured by
// bench/peers/futures_peer.py in the same run.
#include <cstdio>
#include <numeric>
#include <vector>

#include "bench_support.hpp"
#include "mp/futures.hpp"

namespace {

long square(long x) { return x * x; }

}  // namespace

int main() {
  mp::ProcessPoolExecutor executor(2);
  std::vector<long> items(200'000);
  std::iota(items.begin(), items.end(), 0L);
  std::vector<long> warm(2'000);
  std::iota(warm.begin(), warm.end(), 0L);

  for (long value : executor.map(square, warm)) (void)value;  // warm the workers and the rings
  constexpr std::size_t calls = 5'000;
  bench::report("futures_submit_result", "mp", bench::ns_per_op(calls, [&] {
    for (std::size_t i = 0; i < calls; ++i) executor.submit(square, static_cast<long>(i)).result();
  }));
  long sum = 0;
  bench::report("futures_map_200k", "mp", bench::ns_per_op(items.size(), [&] {
    for (long value : executor.map(square, items)) sum += value;
  }));
  bench::report("futures_map_200k_chunksize1000", "mp", bench::ns_per_op(items.size(), [&] {
    for (long value : executor.map(square, items, 1000)) sum += value;
  }));
  if (sum == 0) std::puts("impossible");
}
