// The MPI programs of tests/test_mpi.cpp: mpirun starts this on every rank with
// a scenario name; rank 0 prints "ok <what>" lines, or "FAIL <what>" and exits
// 1. Built twice (MP_MPI_VARIANT 1 and 2) so that a launch of both is a launch
// of two different builds.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "mp/mpi.hpp"
#include "mp/pool.hpp"
#include "mp/process.hpp"

#ifndef MP_MPI_VARIANT
#define MP_MPI_VARIANT 1
#endif

namespace {

int failures = 0;
void expect(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok" : "FAIL", what);
  std::fflush(stdout);
  if (!ok) ++failures;
}

int rank_here() {
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  return rank ? std::atoi(rank) : -1;
}

int square(int x) { return x * x; }
int add(int a, int b) { return a + b + MP_MPI_VARIANT - 1; }
int where(int) { return rank_here(); }
void nothing(int) {}

struct Scale {
  int factor = 1;
  int operator()(int x) const { return factor * x; }
  template <class Archive>
  void serialize(Archive& archive) {
    archive(factor);
  }
};

int check_even(int x) {
  if (x % 2 != 0) throw std::invalid_argument("odd: " + std::to_string(x));
  return x;
}

std::size_t checksum(const std::string& bytes) {
  return std::accumulate(bytes.begin(), bytes.end(), std::size_t{0},
                         [](std::size_t sum, char c) { return sum * 31 + static_cast<unsigned char>(c); });
}
std::string big_string(std::size_t size) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i * 7 + i / 4096);
  return bytes;
}
std::size_t checksum_of(std::string bytes) { return checksum(bytes); }
std::string make_big(std::size_t size) { return big_string(size); }

int initialized_value = 0;
void initialize() { initialized_value = 42; }
void initialize_badly() { throw std::runtime_error("no database here"); }
int read_initialized(int) { return initialized_value; }

int slow_square(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return x * x;
}

// A fork Pool and a Process inside a worker rank.
int nested_pool_sum(int n) {
  mp::Pool pool(2);
  std::vector<int> items(static_cast<std::size_t>(n));
  std::iota(items.begin(), items.end(), 1);
  auto squares = pool.map(square, items);
  return std::accumulate(squares.begin(), squares.end(), 0);
}

// The worker on the last rank kills itself on its first task.
int die_on_last_rank(int x) {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  static bool first = true;
  if (size && rank_here() == std::atoi(size) - 1 && std::exchange(first, false)) {
    std::printf("killing rank %d\n", rank_here());
    std::fflush(stdout);
    ::kill(::getpid(), SIGKILL);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return x * x;
}

std::vector<int> range(int n) {
  std::vector<int> items(static_cast<std::size_t>(n));
  std::iota(items.begin(), items.end(), 0);
  return items;
}
std::vector<int> squares_of(int n) {
  std::vector<int> out;
  for (int x : range(n)) out.push_back(x * x);
  return out;
}

void shapes(mp::mpi::Pool& pool) {
  expect(pool.processes() >= 2, "processes");
  expect(pool.apply(square, 7) == 49, "apply function");
  expect(pool.apply([](int x) { return x + 1; }, 1) == 2, "apply captureless lambda");
  expect(pool.apply(Scale{3}, 5) == 15, "apply functor with state");
  expect(pool.apply(add, 2, 3) == 5, "apply two arguments");
  pool.apply(nothing, 1);
  std::atomic<int> called{0};
  auto async = pool.apply_async(mp::Callbacks{[&](const int& v) { called = v; }, nullptr}, square, 9);
  expect(async.get(std::chrono::seconds(30)) == 81 && called == 81, "apply_async with callback");
  expect(pool.map(square, range(1000)) == squares_of(1000), "map default chunks, in order");
  expect(pool.map(square, range(300), 1) == squares_of(300), "map chunksize 1, in order");
  expect(pool.map(square, std::vector<int>{}).empty(), "map of nothing");
  std::vector<std::tuple<int, int>> pairs;
  for (int i = 0; i < 100; ++i) pairs.emplace_back(i, 2 * i);
  auto sums = pool.starmap(add, pairs, 3);
  bool sums_ok = sums.size() == 100;
  for (int i = 0; i < 100 && sums_ok; ++i) sums_ok = sums[static_cast<std::size_t>(i)] == 3 * i;
  expect(sums_ok, "starmap");
  std::size_t list_size = 0;
  auto mapped = pool.map_async(
      mp::Callbacks{[&](const std::vector<int>& v) { list_size = v.size(); }, nullptr}, square,
      range(50), 4);
  expect(mapped.get(std::chrono::seconds(30)) == squares_of(50) && list_size == 50,
         "map_async with callback");
  auto star_async = pool.starmap_async(add, pairs);
  expect(star_async.get(std::chrono::seconds(30)).size() == 100, "starmap_async");
  std::vector<int> streamed;
  for (int v : pool.imap(square, range(200), 3)) streamed.push_back(v);
  expect(streamed == squares_of(200), "imap in order");
  std::vector<int> unordered;
  for (int v : pool.imap_unordered(square, range(200))) unordered.push_back(v);
  std::sort(unordered.begin(), unordered.end());
  expect(unordered == squares_of(200), "imap_unordered, all of them");
  auto ranks = pool.map(where, range(200), 1);
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  expect(ranks.size() == static_cast<std::size_t>(pool.processes()) && ranks.front() == 1,
         "tasks ran on every worker rank, none on rank 0");
}

void exceptions(mp::mpi::Pool& pool) {
  try {
    pool.apply(check_even, 3);
    expect(false, "apply of a throwing task throws");
  } catch (const std::invalid_argument& e) {
    expect(std::string(e.what()) == "odd: 3" && dynamic_cast<const mp::RemoteError*>(&e),
           "task exception as std::invalid_argument and RemoteError");
  }
  try {
    pool.map(check_even, std::vector<int>{2, 4, 5, 6, 7}, 1);
    expect(false, "map with throwing items throws");
  } catch (const std::invalid_argument& e) {
    expect(std::string(e.what()) == "odd: 5", "map fails with the error at the lowest position");
  }
  std::string seen;
  auto failed = pool.apply_async(
      mp::Callbacks{nullptr, [&](const std::exception& e) { seen = e.what(); }}, check_even, 1);
  failed.wait(std::chrono::seconds(30));
  expect(!failed.successful() && seen == "odd: 1", "error_callback");
  expect(pool.apply(square, 4) == 16, "the pool goes on after task errors");
}

// Short enough that an apply queued behind a worker's chunks comes back
// while its waiter still polls.
int slow_cube(int x) {
  std::this_thread::sleep_for(std::chrono::microseconds(100));
  return x * x * x;
}

// A waiter of apply() receives its own result (MpiCore::receive_own); a
// job's callbacks still run in the pool's thread, whoever waits.
void own_results(mp::mpi::Pool& pool) {
  bool right = true;
  for (int i = 0; i < 500; ++i) right = right && pool.apply(square, i % 1000) == (i % 1000) * (i % 1000);
  expect(right, "500 applies in a row, each its own value");

  const auto caller = std::this_thread::get_id();
  bool elsewhere = true;
  for (int i = 0; i < 50; ++i) {
    std::thread::id ran;
    auto async = pool.apply_async(mp::Callbacks{[&](int) { ran = std::this_thread::get_id(); }, nullptr},
                                  square, i);
    right = right && async.get(std::chrono::seconds(30)) == i * i;
    elsewhere = elsewhere && ran != caller;
  }
  expect(right && elsewhere, "apply_async's callback runs in the pool's thread, not the waiter's");

  // Applies while a map with a callback is outstanding: the map's results
  // are not received by the applying thread. Several rounds: an applier
  // that did take them would run the callback here in most rounds.
  bool map_right = true, map_elsewhere = true;
  int applies = 0;
  for (int round = 0; round < 10; ++round) {
    std::atomic<bool> map_done{false};
    std::thread::id map_ran;
    auto cubes = pool.map_async(mp::Callbacks{[&](const std::vector<int>&) {
                                  map_ran = std::this_thread::get_id();
                                  map_done = true;
                                },
                                              nullptr},
                                slow_cube, range(100), 1);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!map_done && std::chrono::steady_clock::now() < give_up) {
      right = right && pool.apply(square, applies % 1000) == (applies % 1000) * (applies % 1000);
      ++applies;
    }
    const auto values = cubes.get(std::chrono::seconds(30));
    map_right = map_right && values.size() == 100 && values[99] == 99 * 99 * 99;
    map_elsewhere = map_elsewhere && map_ran != caller;
  }
  expect(right && map_right && applies > 0, "applies beside maps, both right");
  expect(map_elsewhere, "the maps' callbacks run in the pool's thread, not an applier's");

  // An apply_async without callbacks expects its waiter to poll; when none
  // comes, the master thread (parked after the idle pause) still receives
  // the result.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto unwaited = pool.apply_async(square, 12);
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!unwaited.ready() && std::chrono::steady_clock::now() < limit)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  expect(unwaited.ready() && unwaited.get() == 144,
         "an apply_async nobody waits for becomes ready");

  // Timed waits of zero on a task still running (300 ms) report it not
  // ready, each polling at most until its timeout (not asserted: on a loaded
  // host a single probe yields the core for longer than the 1 ms poll), and
  // leave the result to a later get().
  auto running = pool.apply_async(slow_square, 3);
  bool none_ready = true;
  for (int i = 0; i < 50; ++i) none_ready = !running.wait(std::chrono::seconds(0)) && none_ready;
  expect(none_ready && running.get(std::chrono::seconds(30)) == 9,
         "timed waits of zero on a running apply, then its result");

  // Several threads, each waiting for its own applies.
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i)
        if (pool.apply(add, t, i) != t + i) ++wrong;
    });
  for (std::thread& thread : threads) thread.join();
  expect(wrong == 0, "three threads applying at once, each gets its own results");
}

int run(const std::string& scenario, int argc, char** argv) {
  if (scenario == "initializer") {
    mp::mpi::PoolOptions options;
    options.initializer = &initialize;
    mp::mpi::Pool pool(argc, argv, options);
    auto values = pool.map(read_initialized, range(20), 1);
    expect(std::all_of(values.begin(), values.end(), [](int v) { return v == 42; }),
           "initializer ran on every worker");
    return failures;
  }
  if (scenario == "initializer_throws") {
    mp::mpi::Pool pool(argc, argv, mp::mpi::PoolOptions{.initializer = [] { initialize_badly(); }});
    try {
      pool.apply(square, 2);
      expect(false, "a pool whose initializer threw refuses tasks");
    } catch (const std::runtime_error& e) {
      expect(std::string(e.what()).find("no database here") != std::string::npos &&
                 std::string(e.what()).find("initializer") != std::string::npos,
             "the initializer's error, named as such");
    }
    return failures;
  }
  if (scenario == "mismatch") {
    try {
      mp::mpi::Pool pool(argc, argv);
      expect(false, "a mismatched launch is refused");
    } catch (const mp::ProcessError& e) {
      std::printf("refused: %s\n", e.what());
    }
    return 3;
  }
  mp::mpi::PoolOptions options;
  // All of terminate's chunks are queued on the workers at once, so that
  // only dropping them on the workers lets join() return soon.
  if (scenario == "terminate") options.chunks_in_flight = 20;
  if (scenario == "recover") {
    options.recover_lost_workers = true;
    options.silence_timeout = std::chrono::milliseconds(2000);
  }
  mp::mpi::Pool pool(argc, argv, options);
  if (scenario == "shapes") {
    shapes(pool);
  } else if (scenario == "exceptions") {
    exceptions(pool);
  } else if (scenario == "own_results") {
    own_results(pool);
  } else if (scenario == "payload") {
    const std::size_t size = std::size_t{64} << 20;
    std::string big = big_string(size);
    expect(pool.apply(checksum_of, big) == checksum(big), "64 MiB argument");
    expect(pool.apply(make_big, size) == big, "64 MiB result");
  } else if (scenario == "terminate") {
    auto slow = pool.map_async(slow_square, range(40), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto began = std::chrono::steady_clock::now();
    pool.terminate();
    try {
      slow.get(std::chrono::seconds(10));
      expect(false, "terminate fails the outstanding map");
    } catch (const mp::CancelledError&) {
      expect(true, "terminate fails the outstanding map with CancelledError");
    }
    pool.join();
    expect(std::chrono::steady_clock::now() - began < std::chrono::seconds(3),
           "join after terminate does not run the dropped chunks (a worker's 19 queued ones "
           "would take 5.7 s)");
    try {
      pool.apply(square, 1);
      expect(false, "a terminated pool refuses work");
    } catch (const mp::ValueError&) {
      expect(true, "a terminated pool refuses work");
    }
  } else if (scenario == "hybrid") {
    expect(pool.apply(nested_pool_sum, 10) == 385, "a fork Pool inside a worker rank");
    mp::Process local([] { ::_exit(7); });
    local.start();
    local.join();
    expect(local.exitcode() == 7, "a Process on the master rank");
    expect(pool.apply(square, 3) == 9, "the MPI pool goes on after them");
  } else if (scenario == "kill") {
    pool.map(die_on_last_rank, range(40), 1);
    expect(false, "the job ended when a worker was killed");
  } else if (scenario == "recover") {
    auto values = pool.map(die_on_last_rank, range(40), 1);
    expect(values == squares_of(40), "the map completes after a lost worker");
  } else if (scenario == "idle") {
    pool.apply(square, 1);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const auto began = std::chrono::steady_clock::now();
    pool.apply(square, 2);
    const auto took = std::chrono::steady_clock::now() - began;
    std::printf("first round trip after 1 s idle: %.3f ms\n",
                std::chrono::duration<double, std::milli>(took).count());
    expect(took < std::chrono::milliseconds(200), "first round trip after idle is prompt");
  } else {
    std::printf("FAIL unknown scenario %s\n", scenario.c_str());
    return 1;
  }
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string scenario = argc > 1 ? argv[1] : "";
  const int code = run(scenario, argc, argv);
  if (code == 0) std::printf("done %s\n", scenario.c_str());
  return code;
}
