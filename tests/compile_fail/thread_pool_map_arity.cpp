// Must not compile: ThreadPool.map calls f(item), and this lambda takes two
// arguments; the first error is mp's message naming ThreadPool.
#include <vector>

#include "mp/pool.hpp"

int main() {
  mp::ThreadPool pool(1);
  int offset = 1;
  auto add = [&offset](int a, int b) { return a + b + offset; };
  return static_cast<int>(pool.map(add, std::vector<int>{1, 2}).size());
}
