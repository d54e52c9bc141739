// mp::Object beside Python: a Queue<Object> of a small tuple from a producer
// process to the parent, and pickle dumps+loads of a 1,000-item dict. The
// Python peer is bench/peers/object_peer.py (multiprocessing.Queue, and the
// C pickle module).
#include <chrono>
#include <cstdlib>
#include <string>

#include "bench_support.hpp"
#include "mp/object.hpp"
#include "mp/process.hpp"
#include "mp/queues.hpp"

namespace {

using bench::ns_per_op;
using bench::report;

constexpr int rounds = 5;
constexpr std::size_t tuple_items = 200'000;
constexpr std::size_t dict_round_trips = 2'000;

// From the producer's start until the parent took every item, per item.
double queue_tuple_ns(const mp::Object& item) {
  mp::Queue<mp::Object> queue;
  return ns_per_op(tuple_items, [&] {
    mp::Process producer([&] {
      for (std::size_t i = 0; i < tuple_items; ++i) queue.put(item);
    });
    producer.start();
    for (std::size_t i = 0; i < tuple_items; ++i) queue.get();
    producer.join();
  });
}

}  // namespace

int main() {
  const mp::Object tuple = mp::Tuple{1, "abc", 2.5};
  mp::Dict dict;
  for (int i = 0; i < 1000; ++i) dict.set("key" + std::to_string(i), i);
  const mp::Object big = std::move(dict);
  for (int round = 0; round < rounds; ++round) {
    report("queue_object_tuple_1to1", "mp", queue_tuple_ns(tuple));
    report("pickle_dict_1000", "mp", ns_per_op(dict_round_trips, [&] {
             for (std::size_t i = 0; i < dict_round_trips; ++i) {
               const mp::Object back = mp::pickle::loads(mp::pickle::dumps(big));
               if (back.size() != 1000) std::abort();
             }
           }));
  }
}
