// Must not compile: map items holding a Queue (in a tuple) cannot travel to
// pool workers.
#include <tuple>
#include <vector>

#include "mp/pool.hpp"
#include "mp/queues.hpp"

static int put_one(mp::Queue<int> queue, int x) {
  queue.put(x);
  return x;
}

int main() {
  mp::Queue<int> queue;
  mp::Pool pool(1);
  std::vector<std::tuple<mp::Queue<int>, int>> items{{queue, 1}};
  return static_cast<int>(pool.starmap(put_one, items).size());
}
