// Queue throughput, producer processes to consumer processes, beside
// Boost.Interprocess message_queue (its named shared memory is removed before
// and after) in the same run. The Python peer is bench/peers/queue_peer.py.
#include <boost/interprocess/ipc/message_queue.hpp>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "mp/process.hpp"
#include "mp/queues.hpp"

namespace {

using bench::ns_per_op;
using bench::report;

namespace bip = boost::interprocess;
using Clock = std::chrono::steady_clock;

constexpr const char* boost_queue_name = "mp_bench_queue";

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `producers` producer processes and `consumers` consumer processes
// (the last consumer is this process) and returns the seconds from the first
// fork until every item was taken.
template <class Produce, class Consume>
double run_shape(int producers, int consumers, Produce produce, Consume consume) {
  auto start = Clock::now();
  std::vector<mp::Process> processes;
  for (int p = 0; p < producers; ++p) processes.emplace_back(produce);
  for (int c = 1; c < consumers; ++c) processes.emplace_back(consume);
  for (auto& process : processes) process.start();
  consume();
  for (auto& process : processes) process.join();
  return seconds_since(start);
}

// Boost's message_queue below has 1024 slots.
constexpr std::size_t boost_capacity = 1024;

// maxsize 0 (unbounded, Python's default) for the Python comparisons, the
// Boost queue's capacity for the Boost ones: an unbounded queue whose producer
// runs ahead touches fresh pages all along, which a bounded one never does.
template <class T>
double mp_seconds(const T& item, std::size_t items, int producers, int consumers,
                  std::size_t maxsize = 0) {
  mp::Queue<T> queue(maxsize);
  return run_shape(producers, consumers,
                   [&] {
                     for (std::size_t i = 0; i < items / producers; ++i) queue.put(item);
                   },
                   [&] {
                     for (std::size_t i = 0; i < items / consumers; ++i) queue.get();
                   });
}

// Boost's queue is bounded and copies fixed-size messages.
double boost_seconds(std::size_t message_size, std::size_t items) {
  bip::message_queue::remove(boost_queue_name);
  bip::message_queue queue(bip::create_only, boost_queue_name, boost_capacity, message_size);
  std::string message(message_size, 'x');
  double seconds = run_shape(1, 1,
                             [&] {
                               for (std::size_t i = 0; i < items; ++i) queue.send(message.data(), message.size(), 0);
                             },
                             [&] {
                               std::string received(message_size, '\0');
                               bip::message_queue::size_type size;
                               unsigned priority;
                               for (std::size_t i = 0; i < items; ++i)
                                 queue.receive(received.data(), received.size(), size, priority);
                             });
  bip::message_queue::remove(boost_queue_name);
  return seconds;
}

// A reference for large items, the simplest transport there is: the same
// bytes through a ring of 16 slots in shared memory whose pages exist before
// the clock starts, one memcpy in and one out (into a new string, as
// Queue::get returns), the two sides spinning on a count each: no framing,
// no locks, no sleeping, no page ever created. Not a floor: its producer
// rewrites slots the consumer has just read, which mp's chunks avoid.
double raw_ring_seconds(const std::string& item, std::size_t items) {
  constexpr std::size_t slots = 16;
  const std::size_t size = item.size();
  void* memory = ::mmap(nullptr, 128 + slots * size, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (memory == MAP_FAILED) std::abort();
  auto* produced = ::new (memory) std::atomic<std::size_t>(0);
  auto* consumed = ::new (static_cast<char*>(memory) + 64) std::atomic<std::size_t>(0);
  char* ring = static_cast<char*>(memory) + 128;
  double seconds = run_shape(1, 1,
                             [&] {
                               for (std::size_t i = 0; i < items; ++i) {
                                 while (i - consumed->load(std::memory_order_acquire) >= slots) {
                                 }
                                 std::memcpy(ring + i % slots * size, item.data(), size);
                                 produced->store(i + 1, std::memory_order_release);
                               }
                             },
                             [&] {
                               for (std::size_t i = 0; i < items; ++i) {
                                 while (produced->load(std::memory_order_acquire) <= i) {
                                 }
                                 std::string taken(ring + i % slots * size, size);
                                 consumed->store(i + 1, std::memory_order_release);
                               }
                             });
  ::munmap(memory, 128 + slots * size);
  return seconds;
}

double ns_per_item(double seconds, std::size_t items) { return seconds * 1e9 / static_cast<double>(items); }

}  // namespace

int main() {
  constexpr std::size_t ints = 200'000, kib_items = 20'000, mib_items = 200, small_2x2 = 200'000;
  const std::string kib(1024, 'k'), mib(1 << 20, 'm');
  mp_seconds(0, 20'000, 1, 1);  // warm up: first forks and page faults
  boost_seconds(8, 20'000);

  report("queue_int_1to1", "mp", ns_per_item(mp_seconds(42, ints, 1, 1), ints), "ns/op");
  report("queue_int_1to1_bounded", "mp",
         ns_per_item(mp_seconds(42, ints, 1, 1, boost_capacity), ints), "ns/op");
  report("queue_int_1to1_bounded", "boost", ns_per_item(boost_seconds(8, ints), ints), "ns/op");
  report("queue_1kib_1to1", "mp", ns_per_item(mp_seconds(kib, kib_items, 1, 1), kib_items), "ns/op");
  report("queue_1kib_1to1_bounded", "mp",
         ns_per_item(mp_seconds(kib, kib_items, 1, 1, boost_capacity), kib_items), "ns/op");
  report("queue_1kib_1to1_bounded", "boost", ns_per_item(boost_seconds(1024, kib_items), kib_items), "ns/op");
  auto mb_per_s = [&](double seconds) { return static_cast<double>(mib_items) * 1.048576 / seconds; };
  report("queue_1mib_1to1", "mp", mb_per_s(mp_seconds(mib, mib_items, 1, 1)), "MB/s");
  report("queue_1mib_1to1", "raw", mb_per_s(raw_ring_seconds(mib, mib_items)), "MB/s");
  report("queue_int_2to2", "mp", ns_per_item(mp_seconds(42, small_2x2, 2, 2), small_2x2), "ns/op");
}
