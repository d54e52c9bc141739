// Must not compile: a capturing lambda cannot run on a pool's workers.
#include "mp/pool.hpp"

int main() {
  mp::Pool pool(1);
  int offset = 3;
  return pool.apply([offset](int x) { return x + offset; }, 1);
}
