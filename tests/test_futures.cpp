// ProcessPoolExecutor and Future: the behaviours of CPython's
// test_concurrent_futures that apply to a process executor (executor.py,
// test_process_pool.py, test_shutdown.py, test_wait.py, test_as_completed.py,
// test_init.py, test_future.py), and the broken worker Python cannot survive.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mp/detail/shared_mapping.hpp"
#include "mp/futures.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto patience = 60s;  // the bound on every wait: a bug fails, never hangs

int sqr(int x) { return x * x; }
int mul(int x, int y) { return x * y; }
bool is_even(int x) { return x % 2 == 0; }
int own_pid() { return static_cast<int>(::getpid()); }
void sleep_ms(int milliseconds) { std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds)); }
int sleep_then(int milliseconds) {
  sleep_ms(milliseconds);
  return milliseconds;
}
int divide_ten_by(int x) {
  if (x == 0) throw std::domain_error("division by zero");
  return 10 / x;
}
int throw_broken_pool(int) { throw mp::BrokenProcessPool("thrown by the task itself", 7); }
int die_by_signal(int signal_number) {
  ::raise(signal_number);
  return 0;
}

long long ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// A task that announces its pid in shared memory, then sleeps.
std::atomic<int>* announced_pid = nullptr;
int announce_and_sleep(int milliseconds) {
  announced_pid->store(static_cast<int>(::getpid()));
  sleep_ms(milliseconds);
  return 1;
}

std::atomic<int>* initializer_runs = nullptr;
int initialized_value = 0;
int read_initialized() { return initialized_value; }

}  // namespace

TEST_SUITE_BEGIN("futures");

TEST_CASE("submit: result, arguments, void results, typed task errors") {
  mp::ProcessPoolExecutor executor(2);
  CHECK(executor.max_workers() == 2);
  CHECK(executor.submit(sqr, 8).result(patience) == 64);
  CHECK(executor.submit(mul, 2, 8).result(patience) == 16);
  auto nothing = executor.submit(sleep_ms, 1);
  nothing.result(patience);
  CHECK(nothing.done());
  CHECK_FALSE(nothing.exception(patience));

  auto failing = executor.submit(divide_ten_by, 0);
  CHECK_THROWS_WITH_AS(failing.result(patience), "division by zero", std::domain_error);
  std::exception_ptr error = failing.exception(patience);
  REQUIRE(error);
  CHECK_THROWS_AS(std::rethrow_exception(error), mp::RemoteError);
  // A BrokenProcessPool thrown by a task crosses as itself (the remote table
  // knows it), with its exit code, and is told apart from a dead worker.
  try {
    executor.submit(throw_broken_pool, 0).result(patience);
    FAIL("no exception");
  } catch (const mp::BrokenProcessPool& e) {
    CHECK(dynamic_cast<const mp::RemoteError*>(&e) != nullptr);
    CHECK(e.exitcode() == 7);
    CHECK(std::string(e.what()) == "thrown by the task itself");
  }
}

TEST_CASE("bad arguments: max_workers, max_tasks_per_child, chunksize; submit after shutdown") {
  CHECK_THROWS_WITH_AS(mp::ProcessPoolExecutor(0),
                       "ProcessPoolExecutor: max_workers must be greater than 0, not 0",
                       mp::ValueError);
  CHECK_THROWS_AS(mp::ProcessPoolExecutor(-1), mp::ValueError);
  CHECK_THROWS_AS(mp::ProcessPoolExecutor(mp::ExecutorOptions{1, {}, 0}), mp::ValueError);
  mp::ProcessPoolExecutor executor(1);
  CHECK_THROWS_AS(executor.map(sqr, std::vector<int>{1, 2}, 0), mp::ValueError);
  executor.shutdown();
  CHECK_THROWS_WITH_AS(executor.submit(sqr, 2), "ProcessPoolExecutor.submit: Pool not running",
                       mp::ValueError);
  CHECK_THROWS_AS(executor.map(sqr, std::vector<int>{1}), mp::ValueError);
  executor.shutdown();  // twice is fine
}

TEST_CASE("map: input order for every chunksize, lazy results, errors at their position") {
  mp::ProcessPoolExecutor executor(2);
  std::vector<int> inputs(1000);
  for (int i = 0; i < 1000; ++i) inputs[static_cast<std::size_t>(i)] = i;
  std::vector<int> expected;
  for (int x : inputs) expected.push_back(x * x);
  for (std::size_t chunksize : {1, 2, 5, 1000, 5000}) {
    std::vector<int> got;
    for (int value : executor.map(sqr, inputs, chunksize, patience)) got.push_back(value);
    CHECK(got == expected);
  }
  // test_map_exception: the values before the error, then the error; Python's
  // iterator stops there, ours may go on.
  auto results = executor.map(divide_ten_by, std::vector<int>{1, 2, 0, 5}, 1, patience);
  CHECK(results.next() == 10);
  CHECK(results.next() == 5);
  CHECK_THROWS_WITH_AS(results.next(), "division by zero", std::domain_error);
  CHECK(results.next() == 2);
  CHECK_FALSE(results.next());
  // bool results (a std::vector<bool> of proxies inside) come out as bools.
  std::vector<bool> parity;
  for (bool even : executor.map(is_even, std::vector<int>{1, 2, 3, 4}, 3, patience)) parity.push_back(even);
  CHECK(parity == std::vector<bool>{false, true, false, true});
  // An empty input gives an empty range.
  CHECK_FALSE(executor.map(sqr, std::vector<int>{}, 1, patience).next());
}

TEST_CASE("map(timeout): TimeoutError once a result misses the deadline counted from the call") {
  mp::ProcessPoolExecutor executor(2);
  std::vector<int> results;
  auto start = Clock::now();
  auto it = executor.map(sleep_then, std::vector<int>{0, 0, 3000}, 1, 500ms);
  try {
    for (int value : it) results.push_back(value);
    FAIL("no TimeoutError");
  } catch (const mp::TimeoutError& e) {
    CHECK(std::string(e.what()).find("ProcessPoolExecutor.map") != std::string::npos);
  }
  CHECK(results == std::vector<int>{0, 0});
  auto waited = ms_since(start);
  MESSAGE("map timeout after " << waited << " ms");
  CHECK(waited >= 490);
  CHECK(waited < 1500);
}

TEST_CASE("result(timeout), done, running, cancel, cancelled") {
  auto started = mp::detail::make_shared_object<std::atomic<int>>("test", 0);
  announced_pid = started.get();
  mp::ProcessPoolExecutor executor(1);
  auto running = executor.submit(announce_and_sleep, 600);
  // The one worker holds two tasks (one running, one queued); the rest wait
  // in the executor, where they can be cancelled.
  auto queued = executor.submit(sqr, 3);
  std::vector<mp::Future<int>> waiting;
  for (int i = 0; i < 5; ++i) waiting.push_back(executor.submit(sqr, i));

  REQUIRE(test_support::within(5s, [&] { return started->load() != 0; }));
  CHECK(test_support::within(1s, [&] { return running.running(); }));  // the worker has begun it
  CHECK_FALSE(running.done());
  CHECK_FALSE(queued.running());
  CHECK_FALSE(waiting.back().running());

  auto start = Clock::now();
  CHECK_THROWS_AS(running.result(50ms), mp::TimeoutError);
  CHECK(ms_since(start) < 300);

  CHECK_FALSE(running.cancel());  // begun: Python's rule
  CHECK(waiting.back().cancel());
  CHECK(waiting.back().cancel());  // cancelling twice is fine
  CHECK(waiting.back().cancelled());
  CHECK(waiting.back().done());
  CHECK_FALSE(waiting.back().running());
  CHECK_THROWS_AS(waiting.back().result(patience), mp::CancelledError);
  CHECK_THROWS_AS(waiting.back().exception(patience), mp::CancelledError);

  CHECK(running.result(patience) == 1);
  CHECK(running.done());
  CHECK_FALSE(running.running());
  CHECK_FALSE(running.cancelled());
  CHECK_FALSE(running.cancel());  // done
  CHECK(queued.result(patience) == 9);
  for (int i = 0; i < 4; ++i) CHECK(waiting[static_cast<std::size_t>(i)].result(patience) == i * i);
}

TEST_CASE("add_done_callback: once, after the outcome; at once when done; a throwing one is contained") {
  mp::ProcessPoolExecutor executor(1);
  std::atomic<int> calls{0};
  std::atomic<int> seen{0};
  auto future = executor.submit(sleep_then, 200);
  future.add_done_callback([&](mp::Future<int>& f) {
    CHECK(f.done());
    seen = f.result();
    ++calls;
  });
  future.add_done_callback([](mp::Future<int>&) { throw std::runtime_error("callback trouble"); });
  future.add_done_callback([&](mp::Future<int>&) { ++calls; });
  CHECK(future.result(patience) == 200);
  CHECK(test_support::within(5s, [&] { return calls.load() == 2; }));
  CHECK(seen.load() == 200);
  bool ran_now = false;
  future.add_done_callback([&](mp::Future<int>& f) { ran_now = f.result() == 200; });
  CHECK(ran_now);
  // A cancelled future's callbacks run too.
  auto blocker = executor.submit(sleep_then, 300);
  auto second = executor.submit(sleep_then, 0);
  auto cancelled = executor.submit(sleep_then, 0);
  bool saw_cancel = false;
  cancelled.add_done_callback([&](mp::Future<int>& f) { saw_cancel = f.cancelled(); });
  REQUIRE(cancelled.cancel());
  CHECK(saw_cancel);
  CHECK(blocker.result(patience) == 300);
  CHECK(second.result(patience) == 0);
}

TEST_CASE("result() of a short task may deliver it itself, in its own thread, once") {
  mp::ProcessPoolExecutor executor(1);
  const auto caller = std::this_thread::get_id();
  // A quick result often reaches the head of the result queue while result()
  // still spins: it then books and delivers it itself, so the done-callbacks
  // run in the caller's thread (not at once at registration: `registering`).
  bool delivered_here = false;
  for (int i = 0; i < 2000 && !delivered_here; ++i) {
    auto future = executor.submit(sqr, i);
    std::atomic<int> calls{0};
    std::atomic<bool> registering{true}, here{false};
    future.add_done_callback([&](mp::Future<int>&) {
      here = std::this_thread::get_id() == caller && !registering;
      ++calls;
    });
    registering = false;
    REQUIRE(future.result(patience) == i * i);
    REQUIRE(test_support::within(5s, [&] { return calls.load() == 1; }));
    delivered_here = here;
  }
  CHECK(delivered_here);
  // Threads waiting at once, each for its own results, with the result
  // thread between them: each outcome lands once, in the right future.
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0}, callbacks{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        auto future = executor.submit(mul, t, i);
        future.add_done_callback([&](mp::Future<int>&) { ++callbacks; });
        if (future.result(patience) != t * i) ++wrong;
      }
    });
  for (auto& thread : threads) thread.join();
  CHECK(wrong.load() == 0);
  CHECK(test_support::within(5s, [&] { return callbacks.load() == 4 * 300; }));
}

TEST_CASE("a caller spinning in result() takes only its own result; the others' still come") {
  mp::ProcessPoolExecutor executor(2);
  // A result nobody waits for with result() lands while this thread spins in
  // result() for its own, watching the result queue, so the worker leaves the
  // result thread asleep: this thread must hand it on, or it, and this
  // thread's own result behind it, would wait for a put that never comes.
  constexpr auto bound = 10s;
  int wrong = 0;
  for (int round = 0; round < 20; ++round) {
    auto unwaited = executor.submit(sleep_then, 20);
    std::atomic<int> calls{0};
    unwaited.add_done_callback([&calls](mp::Future<int>&) { ++calls; });
    auto start = Clock::now();
    for (int i = 0; !unwaited.done() && Clock::now() - start < bound; ++i)
      if (executor.submit(sqr, i).result(bound) != i * i) ++wrong;
    REQUIRE(unwaited.result(bound) == 20);
    CHECK(test_support::within(5s, [&] { return calls.load() == 1; }));
  }
  CHECK(wrong == 0);
  // One thread waits for result after result while 400 other futures
  // complete: each is delivered once, callbacks included.
  std::atomic<int> wrong_in_thread{0};
  std::thread waiter([&] {
    for (int i = 0; i < 3000; ++i)
      if (executor.submit(sqr, i).result(patience) != i * i) ++wrong_in_thread;
  });
  std::vector<std::atomic<int>> calls(400);
  std::vector<mp::Future<int>> unwaited;
  for (int i = 0; i < 400; ++i) {
    unwaited.push_back(executor.submit(mul, i, 3));
    unwaited.back().add_done_callback([&calls, i](mp::Future<int>&) { ++calls[i]; });
    if (i % 50 == 0) sleep_ms(5);  // spread over the waiter's loop
  }
  auto split = mp::wait(unwaited, patience);
  waiter.join();
  CHECK(split.not_done.empty());
  CHECK(wrong_in_thread.load() == 0);
  for (int i = 0; i < 400; ++i) CHECK(unwaited[i].result(patience) == 3 * i);
  auto once = [&] {
    return std::all_of(calls.begin(), calls.end(), [](const std::atomic<int>& c) { return c.load() == 1; });
  };
  CHECK(test_support::within(5s, once));
  std::this_thread::sleep_for(100ms);  // a second delivery would come by now
  CHECK(once());
}

TEST_CASE("a worker that dies while its caller spins in result(): BrokenProcessPool within a bound") {
  mp::ProcessPoolExecutor executor(2);
  // The task dies at once, so result() is still spinning (watching the
  // result queue) when the death is reported: the report wakes the result
  // thread, which fails the future.
  for (int i = 0; i < 10; ++i) {
    auto future = executor.submit(die_by_signal, SIGKILL);
    auto start = Clock::now();
    CHECK_THROWS_AS(future.result(patience), mp::BrokenProcessPool);
    auto latency = ms_since(start);
    CHECK(latency < 2000);
    CHECK(executor.submit(sqr, i).result(patience) == i * i);
  }
}

TEST_CASE("as_completed: completion order, finished futures, duplicates, timeout") {
  mp::ProcessPoolExecutor executor(2);
  auto slow = executor.submit(sleep_then, 400);
  auto fast = executor.submit(sleep_then, 0);
  auto order = mp::as_completed(std::vector<mp::Future<int>>{slow, fast}, patience);
  REQUIRE(order.size() == 2);
  CHECK(order[0].result() == 0);
  CHECK(order[1].result() == 400);
  // Already finished, and the same future twice (Python yields it once; the
  // vector keeps one entry per input).
  auto again = mp::as_completed(std::vector<mp::Future<int>>{fast, fast, slow});
  CHECK(again.size() == 3);
  // test_future_times_out: the finished ones would be yielded; the rest time out.
  auto long_one = executor.submit(sleep_then, 3000);
  auto start = Clock::now();
  CHECK_THROWS_WITH_AS(mp::as_completed(std::vector<mp::Future<int>>{fast, long_one}, 100ms),
                       "as_completed: 1 (of 2) futures unfinished after the timeout",
                       mp::TimeoutError);
  auto waited = ms_since(start);
  CHECK(waited >= 95);
  CHECK(waited < 400);
  CHECK(long_one.cancel() == false);
}

TEST_CASE("wait: FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED, timeout") {
  mp::ProcessPoolExecutor executor(3);
  SUBCASE("FIRST_COMPLETED") {
    auto fast = executor.submit(sleep_then, 0);
    auto slow = executor.submit(sleep_then, 1500);
    auto start = Clock::now();
    auto split = mp::wait(std::vector<mp::Future<int>>{fast, slow}, patience, mp::FIRST_COMPLETED);
    CHECK(ms_since(start) < 1000);
    REQUIRE(split.done.size() == 1);
    CHECK(split.done[0].result() == 0);
    CHECK(split.not_done.size() == 1);
    CHECK(slow.result(patience) == 1500);
  }
  SUBCASE("FIRST_EXCEPTION returns at the first failure, not at the end") {
    auto fast = executor.submit(sleep_then, 0);
    auto failing = executor.submit(divide_ten_by, 0);
    auto slow = executor.submit(sleep_then, 1500);
    auto start = Clock::now();
    auto split = mp::wait(std::vector<mp::Future<int>>{fast, failing, slow}, patience,
                          mp::FIRST_EXCEPTION);
    CHECK(ms_since(start) < 1000);
    // `fast` may or may not be in yet; the failure is, the slow one is not.
    CHECK(split.done.size() + split.not_done.size() == 3);
    CHECK(std::ranges::any_of(split.done, [](auto& f) { return f.exception() != nullptr; }));
    REQUIRE(split.not_done.size() >= 1);
    CHECK(split.not_done.back().done() == false);
    CHECK(slow.result(patience) == 1500);
  }
  SUBCASE("FIRST_EXCEPTION without a failure waits for all") {
    auto a = executor.submit(sleep_then, 0);
    auto b = executor.submit(sleep_then, 200);
    auto split = mp::wait(std::vector<mp::Future<int>>{a, b}, patience, mp::FIRST_EXCEPTION);
    CHECK(split.done.size() == 2);
    CHECK(split.not_done.empty());
  }
  SUBCASE("ALL_COMPLETED, the default") {
    std::vector<mp::Future<int>> fs;
    for (int ms : {0, 100, 200, 300}) fs.push_back(executor.submit(sleep_then, ms));
    fs.push_back(executor.submit(divide_ten_by, 0));
    auto split = mp::wait(fs);
    CHECK(split.done.size() == 5);
    CHECK(split.not_done.empty());
  }
  SUBCASE("timeout: returns the partial split, throws nothing") {
    auto fast = executor.submit(sleep_then, 0);
    auto slow = executor.submit(sleep_then, 3000);
    REQUIRE(fast.result(patience) == 0);
    auto start = Clock::now();
    auto split = mp::wait(std::vector<mp::Future<int>>{fast, slow}, 200ms);
    auto waited = ms_since(start);
    CHECK(waited >= 195);
    CHECK(waited < 500);
    CHECK(split.done.size() == 1);
    CHECK(split.not_done.size() == 1);
    executor.shutdown(false, true);
  }
}

TEST_CASE("shutdown: cancel_futures cancels the waiting tasks, the others finish") {
  mp::ProcessPoolExecutor executor(2);
  std::vector<mp::Future<void>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(executor.submit(sleep_ms, 100));
  executor.shutdown(true, true);
  std::size_t cancelled = 0;
  for (auto& f : fs) {
    if (f.cancelled()) {
      ++cancelled;
      CHECK_THROWS_AS(f.result(patience), mp::CancelledError);
    } else {
      CHECK(f.done());
      CHECK_FALSE(f.exception(patience));
    }
  }
  MESSAGE(cancelled << " of 50 cancelled");
  CHECK(cancelled > 20);
  CHECK(cancelled < 50);
}

TEST_CASE("shutdown(wait=false) returns at once; the work still finishes") {
  mp::ProcessPoolExecutor executor(1);
  auto future = executor.submit(sleep_then, 400);
  auto start = Clock::now();
  executor.shutdown(false);
  CHECK(ms_since(start) < 100);
  CHECK_FALSE(future.done());
  CHECK(future.result(patience) == 400);
  CHECK_THROWS_AS(executor.submit(sqr, 1), mp::ValueError);
}

TEST_CASE("a worker killed mid-task: BrokenProcessPool within 300 ms, the executor stays usable") {
  auto pid = mp::detail::make_shared_object<std::atomic<int>>("test", 0);
  announced_pid = pid.get();
  mp::ProcessPoolExecutor executor(2);
  auto victim = executor.submit(announce_and_sleep, 30'000);
  auto bystander = executor.submit(sleep_then, 300);
  REQUIRE(test_support::within(5s, [&] { return pid->load() != 0; }));
  auto killed_at = Clock::now();
  REQUIRE(::kill(pid->load(), SIGKILL) == 0);
  try {
    victim.result(patience);
    FAIL("no exception");
  } catch (const mp::BrokenProcessPool& e) {
    auto latency = ms_since(killed_at);
    MESSAGE("kill to BrokenProcessPool: " << latency << " ms");
    CHECK(latency < 300);
    CHECK(e.exitcode() == -SIGKILL);
    CHECK(dynamic_cast<const mp::RemoteError*>(&e) == nullptr);
    CHECK(std::string(e.what()).find("terminated abruptly") != std::string::npos);
  }
  CHECK(victim.done());
  CHECK_FALSE(victim.cancelled());
  CHECK(bystander.result(patience) == 300);  // Python fails every future here
  // Python's submit raises BrokenProcessPool from now on; ours works.
  CHECK(executor.submit(mul, 6, 7).result(patience) == 42);
  CHECK(test_support::within(5s, [&] { return executor.worker_pids().size() == 2; }));
  // A worker that kills itself in the middle of a map fails only its chunk
  // (every map here has a timeout: each wait of its iteration is bounded).
  auto results = executor.map(
      [](int s) { return s == 0 ? 1 : die_by_signal(s); }, std::vector<int>{0, 0, SIGKILL, 0}, 1,
      patience);
  CHECK(results.next() == 1);
  CHECK(results.next() == 1);
  CHECK_THROWS_AS(results.next(), mp::BrokenProcessPool);
  CHECK(results.next() == 1);
  CHECK(executor.submit(sqr, 5).result(patience) == 25);
}

TEST_CASE("an initializer runs in every worker; one that throws breaks the executor, as in Python") {
  SUBCASE("it runs") {
    mp::ProcessPoolExecutor executor(mp::ExecutorOptions{2, [] { initialized_value = 42; }, {}});
    CHECK(executor.submit(read_initialized).result(patience) == 42);
  }
  SUBCASE("it throws") {
    auto runs = mp::detail::make_shared_object<std::atomic<int>>("test", 0);
    initializer_runs = runs.get();
    mp::ProcessPoolExecutor executor(mp::ExecutorOptions{2, [] {
                                                           initializer_runs->fetch_add(1);
                                                           throw std::runtime_error("no database");
                                                         }, {}});
    std::string message;
    try {
      executor.submit(sqr, 2).result(patience);
      FAIL("no exception");
    } catch (const mp::BrokenProcessPool& e) {
      message = e.what();
    }
    CHECK(message.find("ProcessPoolExecutor: the pool is broken") == 0);
    CHECK(message.find("no database") != std::string::npos);
    // test_initializer: later submits raise BrokenProcessPool.
    CHECK_THROWS_AS(executor.submit(sqr, 2), mp::BrokenProcessPool);
    CHECK_THROWS_AS(executor.map(sqr, std::vector<int>{1}), mp::BrokenProcessPool);
    executor.shutdown();
  }
}

TEST_CASE("max_tasks_per_child: a worker is replaced after that many tasks, nothing lost") {
  mp::ProcessPoolExecutor executor(mp::ExecutorOptions{1, {}, 3});
  int original = executor.submit(own_pid).result(patience);
  CHECK(executor.submit(own_pid).result(patience) == original);
  CHECK(executor.submit(own_pid).result(patience) == original);
  int replacement = executor.submit(own_pid).result(patience);
  CHECK(replacement != original);
  // test_max_tasks_early_shutdown
  mp::ProcessPoolExecutor three(mp::ExecutorOptions{3, {}, 1});
  std::vector<mp::Future<int>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(three.submit(mul, i, i));
  three.shutdown();
  for (int i = 0; i < 6; ++i) CHECK(fs[static_cast<std::size_t>(i)].result(patience) == i * i);
}

TEST_SUITE_END();
