// mp::mpi::Pool per task, beside mpi4py.futures and beside mp::Pool on one
// host. bench/run.py runs this program twice in each round:
//   scripts/mpirun.sh -n 3 bench_mpi   a master and two worker ranks (impl mp)
//   bench_mpi --pool                   mp::Pool(2) in one process, no MPI (mp_pool)
// and bench/peers/mpi_peer.py under mpirun as the third (python), with the
// same workloads and counts, except that mpi4py maps 20k items by default
// chunking (its default chunksize is 1: 200k took minutes).
#include <cstring>
#include <numeric>
#include <vector>

#include "bench_support.hpp"
#include "mp/mpi.hpp"
#include "mp/pool.hpp"

namespace {

constexpr std::size_t map_items = 200'000;
constexpr std::size_t chunksize1_items = 20'000;  // the same counts as bench/peers/mpi_peer.py
constexpr std::size_t apply_calls = 2'000;

long square(long x) { return x * x; }

template <class Pool>
void measure(Pool& pool, const char* impl) {
  std::vector<long> items(map_items);
  std::iota(items.begin(), items.end(), 0L);
  std::vector<long> few(chunksize1_items);
  std::iota(few.begin(), few.end(), 0L);

  long sum = 0;
  for (long value : pool.map(square, few)) sum += value;  // the workers are up and warm
  bench::report("mpi_map_default", impl, bench::ns_per_op(items.size(), [&] {
    for (long value : pool.map(square, items)) sum += value;
  }));
  bench::report("mpi_map_chunksize1", impl, bench::ns_per_op(few.size(), [&] {
    for (long value : pool.map(square, few, 1)) sum += value;
  }));
  bench::report("mpi_apply_roundtrip", impl, bench::ns_per_call(apply_calls, [&] {
    sum += pool.apply(square, sum % 1000);
  }));
  if (sum == 0) std::puts("impossible");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--pool") == 0) {
    mp::Pool pool(2);
    measure(pool, "mp_pool");
    return 0;
  }
  mp::mpi::Pool pool(argc, argv);  // the worker ranks serve here until the master's pool ends
  measure(pool, "mp");
}
