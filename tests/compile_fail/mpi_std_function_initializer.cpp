// An initializer for mp::mpi::Pool cannot be a std::function: the worker
// ranks are other processes and never see it.
#include <functional>

#include "mp/mpi.hpp"

int main() {
  std::function<void()> setup = [] {};
  mp::mpi::PoolOptions options;
  options.initializer = setup;
}
