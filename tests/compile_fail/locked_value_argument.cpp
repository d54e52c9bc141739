// Must not compile: a Value sharing a caller's Lock (Python's lock=) is a
// process-shared handle like any Value, and cannot be a Pool task argument.
#include "mp/pool.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/synchronize.hpp"

static int read_locked(mp::Value<int, mp::Lock> value) { return value.load(); }

int main() {
  mp::Lock lock;
  mp::Value<int, mp::Lock> value(0, lock);
  mp::Pool pool(1);
  return pool.apply(read_locked, value);
}
