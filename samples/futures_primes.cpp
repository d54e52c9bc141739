// The concurrent.futures documentation's ProcessPoolExecutor example: which
// of six large numbers are prime, checked in worker processes by map().
// Python:
//   with concurrent.futures.ProcessPoolExecutor() as executor:
//       for number, prime in zip(PRIMES, executor.map(is_prime, PRIMES)):
//           print('%d is prime: %s' % (number, prime))
// The output is Python's, line for line.
#include <mp/mp.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

namespace {

const std::vector<long long> primes = {112272535095293, 112582705942171, 112272535095293,
                                       115280095190773, 115797848077099, 1099726899285419};

bool is_prime(long long n) {
  if (n < 2) return false;
  if (n == 2) return true;
  if (n % 2 == 0) return false;
  auto sqrt_n = static_cast<long long>(std::floor(std::sqrt(static_cast<double>(n))));
  for (long long i = 3; i <= sqrt_n; i += 2)
    if (n % i == 0) return false;
  return true;
}

}  // namespace

int main() {
  mp::ProcessPoolExecutor executor;
  auto number = primes.begin();
  for (bool prime : executor.map(is_prime, primes))
    std::printf("%lld is prime: %s\n", *number++, prime ? "True" : "False");
}
