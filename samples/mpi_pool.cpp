// mp::mpi::Pool: the Pool of pool_map, spread over MPI ranks (on one host
// here, on a cluster the same way). Launch with
//   mpirun -n 3 build/samples/mpi_pool          (make demo-mpi does it)
// Rank 0 runs main() past the Pool's constructor; ranks 1 and 2 serve its
// tasks there and never return. docs/cluster.md says how to launch on
// several hosts.
#include <mp/mpi.hpp>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

// Steps of the Collatz sequence from n down to 1.
int collatz_steps(long n) {
  int steps = 0;
  for (; n != 1; ++steps) n = n % 2 ? 3 * n + 1 : n / 2;
  return steps;
}

// (n, whether n is prime), by trial division: a task of some milliseconds.
std::pair<long, bool> primality(long n) {
  if (n < 2) return {n, false};
  for (long d = 2; d * d <= n; ++d)
    if (n % d == 0) return {n, false};
  return {n, true};
}

long sum_of_squares(long n) {
  long sum = 0;
  for (long i = 1; i <= n; ++i) sum += i * i;
  return sum;
}

// A task that refuses its input: the exception reaches the master as its type.
long checked_isqrt(long n) {
  if (n < 0) throw std::invalid_argument("checked_isqrt: negative input " + std::to_string(n));
  long root = 0;
  while ((root + 1) * (root + 1) <= n) ++root;
  return root;
}

}  // namespace

int main(int argc, char** argv) {
  mp::mpi::Pool pool(argc, argv);  // worker ranks serve here; rank 0 goes on
  std::printf("master: %d worker ranks\n", pool.processes());

  // map, default chunking: one result per input, in input order.
  std::vector<long> starts(999'999);
  std::iota(starts.begin(), starts.end(), 1L);
  std::vector<int> steps = pool.map(collatz_steps, starts);
  auto longest = std::max_element(steps.begin(), steps.end());
  std::printf("longest Collatz chain below 1000000: starts at %ld, %d steps\n",
              starts[static_cast<std::size_t>(longest - steps.begin())], *longest);

  // imap_unordered: results as the ranks finish them, whatever the order.
  std::vector<long> candidates = {112272535095293, 112582705942171, 115280095190773,
                                  115797848077099, 1099726899285419, 1000000007};
  int primes = 0;
  for (auto [n, prime] : pool.imap_unordered(primality, candidates)) primes += prime;
  std::printf("%d of %zu candidates are prime\n", primes, candidates.size());

  // apply_async with a callback: it runs in the master's result thread
  // before get() returns.
  auto async = pool.apply_async(
      mp::Callbacks{[](long sum) { std::printf("callback: sum of squares 1..1000 = %ld\n", sum); },
                    nullptr},
      sum_of_squares, 1000L);
  async.get();

  // A task's exception arrives typed: caught here as std::invalid_argument.
  try {
    pool.apply(checked_isqrt, -4L);
  } catch (const std::invalid_argument& error) {
    std::printf("task error caught as std::invalid_argument: %s\n", error.what());
  }
  std::printf("isqrt(1000000) = %ld\n", pool.apply(checked_isqrt, 1'000'000L));
}
