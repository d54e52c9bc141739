// Must not compile: a Lock cannot travel to a pool worker as a task argument.
#include "mp/pool.hpp"
#include "mp/synchronize.hpp"

static int locked_increment(mp::Lock lock, int x) {
  std::lock_guard guard(lock);
  return x + 1;
}

int main() {
  mp::Lock lock;
  mp::Pool pool(1);
  return pool.apply(locked_increment, lock, 1);
}
