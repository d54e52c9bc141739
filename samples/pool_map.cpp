// A CPU-bound Pool.map: count the primes below N in chunks, with one worker
// and with cpu_count() workers, and print the speed-up.
#include <mp/mp.hpp>

#include <chrono>
#include <iostream>
#include <numeric>
#include <utility>
#include <vector>

namespace {

constexpr long limit = 3'000'000;
constexpr long chunk = 50'000;

bool is_prime(long n) {
  if (n < 2) return false;
  for (long d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

long count_primes(std::pair<long, long> range) {
  long count = 0;
  for (long n = range.first; n < range.second; ++n) count += is_prime(n);
  return count;
}

std::pair<long, double> timed_count(int processes, const std::vector<std::pair<long, long>>& chunks) {
  auto start = std::chrono::steady_clock::now();
  mp::Pool pool(processes);
  auto counts = pool.map(count_primes, chunks);
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  return {std::accumulate(counts.begin(), counts.end(), 0L), elapsed.count()};
}

}  // namespace

int main() {
  std::vector<std::pair<long, long>> chunks;
  for (long first = 0; first < limit; first += chunk) chunks.emplace_back(first, first + chunk);

  auto [serial_count, serial_seconds] = timed_count(1, chunks);
  int cpus = mp::cpu_count();
  auto [parallel_count, parallel_seconds] = timed_count(cpus, chunks);

  std::cout << "primes below " << limit << ": " << serial_count << "\n";
  std::cout << "1 process: " << serial_seconds << " s; " << cpus << " processes: " << parallel_seconds
            << " s; speed-up " << serial_seconds / parallel_seconds << "x\n";
  return serial_count == parallel_count && serial_count == 216'816 ? 0 : 1;
}
