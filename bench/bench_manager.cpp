// Manager beside Python's: a dict set+get round trip from a child process,
// and 4 processes incrementing a Value under a manager Lock. The Python peer
// is bench/peers/manager_peer.py (multiprocessing.Manager, fork context).
#include <cstdlib>
#include <vector>

#include "bench_support.hpp"
#include "mp/managers.hpp"
#include "mp/process.hpp"

namespace {

using bench::ns_per_op;
using bench::report;

constexpr int rounds = 5;
constexpr int round_trips = 20'000;
constexpr int increments_per_process = 2'000;
constexpr int incrementers = 4;

// From the child's start to its end, per set+get pair.
double dict_round_trip_ns(mp::Manager& manager) {
  auto dict = manager.dict<int, int>();
  return ns_per_op(round_trips, [&] {
    mp::Process child([dict] {
      for (int i = 0; i < round_trips; ++i) {
        dict.set(i % 100, i);
        if (dict.get(i % 100) != i) std::abort();
      }
    });
    child.start();
    child.join();
  });
}

// Python: with lock: value.value += 1, in 4 processes; per increment.
double value_increment_ns(mp::Manager& manager) {
  auto value = manager.Value<int>(0);
  auto lock = manager.Lock();
  double ns = ns_per_op(incrementers * increments_per_process, [&] {
    std::vector<mp::Process> children;
    for (int p = 0; p < incrementers; ++p)
      children.emplace_back([value, lock]() mutable {
        for (int i = 0; i < increments_per_process; ++i) {
          lock.acquire();
          value.set(value.get() + 1);
          lock.release();
        }
      });
    for (auto& child : children) child.start();
    for (auto& child : children) child.join();
  });
  if (value.get() != incrementers * increments_per_process) std::abort();
  return ns;
}

}  // namespace

int main() {
  mp::Manager manager;
  for (int round = 0; round < rounds; ++round) {
    report("manager_dict_roundtrip", "mp", dict_round_trip_ns(manager));
    report("manager_value_increment_4", "mp", value_increment_ns(manager));
  }
}
