// Must not compile: cereal can write the task's result type but cannot read
// it back in the parent (no load), so the Pool refuses it before running.
#include <vector>

#include "mp/pool.hpp"

struct WriteOnly {
  int value = 0;
  template <class Archive>
  void save(Archive& archive) const {
    archive(value);
  }
};

static WriteOnly wrap(int x) { return WriteOnly{x}; }

int main() {
  mp::Pool pool(1);
  pool.map(wrap, std::vector<int>{1, 2});
}
