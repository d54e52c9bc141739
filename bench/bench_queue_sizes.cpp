// Queue throughput against message size, one producer process to one consumer
// process (this one): mp::Queue<std::string>, Boost.Interprocess message_queue
// (named; removed before and after) and a raw pipe (write/read loop of the
// same bytes), in one run. Prints `RESULT queue_mbps_<size> <impl> <MB/s>`
// (MB = 10^6 bytes) for bench/run.py's plot. The Python peer is
// bench/peers/queue_sizes_peer.py, with the same sizes and item counts.
#include <boost/interprocess/ipc/message_queue.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "mp/process.hpp"
#include "mp/queues.hpp"

namespace {

namespace bip = boost::interprocess;
using Clock = std::chrono::steady_clock;

constexpr const char* boost_queue_name = "mp_bench_queue_sizes";

struct Size {
  const char* label;
  std::size_t bytes;
  std::size_t items;
};
// Keep in step with bench/peers/queue_sizes_peer.py.
constexpr Size sizes[] = {
    {"64", 64, 100'000},         {"1k", 1024, 100'000},       {"16k", 16 * 1024, 16'000},
    {"256k", 256 * 1024, 1'000}, {"1m", 1024 * 1024, 256},
};

// Seconds from the producer's start until the consumer (this process) took
// every item.
template <class Produce, class Consume>
double run_1to1(Produce produce, Consume consume) {
  auto start = Clock::now();
  mp::Process producer(produce);
  producer.start();
  consume();
  producer.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double mp_seconds(const Size& size) {
  mp::Queue<std::string> queue;
  const std::string message(size.bytes, 'x');
  return run_1to1([&] { for (std::size_t i = 0; i < size.items; ++i) queue.put(message); },
                  [&] {
                    for (std::size_t i = 0; i < size.items; ++i)
                      if (queue.get().size() != size.bytes) std::abort();
                  });
}

// Boost's queue is bounded and preallocates fixed-size slots: up to 1024 of
// them, at most 64 MiB in all.
double boost_seconds(const Size& size) {
  bip::message_queue::remove(boost_queue_name);
  std::size_t slots = std::clamp<std::size_t>((64u << 20) / size.bytes, 16, 1024);
  double seconds;
  {
    bip::message_queue queue(bip::create_only, boost_queue_name, slots, size.bytes);
    const std::string message(size.bytes, 'x');
    seconds = run_1to1(
        [&] { for (std::size_t i = 0; i < size.items; ++i) queue.send(message.data(), message.size(), 0); },
        [&] {
          std::string received(size.bytes, '\0');
          bip::message_queue::size_type got;
          unsigned priority;
          for (std::size_t i = 0; i < size.items; ++i) {
            queue.receive(received.data(), received.size(), got, priority);
            if (got != size.bytes) std::abort();
          }
        });
  }
  bip::message_queue::remove(boost_queue_name);
  return seconds;
}

void write_all(int fd, const char* data, std::size_t count) {
  while (count > 0) {
    ssize_t wrote = ::write(fd, data, count);
    if (wrote <= 0) std::abort();
    data += wrote;
    count -= static_cast<std::size_t>(wrote);
  }
}

void read_exactly(int fd, char* data, std::size_t count) {
  while (count > 0) {
    ssize_t got = ::read(fd, data, count);
    if (got <= 0) std::abort();
    data += got;
    count -= static_cast<std::size_t>(got);
  }
}

// The raw floor: a pipe, each message written whole and read whole.
double raw_seconds(const Size& size) {
  int ends[2];
  if (::pipe(ends) != 0) std::abort();
  const std::string message(size.bytes, 'x');
  double seconds = run_1to1(
      [&] {
        ::close(ends[0]);
        for (std::size_t i = 0; i < size.items; ++i) write_all(ends[1], message.data(), message.size());
        ::close(ends[1]);
      },
      [&] {
        ::close(ends[1]);
        std::string received(size.bytes, '\0');
        for (std::size_t i = 0; i < size.items; ++i) read_exactly(ends[0], received.data(), received.size());
      });
  ::close(ends[0]);
  return seconds;
}

void report(const Size& size, const char* impl, double seconds) {
  double mb = static_cast<double>(size.bytes * size.items) / 1e6;
  std::printf("RESULT queue_mbps_%s %s %.1f MB/s\n", size.label, impl, mb / seconds);
  std::fflush(stdout);
}

}  // namespace

int main() {
  mp_seconds(sizes[0]);  // warm up: first forks and page faults
  boost_seconds(sizes[0]);
  raw_seconds(sizes[0]);
  for (const Size& size : sizes) {
    report(size, "mp", mp_seconds(size));
    report(size, "boost", boost_seconds(size));
    report(size, "raw", raw_seconds(size));
  }
}
