// Must not compile: ThreadPool.apply's arguments do not match the function's
// parameters; the first error is mp's message naming ThreadPool.
#include <string>

#include "mp/pool.hpp"

static int twice(int x) { return 2 * x; }

int main() {
  mp::ThreadPool pool(1);
  return pool.apply(twice, std::string("1"));
}
