// Queues: Python's _TestQueue, TestSimpleQueue and the JoinableQueue
// task_done test, plus what Python cannot promise: kill -9 in the middle of
// put and get, 1 GiB unbounded, 64 MiB items, no CPU while idle, nothing in
// /dev/shm. Children report through exit codes and shared memory only.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mp/detail/queue_core.hpp"
#include "mp/detail/shared_mapping.hpp"
#include "mp/process.hpp"
#include "mp/queues.hpp"
#include "mp/shared_memory.hpp"
#include "mp/detail/syscall.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using test_support::cpu_ticks;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto patience = 60s;  // the bound on every wait: a bug fails, never hangs

int run_child(std::function<void()> body) {
  mp::Process child(std::move(body));
  child.start();
  child.join(patience);
  if (child.is_alive()) {
    child.kill();
    child.join(10s);
    return -1000;
  }
  return child.exitcode().value_or(-1000);
}

// Items whose every byte is checked: a seed, then words derived from it, then
// a checksum of everything before it. A torn item fails whole().
std::uint64_t checksum(const char* data, std::size_t words) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t word;
    std::memcpy(&word, data + i * sizeof word, sizeof word);
    sum = (sum ^ word) * 0x100000001b3ull;
  }
  return sum;
}
std::string patterned(std::size_t size, std::uint64_t seed) {
  std::string item(size, '\0');
  std::size_t words = size / sizeof seed - 1;
  std::uint64_t state = seed;
  for (std::size_t i = 0; i < words; ++i) {
    std::memcpy(item.data() + i * sizeof state, &state, sizeof state);
    state = state * 6364136223846793005ull + 1442695040888963407ull;
  }
  std::uint64_t sum = checksum(item.data(), words);
  std::memcpy(item.data() + size - sizeof sum, &sum, sizeof sum);
  return item;
}
bool whole(const std::string& item, std::size_t size) {
  if (item.size() != size) return false;
  std::size_t words = size / sizeof(std::uint64_t) - 1;
  std::uint64_t sum;
  std::memcpy(&sum, item.data() + size - sizeof sum, sizeof sum);
  // The checksum covers every byte; the sequence check catches an item made
  // of pieces of two whole ones.
  if (sum != checksum(item.data(), words)) return false;
  std::uint64_t first, second;
  std::memcpy(&first, item.data(), sizeof first);
  std::memcpy(&second, item.data() + sizeof first, sizeof second);
  return second == first * 6364136223846793005ull + 1442695040888963407ull;
}

// Refuses to be saved when its value is negative.
struct Refusing {
  int value = 0;
  template <class Archive>
  void save(Archive& archive) const {
    archive(value);
    if (value < 0) throw std::runtime_error("Refusing refuses to be saved");
  }
  template <class Archive>
  void load(Archive& archive) {
    archive(value);
  }
};

// The system's shared memory in use (memfd pages count here), in KiB.
long shmem_kib() {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);)
    if (line.rfind("Shmem:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// The untyped core under a Queue, to time one locked call without the cost
// of decoding and allocating a large T.
template <class T>
struct Opened : mp::Queue<T> {
  static constexpr auto state = &Opened::state_;  // a member pointer into the base
};
template <class T>
mp::detail::QueueCore& core_of(mp::Queue<T>& queue) {
  return (queue.*Opened<T>::state)->core;
}

template <class F>
std::chrono::milliseconds elapsed_in(F&& body) {
  auto start = Clock::now();
  body();
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

}  // namespace

// ---- Python's _TestQueue ----

TEST_CASE("Queue.put: bounded queue fills, then Full (Python test_put)") {
  constexpr int maxsize = 6;
  mp::Queue<int> queue(maxsize);
  CHECK(queue.empty());
  CHECK_FALSE(queue.full());
  queue.put(1);
  queue.put(2, true);
  queue.put(3, 1s);
  queue.put_nowait(4);
  queue.put(5, false);
  queue.put(6, 10ms);
  CHECK(queue.qsize() == 6);
  CHECK(queue.full());
  CHECK_THROWS_AS(queue.put(7, false), mp::Full);
  CHECK_THROWS_AS(queue.put_nowait(7), mp::Full);
  auto waited = elapsed_in([&] { CHECK_THROWS_AS(queue.put(7, 100ms), mp::Full); });
  CHECK(waited >= 90ms);
  CHECK(waited < 5s);
  try {
    queue.put_nowait(7);
  } catch (const mp::Full& error) {
    CHECK(std::string(error.what()).find("Queue.put_nowait") != std::string::npos);
  }
  // A child consumes everything; the parent's blocked put then gets room.
  auto shared = mp::detail::make_shared_object<std::atomic<int>>("test", 0);
  mp::Process consumer([&] {
    int sum = 0;
    for (int i = 0; i < 7; ++i) sum += queue.get(30s);
    shared->store(sum);
  });
  consumer.start();
  queue.put(7, patience);
  consumer.join(patience);
  CHECK(consumer.exitcode() == 0);
  CHECK(shared->load() == 28);
  CHECK(queue.empty());
  CHECK(queue.qsize() == 0);
}

TEST_CASE("Queue.get: every form, Empty when empty (Python test_get)") {
  mp::Queue<int> queue;
  CHECK(run_child([&] {
          for (int i = 1; i <= 5; ++i) queue.put(i);
        }) == 0);
  CHECK_FALSE(queue.empty());
  CHECK(queue.qsize() == 5);
  CHECK(queue.get() == 1);
  CHECK(queue.get(true) == 2);
  CHECK(queue.get(1s) == 3);
  CHECK(queue.get_nowait() == 4);
  CHECK(queue.get(false) == 5);
  CHECK(queue.empty());
  CHECK_THROWS_AS(queue.get(false), mp::Empty);
  CHECK_THROWS_AS(queue.get_nowait(), mp::Empty);
  CHECK_THROWS_AS(queue.get(10ms), mp::Empty);
  try {
    queue.get_nowait();
    FAIL("no Empty");
  } catch (const mp::Empty& error) {
    CHECK(std::string(error.what()).find("Queue.get_nowait") != std::string::npos);
  }
}

TEST_CASE("Queue: items put by a child survive its exit (Python test_fork)") {
  mp::Queue<std::string> queue;
  mp::Process producer([&] {
    for (int i = 0; i < 10; ++i) queue.put("item " + std::to_string(i));
  });
  producer.start();
  producer.join(patience);
  CHECK(producer.exitcode() == 0);
  for (int i = 0; i < 10; ++i) REQUIRE(queue.get(5s) == "item " + std::to_string(i));
  CHECK_THROWS_AS(queue.get(50ms), mp::Empty);
}

TEST_CASE("Queue.qsize is exact across processes (Python test_qsize)") {
  mp::Queue<int> queue;
  CHECK(queue.qsize() == 0);
  queue.put(1);
  CHECK(queue.qsize() == 1);
  CHECK(run_child([&] { queue.put(5); }) == 0);
  CHECK(queue.qsize() == 2);
  CHECK(run_child([&] { mp::exit(queue.get(5s)); }) == 1);
  CHECK(queue.qsize() == 1);
  queue.get();
  CHECK(queue.qsize() == 0);
}

TEST_CASE("JoinableQueue: workers call task_done, join returns (Python test_task_done)") {
  mp::JoinableQueue<int> queue;
  auto processed = mp::detail::make_shared_object<std::atomic<int>>("test", 0);
  std::vector<mp::Process> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      for (;;) {
        int item = queue.get(30s);
        if (item < 0) {
          queue.task_done();
          return;
        }
        processed->fetch_add(item);
        queue.task_done();
      }
    });
    workers.back().start();
  }
  for (int i = 1; i <= 10; ++i) queue.put(i);
  CHECK(queue.join(patience));
  CHECK(processed->load() == 55);
  for (int w = 0; w < 4; ++w) queue.put(-1);
  CHECK(queue.join(patience));
  for (auto& worker : workers) {
    worker.join(patience);
    CHECK(worker.exitcode() == 0);
  }
  CHECK(queue.join(0ms));
}

TEST_CASE("JoinableQueue.task_done called too often raises ValueError") {
  mp::JoinableQueue<int> queue;
  CHECK_THROWS_AS(queue.task_done(), mp::ValueError);
  queue.put(1);
  queue.put(2);
  CHECK_FALSE(queue.join(20ms));
  CHECK(queue.get() == 1);
  queue.task_done();
  CHECK(queue.get() == 2);
  queue.task_done();
  CHECK(queue.join(1s));
  try {
    queue.task_done();
    FAIL("no ValueError");
  } catch (const mp::ValueError& error) {
    CHECK(std::string(error.what()).find("JoinableQueue.task_done") != std::string::npos);
  }
  // The count is shared: a child's task_done counts for the parent's join.
  queue.put(3);
  CHECK(run_child([&] {
          queue.get(5s);
          queue.task_done();
        }) == 0);
  CHECK(queue.join(1s));
}

TEST_CASE("Queue.get(timeout) on an empty queue waits about the timeout (Python test_timeout)") {
  mp::Queue<int> queue;
  auto waited = elapsed_in([&] { CHECK_THROWS_AS(queue.get(200ms), mp::Empty); });
  CHECK(waited >= 190ms);  // Python allows 0.1 s; the monotonic clock needs no slack
  CHECK(waited < 3s);
  // A non-blocking get does not wait at all.
  CHECK(elapsed_in([&] { CHECK_THROWS_AS(queue.get_nowait(), mp::Empty); }) <
        100ms * test_support::sanitizer_slowdown);
}

TEST_CASE("Queue.close: later put and get raise ValueError (Python test_closed_queue)") {
  mp::Queue<int> queue;
  queue.put(1);
  mp::Queue<int> other_handle = queue;
  queue.close();
  CHECK_THROWS_AS(queue.put(2), mp::ValueError);
  CHECK_THROWS_AS(queue.get(), mp::ValueError);
  CHECK_THROWS_AS(queue.get_nowait(), mp::ValueError);
  try {
    queue.put(2);
    FAIL("no ValueError");
  } catch (const mp::ValueError& error) {
    CHECK(std::string(error.what()).find("Queue.put") != std::string::npos);
    CHECK(std::string(error.what()).find("closed") != std::string::npos);
  }
  // close() closes this process's handle only: a child that closes its
  // inherited handle leaves the parent's open.
  mp::Queue<int> fresh;
  fresh.put(4);
  CHECK(run_child([&] {
          fresh.close();
          try {
            fresh.get_nowait();
          } catch (const mp::ValueError&) {
            mp::exit(7);
          }
        }) == 7);
  CHECK(fresh.get_nowait() == 4);  // the child's close did not close the parent's
}

// ---- Python's TestSimpleQueue ----

TEST_CASE("SimpleQueue: empty, put, get across processes (Python TestSimpleQueue)") {
  mp::SimpleQueue<int> queue;
  CHECK(queue.empty());
  mp::SimpleQueue<int> ready;
  mp::Process child([&] {
    // Python's test_empty: the child sees what the parent put, then answers.
    int first = queue.get();
    ready.put(first + 1);
    ready.put(queue.empty() ? 1 : 0);
  });
  child.start();
  queue.put(41);
  // SimpleQueue has no timeout: wait for the child first, with one.
  child.join(patience);
  CHECK(child.exitcode() == 0);
  CHECK_FALSE(ready.empty());
  CHECK(ready.get() == 42);
  CHECK(ready.get() == 1);
  CHECK(ready.empty());
  queue.close();
  CHECK_THROWS_AS(queue.put(1), mp::ValueError);
  CHECK_THROWS_AS(queue.get(), mp::ValueError);
}

// ---- Handles, threads, grandchildren ----

TEST_CASE("Queue: threads of one process share it, many producers and consumers") {
  mp::Queue<int> queue(16);
  constexpr int per_producer = 5000;
  std::atomic<long> sum{0};
  std::atomic<int> received{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < 4; ++p)
    threads.emplace_back([&, p] {
      for (int i = 0; i < per_producer; ++i) queue.put(p * per_producer + i, patience);
    });
  for (int c = 0; c < 4; ++c)
    threads.emplace_back([&] {
      for (int i = 0; i < per_producer; ++i) {
        sum += queue.get(patience);
        ++received;
      }
    });
  for (auto& thread : threads) thread.join();
  constexpr long n = 4L * per_producer;
  CHECK(received == n);
  CHECK(sum == n * (n - 1) / 2);
  CHECK(queue.empty());
}

TEST_CASE("Queue: several producer and consumer processes, nothing lost or doubled") {
  mp::Queue<int> queue(64);
  constexpr int per_producer = 20000;
  auto sum = mp::detail::make_shared_object<std::atomic<long>>("test", 0);
  std::vector<mp::Process> processes;
  for (int p = 0; p < 2; ++p)
    processes.emplace_back([&, p] {
      for (int i = 0; i < per_producer; ++i) queue.put(p * per_producer + i, 30s);
    });
  for (int c = 0; c < 2; ++c)
    processes.emplace_back([&] {
      for (int i = 0; i < per_producer; ++i) sum->fetch_add(queue.get(30s));
    });
  for (auto& process : processes) process.start();
  for (auto& process : processes) {
    process.join(patience);
    CHECK(process.exitcode() == 0);
  }
  constexpr long n = 2L * per_producer;
  CHECK(sum->load() == n * (n - 1) / 2);
  CHECK(queue.qsize() == 0);
}

TEST_CASE("Queue: grandchildren reach it by inheritance; copies share one queue") {
  mp::Queue<int> queue;
  mp::Queue<int> copy = queue;
  CHECK(run_child([&] {
          mp::Process grandchild([&] { copy.put(3); });
          grandchild.start();
          grandchild.join(30s);
          queue.put(4);
        }) == 0);
  CHECK(queue.get(5s) == 3);
  CHECK(copy.get(5s) == 4);
}

TEST_CASE("Queue: a queue created inside a child works between it and its children") {
  CHECK(run_child([] {
          mp::Queue<std::string> inner(2);
          mp::Process grandchild([&] {
            for (int i = 0; i < 5; ++i) inner.put(std::to_string(i), 30s);
          });
          grandchild.start();
          std::string joined;
          for (int i = 0; i < 5; ++i) joined += inner.get(30s);
          grandchild.join(30s);
          mp::exit(joined == "01234" && grandchild.exitcode() == 0 ? 0 : 3);
        }) == 0);
}

// ---- Serialization in put ----

TEST_CASE("Queue.put: a value that fails to serialize throws and leaves the queue unchanged") {
  mp::Queue<Refusing> queue(2);
  queue.put(Refusing{1});
  CHECK_THROWS_WITH_AS(queue.put(Refusing{-2}),
                       doctest::Contains("Queue.put: cannot serialize"), mp::SerializationError);
  CHECK(queue.qsize() == 1);
  CHECK_FALSE(queue.full());
  queue.put(Refusing{3});  // the failed put took no room
  CHECK(queue.full());
  CHECK(queue.get_nowait().value == 1);
  CHECK(queue.get_nowait().value == 3);
  CHECK_THROWS_AS(queue.get_nowait(), mp::Empty);

  mp::JoinableQueue<Refusing> joinable;
  CHECK_THROWS_AS(joinable.put(Refusing{-1}), mp::SerializationError);
  CHECK(joinable.join(0ms));  // no unfinished task was added
}

TEST_CASE("Queue.get: bytes that do not decode as T raise SerializationError, queue goes on") {
  // Decoding is bounded: a hostile length claim inside a record is refused.
  // The malformed record is taken (it would fail every later get too), and
  // the next one comes out whole.
  mp::Queue<std::string> strings;
  mp::Queue<std::vector<int>> vectors;  // decoded outside the lock, from a copy
  const std::string garbage(8, '\xff');
  CHECK(core_of(strings).put(garbage, mp::detail::Deadline::now()));
  CHECK(core_of(vectors).put(garbage, mp::detail::Deadline::now()));
  strings.put("still fine");
  vectors.put({1, 2, 3});
  CHECK_THROWS_AS(strings.get_nowait(), mp::SerializationError);
  CHECK_THROWS_AS(vectors.get_nowait(), mp::SerializationError);
  CHECK(strings.get_nowait() == "still fine");
  CHECK(vectors.get_nowait() == std::vector<int>{1, 2, 3});
  CHECK(strings.empty());
  CHECK(vectors.empty());
}

// ---- Blocking costs nothing ----

TEST_CASE("Queue: an idle waiter uses no CPU, and wakes when an item comes") {
  mp::Queue<int> queue;
  mp::Queue<int> answer;
  mp::Process waiter([&] { answer.put(queue.get(30s) + 1); });
  waiter.start();
  std::this_thread::sleep_for(100ms);  // past its spin, into the futex
  long before = cpu_ticks(*waiter.pid());
  std::this_thread::sleep_for(300ms);
  long used = cpu_ticks(*waiter.pid()) - before;
  CHECK(used <= 3);  // ticks are 10 ms: a spinning waiter would show ~30
  queue.put(1);
  CHECK(answer.get(10s) == 2);
  waiter.join(patience);
  CHECK(waiter.exitcode() == 0);
}

TEST_CASE("Queue: a put wakes a blocked get promptly, a get wakes a blocked put") {
  mp::Queue<int> queue(1);
  mp::Queue<int> results;
  mp::Process child([&] {
    results.put(queue.get(30s));
    queue.put(10, 30s);
    queue.put(11, 30s);  // blocks until the parent gets 10
  });
  child.start();
  std::this_thread::sleep_for(50ms);
  queue.put(9);
  CHECK(results.get(5s) == 9);
  CHECK(queue.get(5s) == 10);
  CHECK(queue.get(5s) == 11);
  child.join(patience);
  CHECK(child.exitcode() == 0);
}

// ---- Crashes ----

TEST_CASE("Queue: 50 producers SIGKILLed in the middle of 8 MiB puts: only whole items, queue goes on") {
  constexpr std::size_t item_size = 8 << 20;
  mp::Queue<std::string> queue(3);
  std::vector<std::string> items;
  for (std::uint32_t seed = 1; seed <= 3; ++seed) items.push_back(patterned(item_size, seed));
  std::mt19937 random(12345);
  int received = 0, received_after_kill = 0;
  for (int round = 0; round < 50; ++round) {
    mp::Process producer([&] {
      for (std::size_t i = 0;; ++i) queue.put(items[i % items.size()], 30s);
    });
    producer.start();
    // Kill somewhere in a put: early rounds in the first put, later ones
    // anywhere, including while the queue is full and the producer waits.
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 80000));
    producer.kill();
    producer.join(patience);
    REQUIRE(producer.exitcode() == -SIGKILL);
    std::size_t left = queue.qsize();
    CHECK(left <= 3);
    // The others go on at once: the dead holder's lock passes to the next
    // caller, which repairs the bookkeeping; a get with an expired deadline
    // succeeds. Its time is mostly copying 8 MiB into fresh pages (about
    // 2,000 page faults), so the bound is generous: waiting for the dead
    // holder would take the 30 s of the put, not 1 s.
    mp::detail::QueueCore& core = core_of(queue);
    std::string item;
    for (std::size_t i = 0; i < left; ++i) {
      CHECK(elapsed_in([&] { CHECK(core.get(item, mp::detail::Deadline::now())); }) <
            1s * test_support::sanitizer_slowdown);
      CHECK(whole(mp::detail::loads<std::string>(item, "test"), item_size));
      ++received;
    }
    CHECK(queue.qsize() == 0);
    CHECK_THROWS_AS(queue.get_nowait(), mp::Empty);
    // Still fully usable, with its full capacity.
    for (int i = 0; i < 3; ++i) queue.put_nowait(items[static_cast<std::size_t>(i)]);
    CHECK(queue.full());
    for (int i = 0; i < 3; ++i) {
      CHECK(whole(queue.get_nowait(), item_size));
      ++received_after_kill;
    }
  }
  MESSAGE("whole items from killed producers: " << received);
  CHECK(received_after_kill == 150);
}

TEST_CASE("Queue: a consumer SIGKILLed in the middle of get loses at most the item it took") {
  constexpr std::size_t item_size = 8 << 20;
  mp::Queue<std::string> queue;
  const std::string item = patterned(item_size, 99);
  auto taken = mp::detail::make_shared_object<std::atomic<int>>("test", 0);
  auto torn = mp::detail::make_shared_object<std::atomic<int>>("test", 0);
  std::mt19937 random(777);
  int put = 0;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 4; ++i, ++put) queue.put(item);
    taken->store(0);
    int before = static_cast<int>(queue.qsize());
    mp::Process consumer([&] {
      for (;;) {
        std::string got = queue.get(30s);
        if (!whole(got, item_size)) torn->fetch_add(1);
        taken->fetch_add(1);
      }
    });
    consumer.start();
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 20000));
    consumer.kill();
    consumer.join(patience);
    REQUIRE(consumer.exitcode() == -SIGKILL);
    // The next caller takes the dead taker's lock over within a liveness slice.
    CHECK(elapsed_in([&] { core_of(queue).join(mp::detail::Deadline::now()); }) <
          100ms * test_support::sanitizer_slowdown);
    int left = static_cast<int>(queue.qsize());
    int lost = before - left - taken->load();
    CHECK(lost >= 0);
    CHECK(lost <= 1);
    // What is left is whole; the queue takes new items.
    queue.put(item);
    for (int i = 0; i <= left; ++i) REQUIRE(whole(queue.get(5s), item_size));
    CHECK(queue.empty());
  }
  CHECK(torn->load() == 0);
}

TEST_CASE("JoinableQueue: a producer killed mid-put leaves unfinished equal to what was put") {
  mp::JoinableQueue<std::string> queue;
  const std::string item = patterned(4 << 20, 5);
  std::mt19937 random(4242);
  for (int round = 0; round < 20; ++round) {
    mp::Process producer([&] {
      for (;;) queue.put(item);
    });
    producer.start();
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 15000));
    producer.kill();
    producer.join(patience);
    std::size_t left = queue.qsize();
    for (std::size_t i = 0; i < left; ++i) {
      CHECK(whole(queue.get_nowait(), item.size()));
      queue.task_done();
    }
    CHECK(queue.join(1s));  // every counted task was a visible item
    CHECK_THROWS_AS(queue.task_done(), mp::ValueError);
  }
}

// ---- Size ----

TEST_CASE("Queue: items of 64 MiB and more travel whole") {
  mp::Queue<std::string> queue;
  const std::string big = patterned(64 << 20, 64);
  const std::string bigger = patterned((100 << 20) + 12345, 100);
  CHECK(run_child([&] {
          queue.put(big);
          queue.put(bigger);
        }) == 0);
  CHECK(queue.qsize() == 2);
  CHECK(queue.get(10s) == big);
  CHECK(queue.get(10s) == bigger);
  // And from parent to child.
  queue.put(bigger);
  CHECK(run_child([&] { mp::exit(whole(queue.get(30s), bigger.size()) ? 0 : 2); }) == 0);
}

TEST_CASE("QueueCore: memory of consumed records goes back") {
  mp::detail::QueueCore core(0, "Queue");
  CHECK(core.resident_chunks() == 1);  // the first head chunk, without pages until the first put
  const std::string big = patterned(20 << 20, 1);
  for (int i = 0; i < 4; ++i) CHECK(core.put(big, mp::detail::Deadline::now()));
  CHECK(core.resident_chunks() >= 20);
  std::string out;
  for (int i = 0; i < 4; ++i) CHECK(core.get(out, mp::detail::Deadline::now()));
  CHECK(core.resident_chunks() <= 1);
  // Small steady traffic reuses one chunk instead of walking new memory.
  for (int i = 0; i < 100000; ++i) {
    core.put("small item", mp::detail::Deadline::now());
    core.get(out, mp::detail::Deadline::now());
  }
  CHECK(core.resident_chunks() <= 1);
}

// The Pool's result queue: a future's result() watches it and takes its own
// result, and the result thread asleep on it is woken only for what the
// watcher leaves. Every record must still reach a reader.
TEST_CASE("QueueCore: a watched put leaves the sleeping readers to the watcher, who hands on what it leaves") {
  using mp::detail::Deadline;
  mp::detail::QueueCore core(0, "Queue", false);
  std::atomic<int> got{0};
  std::thread reader([&] {
    std::string out;
    while (got.load() < 3 && core.get(out, Deadline::after(patience))) ++got;
  });
  auto put_from_child = [&](bool unless_watched) {
    return run_child([&] {
      bool put = unless_watched ? core.put_unless_watched("record", Deadline::never())
                                : core.put("record", Deadline::never());
      mp::exit(put ? 0 : 2);
    });
  };
  std::this_thread::sleep_for(200ms);  // the reader is asleep
  core.watch();
  REQUIRE(put_from_child(true) == 0);
  std::this_thread::sleep_for(200ms);
  CHECK(got.load() == 0);  // not woken: the record is the watcher's to take or hand on
  core.wake_readers();
  CHECK(test_support::within(5s, [&] { return got.load() == 1; }));
  std::this_thread::sleep_for(200ms);
  REQUIRE(put_from_child(true) == 0);
  core.unwatch();  // the record is still there: the readers are woken for it
  CHECK(test_support::within(5s, [&] { return got.load() == 2; }));
  std::this_thread::sleep_for(200ms);
  core.watch();
  REQUIRE(put_from_child(false) == 0);  // a plain put wakes them, watched or not
  CHECK(test_support::within(5s, [&] { return got.load() == 3; }));
  core.unwatch();
  reader.join();
  CHECK(core.qsize() == 0);
}

// Found by fuzz_queue after 16,000 inputs on one queue: once the address space
// had been walked through, a new run could be placed over the later chunks of
// a live multi-chunk record, which then came out overwritten.
TEST_CASE("QueueCore: at the end of the address space, live multi-chunk records are never reused") {
  mp::detail::QueueCore core(0, "Queue");
  core.limit_address_space(8);
  constexpr std::size_t chunk = mp::detail::QueueCore::chunk_bytes;
  const auto now = mp::detail::Deadline::now();
  const std::string x = patterned(chunk * 5 / 4, 1), y = patterned(chunk * 9 / 4, 2),
                    z = patterned(chunk * 5 / 4, 3);
  // Chunk 0 is the first head chunk; each of these takes a run of its own.
  REQUIRE(core.put(x, now));  // chunks 1-2
  REQUIRE(core.put(y, now));  // chunks 3-5
  REQUIRE(core.put(z, now));  // chunks 6-7
  // Two adjacent free chunks do not exist: chunks 2, 4-5 and 7, which look
  // unused, belong to live records.
  CHECK_THROWS_AS(core.put(x, now), mp::OSError);
  std::string out;
  for (const std::string* expected : {&x, &y, &z}) {
    REQUIRE(core.get(out, now));
    CHECK(out == *expected);
  }
  CHECK(core.put(y, now));  // the freed chunks serve again
  REQUIRE(core.get(out, now));
  CHECK(out == y);
}

// ---- A live holder of a lock: every timed call keeps its deadline ----

namespace {

constexpr std::size_t stopped_item_size = 256 << 20;

// Runs `body` in a child that raises `started` just before its locked call
// (or inside it), stops it (SIGSTOP) `into_the_call` later, runs `while_stopped`,
// then continues it and returns its exit code. A watchdog continues the
// child after 5 s, so a call that waits for the stopped holder returns late
// (and fails the timing checks) instead of hanging.
int with_stopped_child(const std::function<void(std::atomic<int>&)>& body, const std::function<void()>& while_stopped,
                       std::chrono::milliseconds into_the_call = 2ms) {
  auto started = mp::detail::make_shared_object<std::atomic<int>>("test", 0);
  mp::Process child([&] { body(*started); });
  child.start();
  const auto give_up = Clock::now() + patience;
  while (started->load() == 0 && Clock::now() < give_up) std::this_thread::sleep_for(100us);
  std::this_thread::sleep_for(into_the_call);
  const pid_t pid = static_cast<pid_t>(*child.pid());
  ::kill(pid, SIGSTOP);
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 500 && !done; ++i) std::this_thread::sleep_for(10ms);
    ::kill(pid, SIGCONT);
  });
  while_stopped();
  done = true;
  watchdog.join();
  ::kill(pid, SIGCONT);
  child.join(patience);
  if (child.is_alive()) {
    child.kill();
    child.join(10s);
  }
  return child.exitcode().value_or(-1000);
}

// The claim: a call returns at its deadline (100 ms, or at once for _nowait);
// the margin is for a loaded machine.
constexpr auto deadline_margin = 400ms;

}  // namespace

TEST_CASE("Queue: timed and _nowait calls keep their deadline while a stopped producer holds the put lock") {
  mp::Queue<std::string> queue(4);
  // The child cannot say when it holds the put lock, so a probe tells: with
  // room in the queue, put_nowait fails only while the lock is held. On a
  // loaded machine the child may not have reached it yet: then the probe is
  // taken back and the round is run again, stopping the child later.
  bool held = false;
  for (auto into_the_put : {2ms, 20ms, 100ms, 300ms}) {
    int code = with_stopped_child(
        [&](std::atomic<int>& started) {
          const std::string big = patterned(stopped_item_size, 11);
          started = 1;
          queue.put(big, 60s);
          mp::exit(0);
        },
        [&] {
          REQUIRE_MESSAGE(queue.qsize() == 0, "the child's put finished before it was stopped");
          try {
            queue.put_nowait("probe");
            CHECK(queue.get_nowait() == "probe");
            return;  // the child had not taken the lock yet
          } catch (const mp::Full&) {
            held = true;
          }
          CHECK(elapsed_in([&] { CHECK_THROWS_AS(queue.put("x", 100ms), mp::Full); }) < 100ms + deadline_margin);
          CHECK(elapsed_in([&] { CHECK_THROWS_AS(queue.put_nowait("x"), mp::Full); }) < deadline_margin);
          CHECK(elapsed_in([&] { CHECK_THROWS_AS(queue.get(100ms), mp::Empty); }) < 100ms + deadline_margin);
          CHECK(elapsed_in([&] { CHECK_THROWS_AS(queue.get_nowait(), mp::Empty); }) < deadline_margin);
          CHECK(queue.qsize() == 0);  // the calls that timed out changed nothing
        },
        into_the_put);
    CHECK(code == 0);
    // Continued, the child finished its put; everything works again.
    CHECK(whole(queue.get(10s), stopped_item_size));
    if (held) break;
  }
  REQUIRE_MESSAGE(held, "the child never held the put lock when stopped");
  queue.put_nowait("x");
  CHECK(queue.get_nowait() == "x");
  CHECK(queue.empty());
}

TEST_CASE("Queue: timed and _nowait calls keep their deadline while a stopped consumer holds the get lock") {
  mp::Queue<std::string> queue;
  queue.put(patterned(stopped_item_size, 12));
  queue.put("next");
  int code = with_stopped_child(
      [&](std::atomic<int>& started) {
        // Raised under the get lock, before the 256 MiB record is decoded.
        bool whole_item = false;
        bool got = core_of(queue).get([&](std::string_view record) {
          started = 1;
          whole_item = whole(mp::detail::loads<std::string>(record, "test"), stopped_item_size);
        }, mp::detail::Deadline::after(60s));
        mp::exit(got && whole_item ? 0 : 2);
      },
      [&] {
        REQUIRE_MESSAGE(queue.qsize() == 2, "the child's get finished before it was stopped");
        CHECK(elapsed_in([&] { CHECK_THROWS_AS(queue.get(100ms), mp::Empty); }) < 100ms + deadline_margin);
        CHECK(elapsed_in([&] { CHECK_THROWS_AS(queue.get_nowait(), mp::Empty); }) < deadline_margin);
        CHECK(elapsed_in([&] { queue.put_nowait("after"); }) < deadline_margin);  // producers go on
        CHECK(queue.qsize() == 3);
      });
  CHECK(code == 0);
  CHECK(queue.get(10s) == "next");
  CHECK(queue.get_nowait() == "after");
  CHECK(queue.empty());
}

// ---- Memory exhaustion: an error from put, not SIGBUS ----

// The failure is injected at the system-call door (fallocate on the memfd);
// docs/reliability.md says how a real one (a memory cgroup) was checked.
TEST_CASE("Queue.put: the kernel refusing a chunk's memory is an OSError naming the queue, queue unchanged") {
  mp::Queue<std::string> queue;
  const std::string big = patterned(5 << 20, 13);  // a run of 3 chunks
  // The first put reserves the first chunk.
  mp::detail::inject_fault("fallocate", ENOMEM);
  try {
    queue.put("first");
    FAIL("put did not report the refused memory");
  } catch (const mp::OSError& error) {
    CHECK(error.code() == ENOMEM);
    CHECK(std::string(error.what()).find("Queue.put") != std::string::npos);
  }
  CHECK(queue.empty());
  queue.put("first");
  // A new run for a large record.
  mp::detail::inject_fault("fallocate", ENOSPC);
  try {
    queue.put(big);
    FAIL("put did not report the refused memory");
  } catch (const mp::OSError& error) {
    CHECK(error.code() == ENOSPC);
    CHECK(std::string(error.what()).find("bytes") != std::string::npos);
  }
  mp::detail::clear_faults();
  CHECK(queue.qsize() == 1);
  CHECK(core_of(queue).resident_chunks() == 1);  // the refused run went back
  queue.put(big);
  CHECK(queue.get_nowait() == "first");
  CHECK(queue.get_nowait() == big);
  CHECK(queue.empty());
}

TEST_CASE("Queue: 1 GiB put before any consumer starts, without blocking [slow]") {
  constexpr std::size_t item_size = 64 << 20;
  constexpr int items = 16;  // 1 GiB
  mp::Queue<std::string> queue;
  const std::string item = patterned(item_size, 7);
  // The producer puts everything and exits before the consumer exists.
  long shmem_before = shmem_kib();
  CHECK(run_child([&] {
          for (int i = 0; i < items; ++i) queue.put_nowait(item);  // Full would fail the child
        }) == 0);
  CHECK(queue.qsize() == items);
  long shmem_full = shmem_kib();
  CHECK(shmem_full - shmem_before > 900 * 1024);
  CHECK(run_child([&] {
          for (int i = 0; i < items; ++i)
            if (queue.get_nowait() != item) mp::exit(2);
          mp::exit(queue.empty() ? 0 : 3);
        }) == 0);
  CHECK(queue.empty());
  // The memory went back (system-wide counter: bounded generously).
  CHECK(shmem_full - shmem_kib() > 800 * 1024);
}

// ---- Nothing named is left behind ----

namespace {

// The paths of this process's shared mappings (/proc/self/maps): a memfd
// shows as "/memfd:NAME (deleted)", a POSIX segment as "/dev/shm/NAME".
std::vector<std::string> mapped_paths() {
  std::vector<std::string> paths;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    const auto slash = line.find('/');
    if (slash != std::string::npos) paths.push_back(line.substr(slash));
  }
  return paths;
}

int mappings_starting(const std::string& prefix) {
  int count = 0;
  for (const std::string& path : mapped_paths()) count += path.rfind(prefix, 0) == 0;
  return count;
}

}  // namespace

// Queues can leave nothing in /dev/shm because they create no named object
// at all: their memory is a memfd, in this process and in a child alike.
TEST_CASE("Queue: its memory is an unnamed memfd, nothing in /dev/shm, in parent and child") {
  const int dev_shm_before = mappings_starting("/dev/shm/");
  const int memfd_before = mappings_starting("/memfd:mp-queue");
  mp::Queue<std::string> queue;
  mp::JoinableQueue<int> joinable;
  queue.put(patterned(3 << 20, 1));
  joinable.put(1);
  CHECK(mappings_starting("/memfd:mp-queue") == memfd_before + 2);
  CHECK(mappings_starting("/dev/shm/") == dev_shm_before);
  CHECK(run_child([&] {
          queue.put("from the child");
          mp::exit(mappings_starting("/dev/shm/") == dev_shm_before ? 0 : 2);
        }) == 0);
  CHECK(queue.qsize() == 2);
}

// The one named object mp makes, a SharedMemory, is unlinked once its
// creator is killed: the name (which the test itself made) goes.
TEST_CASE("SharedMemory: a name created by a child SIGKILLed before unlinking is gone from /dev/shm") {
  const std::string name = "psm_queue_test_" + std::to_string(::getpid());
  const std::filesystem::path path = "/dev/shm/" + name;
  auto created = mp::detail::make_shared_object<std::atomic<int>>("test", 0);
  mp::Process creator([&] {
    mp::SharedMemory memory(name, true, 4096);
    created->store(1);
    for (;;) ::pause();
  });
  creator.start();
  const auto give_up = Clock::now() + patience;
  while (created->load() == 0 && Clock::now() < give_up) std::this_thread::sleep_for(1ms);
  REQUIRE(std::filesystem::exists(path));
  creator.kill();
  creator.join(patience);
  const auto killed = Clock::now();
  while (std::filesystem::exists(path) && Clock::now() - killed < 5s) std::this_thread::sleep_for(1ms);
  CHECK_FALSE(std::filesystem::exists(path));
  if (std::filesystem::exists(path)) std::filesystem::remove(path);
}

TEST_CASE("repr and operator<< of the queues: kind, maxsize and the exact qsize, or closed") {
  mp::Queue<int> queue(5);
  queue.put(1);
  queue.put(2);
  CHECK(queue.repr() == "<Queue maxsize=5 qsize=2>");
  CHECK(run_child([&] { queue.put(3); }) == 0);
  std::ostringstream printed;
  printed << queue;
  CHECK(printed.str() == "<Queue maxsize=5 qsize=3>");
  mp::JoinableQueue<std::string> joinable;
  joinable.put("task");
  CHECK(joinable.repr() == "<JoinableQueue maxsize=0 qsize=1>");
  mp::SimpleQueue<int> simple;
  CHECK(simple.repr() == "<SimpleQueue qsize=0>");
  simple.put(7);
  CHECK(simple.repr() == "<SimpleQueue qsize=1>");
  mp::Queue<int> handle = queue;
  queue.close();
  CHECK(handle.repr() == "<Queue closed>");
  simple.close();
  CHECK(simple.repr() == "<SimpleQueue closed>");
}
