// Must not compile: apply's arguments do not match the function's parameters.
#include <string>

#include "mp/pool.hpp"

static int twice(int x) { return 2 * x; }

int main() {
  mp::Pool pool(1);
  return pool.apply(twice, std::string("1"));
}
