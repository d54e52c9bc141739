// Must not compile: map calls f(item), and this function takes two arguments.
#include <vector>

#include "mp/pool.hpp"

static int add(int a, int b) { return a + b; }

int main() {
  mp::Pool pool(1);
  return static_cast<int>(pool.map(add, std::vector<int>{1, 2}).size());
}
