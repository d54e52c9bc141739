// ThreadPool: Python's multiprocessing.pool.ThreadPool (multiprocessing.dummy)
// on threads, with Pool's methods; part of the pool suite (and its TSan run).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "mp/connection.hpp"
#include "mp/pool.hpp"
#include "mp/process.hpp"
#include "mp/queues.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/synchronize.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using test_support::error_text;

namespace {

constexpr auto patience = 60s;  // the bound on every wait: a bug fails, never hangs

int half_of_even(int x) {
  if (x % 2 != 0) throw std::invalid_argument("odd: " + std::to_string(x));
  return x / 2;
}

}  // namespace

TEST_CASE("ThreadPool: Pool's methods on threads, capturing lambdas included") {
  mp::ThreadPool pool(3);
  CHECK(pool.processes() == 3);
  int offset = 100;  // captured by reference: the tasks run in this process
  auto add_offset = [&offset](int x) { return x + offset; };
  CHECK(pool.apply(add_offset, 1) == 101);
  CHECK(pool.apply_async(add_offset, 2).get(patience) == 102);

  std::vector<int> inputs(50);
  for (int i = 0; i < 50; ++i) inputs[static_cast<std::size_t>(i)] = i;
  std::vector<int> expected;
  for (int i : inputs) expected.push_back(i + 100);
  for (std::size_t chunksize : {0, 1, 7, 100}) {
    CAPTURE(chunksize);
    CHECK(pool.map(add_offset, inputs, chunksize) == expected);
    CHECK(pool.map_async(add_offset, inputs, chunksize).get(patience) == expected);
  }
  std::vector<std::pair<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  auto multiply = [](int a, int b) { return a * b; };
  CHECK(pool.starmap(multiply, pairs) == std::vector<int>{2, 12, 30});
  CHECK(pool.starmap_async(multiply, pairs).get(patience) == std::vector<int>{2, 12, 30});

  std::vector<int> ordered;
  for (int value : pool.imap(add_offset, inputs, 4)) ordered.push_back(value);
  CHECK(ordered == expected);
  std::multiset<int> unordered;
  for (int value : pool.imap_unordered(add_offset, inputs)) unordered.insert(value);
  CHECK(unordered == std::multiset<int>(expected.begin(), expected.end()));

  // The tasks ran on the pool's threads, not the caller's, and on no more than 3.
  std::mutex mutex;
  std::set<std::thread::id> threads;
  pool.map([&](int) {
    std::this_thread::sleep_for(2ms);
    std::lock_guard guard(mutex);
    threads.insert(std::this_thread::get_id());
    return 0;
  }, inputs, 1);
  CHECK(threads.count(std::this_thread::get_id()) == 0);
  CHECK(threads.size() >= 1);
  CHECK(threads.size() <= 3);
}

TEST_CASE("ThreadPool: a task's exception arrives as itself, at its position") {
  mp::ThreadPool pool(2);
  CHECK(error_text<std::invalid_argument>([&] { pool.apply(half_of_even, 3); }) == "odd: 3");
  auto result = pool.apply_async(half_of_even, 5);
  result.wait(patience);
  CHECK(result.ready());
  CHECK_FALSE(result.successful());
  CHECK_THROWS_AS(result.get(), std::invalid_argument);
  // map fails with the error at the lowest failing position.
  CHECK(error_text<std::invalid_argument>([&] { pool.map(half_of_even, std::vector<int>{2, 4, 7, 9}, 1); }) ==
        "odd: 7");
  // imap throws at the failing position and goes on after it.
  auto iterator = pool.imap(half_of_even, std::vector<int>{2, 3, 6});
  CHECK(iterator.next(patience) == 1);
  CHECK_THROWS_AS(iterator.next(patience), std::invalid_argument);
  CHECK(iterator.next(patience) == 3);
  CHECK(iterator.next(patience) == std::nullopt);
}

TEST_CASE("ThreadPool: process-shared objects and move-only values are plain arguments") {
  mp::ThreadPool pool(2);
  mp::Lock lock;
  mp::Queue<int> queue;
  pool.apply([](mp::Lock held, mp::Queue<int> out, int x) {
    std::lock_guard guard(held);
    out.put(x);
  }, lock, queue, 42);
  CHECK(queue.get(patience) == 42);
  auto boxed = pool.apply([](int x) { return std::make_unique<int>(x); }, 7);
  REQUIRE(boxed != nullptr);
  CHECK(*boxed == 7);
}

TEST_CASE("ThreadPool: every kind of process-shared handle is an argument as it is, in map and starmap too") {
  // Made before the child, which inherits them: what the pool's threads do
  // through their copies of the handles is what the child sees.
  mp::Lock lock;
  mp::Value<int, mp::Lock> locked(0, lock);  // a caller's Lock (Python: lock=lock)
  mp::Value<int> unlocked(0, false);         // lock=False
  mp::Array<int> cells(4);                   // its own RLock
  mp::RawValue<long> raw(0);
  mp::Event ready;
  auto [reader, writer] = mp::Pipe(false);
  mp::Process child([&] {
    if (!ready.wait(patience)) throw std::runtime_error("the pool never set the event");
    if (locked.load() != 210 || unlocked.load() != 7 || raw.load() != 5 || cells[3] != 4)
      throw std::runtime_error("the pool's writes are not in shared memory");
  });
  child.start();

  mp::ThreadPool pool(3);
  std::vector<std::tuple<mp::Value<int, mp::Lock>, int>> increments;
  for (int i = 1; i <= 20; ++i) increments.emplace_back(locked, i);
  auto add = [](mp::Value<int, mp::Lock> value, int n) {
    std::lock_guard guard(value.get_lock());
    value.value() += n;
    return n;
  };
  CHECK(pool.starmap(add, increments).size() == 20);
  std::vector<std::pair<mp::Array<int>, std::size_t>> positions;
  for (std::size_t i = 0; i < 4; ++i) positions.emplace_back(cells, i);
  pool.map([](std::pair<mp::Array<int>, std::size_t> at) {
    std::lock_guard guard(at.first.get_lock());
    at.first[at.second] = static_cast<int>(at.second) + 1;
    return 0;
  }, positions);
  pool.apply([](mp::Value<int> value, mp::RawValue<long>* counter) {
    value.store(7);
    counter->fetch_add(5);
  }, unlocked, &raw);
  pool.apply([](mp::Connection end) { end.send_bytes("from a pool thread"); }, writer);
  CHECK(reader.poll(patience));
  CHECK(reader.recv_bytes() == "from a pool thread");
  pool.apply([](mp::Event& event) { event.set(); }, std::ref(ready));

  child.join(patience);
  CHECK(child.exitcode() == 0);
  CHECK(locked.load() == 210);
}

TEST_CASE("ThreadPool: imap takes an endless input lazily") {
  mp::ThreadPool pool(2);
  std::atomic<int> taken{0};
  auto counted = std::views::iota(0) | std::views::transform([&taken](int x) {
                   ++taken;
                   return x;
                 });
  auto iterator = pool.imap([](int x) { return 2 * x; }, counted, 2);
  for (int i = 0; i < 10; ++i) CHECK(iterator.next(patience) == 2 * i);
  // A bounded window ahead of what was taken: 4 chunks per thread, 2 items each.
  CHECK(taken.load() <= 10 + 4 * 2 * 2 + 2);
  pool.terminate();
}

TEST_CASE("ThreadPool: callbacks get the value or the exception, one at a time") {
  mp::ThreadPool pool(4);
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> values{0};
  std::string error_message;
  auto on_value = [&](const int&) {
    if (inside.fetch_add(1) != 0) ++overlaps;
    std::this_thread::sleep_for(1ms);
    ++values;
    inside.fetch_sub(1);
  };
  auto on_error = [&](const std::exception& e) {
    if (inside.fetch_add(1) != 0) ++overlaps;
    error_message = e.what();
    inside.fetch_sub(1);
  };
  std::vector<mp::AsyncResult<int>> results;
  for (int i = 0; i < 40; ++i)
    results.push_back(pool.apply_async(mp::Callbacks{on_value, on_error}, half_of_even, 2 * i));
  auto failing = pool.apply_async(mp::Callbacks{on_value, on_error}, half_of_even, 1);
  for (auto& result : results) CHECK(result.wait(patience));
  CHECK(failing.wait(patience));
  CHECK(values.load() == 40);
  CHECK(overlaps.load() == 0);
  CHECK(error_message == "odd: 1");
  std::vector<int> whole;
  pool.map_async(mp::Callbacks{[&](const std::vector<int>& v) { whole = v; }, nullptr}, half_of_even,
                 std::vector<int>{2, 4})
      .wait(patience);
  CHECK(whole == std::vector<int>{1, 2});
  // A callback that throws: its exception becomes the result; the pool goes on.
  auto thrown = pool.apply_async(
      mp::Callbacks{[](const int&) { throw std::runtime_error("callback failed"); }, nullptr},
      half_of_even, 2);
  CHECK(error_text<std::runtime_error>([&] { thrown.get(patience); }) == "callback failed");
  CHECK(pool.apply(half_of_even, 8) == 4);
}

TEST_CASE("ThreadPool: an error callback of std::exception& gets the error as it is, of mp::Error& a plain local mp::Error") {
  mp::ThreadPool pool(2);
  std::mutex mutex;
  std::vector<std::string> typed, plain;
  auto on_any = [&](const std::exception& e) {
    std::lock_guard guard(mutex);
    bool is_invalid_argument = dynamic_cast<const std::invalid_argument*>(&e) != nullptr;
    bool is_remote = dynamic_cast<const mp::RemoteError*>(&e) != nullptr;
    typed.push_back(std::string(is_invalid_argument ? "invalid_argument " : "other ") +
                    (is_remote ? "remote " : "local ") + e.what());
  };
  auto on_mp_error = [&](const mp::Error& e) {
    std::lock_guard guard(mutex);
    bool is_value_error = dynamic_cast<const mp::ValueError*>(&e) != nullptr;
    bool is_remote = dynamic_cast<const mp::RemoteError*>(&e) != nullptr;
    plain.push_back(std::string(is_value_error ? "ValueError " : "Error ") +
                    (is_remote ? "remote " : "local ") + e.what());
  };
  auto refuse = [](int) -> int { throw mp::ValueError("refused"); };
  CHECK_THROWS_AS(pool.apply_async(mp::Callbacks{nullptr, on_any}, half_of_even, 3).get(patience),
                  std::invalid_argument);
  CHECK_THROWS_AS(pool.apply_async(mp::Callbacks{nullptr, on_mp_error}, half_of_even, 5).get(patience),
                  std::invalid_argument);
  CHECK_THROWS_AS(
      pool.map_async(mp::Callbacks{nullptr, on_mp_error}, half_of_even, std::vector<int>{2, 7}).get(patience),
      std::invalid_argument);
  CHECK_THROWS_AS(pool.map_async(mp::Callbacks{nullptr, on_mp_error}, refuse, std::vector<int>{1}).get(patience),
                  mp::ValueError);
  CHECK_THROWS_AS(pool.apply_async(mp::Callbacks{nullptr, on_any}, refuse, 1).get(patience), mp::ValueError);
  std::lock_guard guard(mutex);
  CHECK(typed == std::vector<std::string>{"invalid_argument local odd: 3", "other local refused"});
  CHECK(plain == std::vector<std::string>{"Error local std::invalid_argument: odd: 5",
                                          "Error local std::invalid_argument: odd: 7",
                                          "ValueError local refused"});
}

TEST_CASE("ThreadPool: terminate cancels the tasks not begun and waits for the running one") {
  mp::ThreadPool pool(1);
  std::atomic<bool> started{false};
  auto running = pool.apply_async([&] {
    started = true;
    std::this_thread::sleep_for(200ms);
    return 1;
  });
  std::vector<mp::AsyncResult<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(pool.apply_async([] { return 2; }));
  while (!started) std::this_thread::sleep_for(1ms);
  pool.terminate();
  CHECK(running.ready());  // terminate waited for it
  CHECK(running.get() == 1);
  for (auto& result : queued) {
    CHECK(result.ready());
    CHECK_THROWS_AS(result.get(), mp::CancelledError);
  }
  CHECK_THROWS_AS(pool.apply_async([] { return 3; }), mp::ValueError);
  pool.join();
}

TEST_CASE("ThreadPool: close and join finish the work; the destructor does too") {
  std::atomic<int> done{0};
  {
    mp::ThreadPool pool(2);
    for (int i = 0; i < 20; ++i)
      pool.apply_async([&done] {
        std::this_thread::sleep_for(1ms);
        ++done;
      });
    CHECK(error_text<mp::ValueError>([&] { pool.join(); }).find("still running") != std::string::npos);
    pool.close();
    CHECK_THROWS_AS(pool.apply_async([] {}), mp::ValueError);
    pool.join();
    CHECK(done.load() == 20);
  }
  {
    mp::ThreadPool pool(2);
    for (int i = 0; i < 20; ++i) pool.apply_async([&done] { ++done; });
  }
  CHECK(done.load() == 40);
}

TEST_CASE("ThreadPool: join from a callback and bad options are refused with ValueError") {
  mp::ThreadPool pool(1);
  std::string message;
  pool.apply_async(
          mp::Callbacks{[&] { message = error_text<mp::ValueError>([&] { pool.join(); }); }, nullptr},
          [] {})
      .wait(patience);
  CHECK(message.find("from one of the pool's threads") != std::string::npos);
  CHECK(error_text<mp::ValueError>([] { mp::ThreadPool(mp::PoolOptions{2, {}, 5}); })
            .find("maxtasksperchild") != std::string::npos);
  CHECK(error_text<mp::ValueError>([] { mp::ThreadPool(0); }).find("at least 1") != std::string::npos);
}

TEST_CASE("ThreadPool: the initializer runs once in every thread; one that throws fails the constructor") {
  std::mutex mutex;
  std::set<std::thread::id> initialized;
  {
    mp::ThreadPool pool(mp::PoolOptions{3, [&] {
                                          std::lock_guard guard(mutex);
                                          initialized.insert(std::this_thread::get_id());
                                        },
                                        {}});
    std::lock_guard guard(mutex);
    CHECK(initialized.size() == 3);
  }
  CHECK(error_text<std::runtime_error>([] {
          mp::ThreadPool(mp::PoolOptions{2, [] { throw std::runtime_error("no setup"); }, {}});
        }) == "no setup");
}
