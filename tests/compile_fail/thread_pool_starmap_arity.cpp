// Must not compile: ThreadPool.starmap's items have three elements, the
// function two; the first error is mp's message naming ThreadPool.
#include <tuple>
#include <vector>

#include "mp/pool.hpp"

static int add(int a, int b) { return a + b; }

int main() {
  mp::ThreadPool pool(1);
  std::vector<std::tuple<int, int, int>> items{{1, 2, 3}};
  return static_cast<int>(pool.starmap(add, items).size());
}
