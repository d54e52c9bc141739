// Must not compile: a Value cannot travel to a pool worker (here through
// apply_async with callbacks).
#include "mp/pool.hpp"
#include "mp/sharedctypes.hpp"

static void bump(mp::Value<int>* counter) { counter->fetch_add(1); }

int main() {
  mp::Value<int> counter(0);
  mp::Pool pool(1);
  pool.apply_async(mp::Callbacks{nullptr, nullptr}, bump, &counter).get();
}
