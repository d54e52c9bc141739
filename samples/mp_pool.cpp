// CPython's Doc/includes/mp_pool.py (3.11, the last version that has it) with
// mp: a tour of Pool (apply_async, imap, imap_unordered, map, two small
// benchmarks, errors, timeouts, callbacks, close, terminate, dropping the
// pool). Python reference: python/mp_pool.py; tests/test_samples.cpp runs both
// and compares their outputs.
//
// Where the port differs, and why:
//  - (function, args) tuples become a Task of the function's name and its two
//    arguments (calculate.hpp, shared with workers.cpp).
//  - Python's f raises ZeroDivisionError from 1.0 / 0.0; C++ gives inf, so f
//    throws a ZeroDivisionError of its own, registered with
//    MP_REMOTE_EXCEPTION so that `catch (const ZeroDivisionError&)` catches
//    it in the parent as Python's `except ZeroDivisionError:` does.
//  - L = [None] * 1000000 is a vector of mp::Object None, and noop returns one.
//  - mp's Pool has no repr: the pool line prints mp's own description.
//  - Python checks pool._cache and pool._pool (private); the port checks
//    active_children(), which holds exactly the pool's workers here.
//  - Dropping a Python pool terminates it; mp's destructor is close() +
//    join() (outstanding work finishes), so the garbage-collection check
//    drops the pool with 10 sleeps of 0.1 s outstanding, not 100.
//  - Only the "processes" mode: Python's "threads" mode names its workers
//    after threads, which mp's ThreadPool does not.
#include <mp/mp.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "calculate.hpp"

struct ZeroDivisionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
MP_REMOTE_EXCEPTION(ZeroDivisionError)

namespace {

// The Python program's `assert`: a failed check ends the program.
void check(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "AssertionError: %s\n", what);
  std::exit(1);
}

double f(int x) {
  if (x == 5) throw ZeroDivisionError("float division by zero");
  return 1.0 / (x - 5.0);
}

long long pow3(long long x) { return x * x * x; }

mp::Object noop(mp::Object) { return mp::None; }

void sleep_seconds(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<long long> up_to(long long n) {
  std::vector<long long> numbers;
  for (long long i = 0; i < n; ++i) numbers.push_back(i);
  return numbers;
}

void print_results(const char* title, auto&& results) {
  std::printf("%s\n", title);
  for (const std::string& result : results) std::printf("\t %s\n", result.c_str());
  std::printf("\n");
}

void test() {
  std::printf("cpu_count() = %d\n\n", mp::cpu_count());

  //
  // Create pool
  //

  const int processes = 4;
  std::printf("Creating pool with %d processes\n\n", processes);
  mp::Pool pool(processes);
  std::printf("pool = <mp::Pool processes=%d>\n\n", processes);

  //
  // Tests
  //

  std::vector<Task> tasks;
  for (int i = 0; i < 10; ++i) tasks.push_back({"mul", i, 7});
  for (int i = 0; i < 10; ++i) tasks.push_back({"plus", i, 8});

  std::vector<mp::AsyncResult<std::string>> results;
  for (const Task& task : tasks) results.push_back(pool.apply_async(calculate, task));
  auto imap_it = pool.imap(calculate, tasks);
  auto imap_unordered_it = pool.imap_unordered(calculate, tasks);

  std::vector<std::string> applied;
  for (auto& result : results) applied.push_back(result.get());
  print_results("Ordered results using pool.apply_async():", applied);
  print_results("Ordered results using pool.imap():", imap_it);
  print_results("Unordered results using pool.imap_unordered():", imap_unordered_it);
  print_results("Ordered results using pool.map() --- will block till complete:", pool.map(calculate, tasks));

  //
  // Simple benchmarks
  //

  const long long n = 100000;
  std::printf("def pow3(x): return x**3\n");

  auto t = std::chrono::steady_clock::now();
  std::vector<long long> a;
  for (long long x : up_to(n)) a.push_back(pow3(x));
  std::printf("\tmap(pow3, range(%lld)):\n\t\t%g seconds\n", n, seconds_since(t));

  t = std::chrono::steady_clock::now();
  std::vector<long long> b = pool.map(pow3, up_to(n));
  std::printf("\tpool.map(pow3, range(%lld)):\n\t\t%g seconds\n", n, seconds_since(t));

  t = std::chrono::steady_clock::now();
  std::vector<long long> c;
  for (long long x : pool.imap(pow3, up_to(n), n / 8)) c.push_back(x);
  std::printf("\tlist(pool.imap(pow3, range(%lld), chunksize=%lld)):\n\t\t%g seconds\n", n, n / 8, seconds_since(t));

  check(a == b && b == c, "A == B == C (pow3)");
  std::printf("\n");

  const std::vector<mp::Object> l(1000000, mp::None);
  std::printf("def noop(x): pass\n");
  std::printf("L = [None] * 1000000\n");

  t = std::chrono::steady_clock::now();
  std::vector<mp::Object> na;
  for (const mp::Object& x : l) na.push_back(noop(x));
  std::printf("\tmap(noop, L):\n\t\t%g seconds\n", seconds_since(t));

  t = std::chrono::steady_clock::now();
  std::vector<mp::Object> nb = pool.map(noop, l);
  std::printf("\tpool.map(noop, L):\n\t\t%g seconds\n", seconds_since(t));

  t = std::chrono::steady_clock::now();
  std::vector<mp::Object> nc;
  for (mp::Object x : pool.imap(noop, l, l.size() / 8)) nc.push_back(std::move(x));
  std::printf("\tlist(pool.imap(noop, L, chunksize=%zu)):\n\t\t%g seconds\n", l.size() / 8, seconds_since(t));

  check(na == nb && nb == nc, "A == B == C (noop)");
  std::printf("\n");

  //
  // Test error handling
  //

  std::printf("Testing error handling:\n");
  const std::vector<int> ten = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};

  try {
    std::printf("%g\n", pool.apply(f, 5));
    check(false, "expected ZeroDivisionError");
  } catch (const ZeroDivisionError&) {
    std::printf("\tGot ZeroDivisionError as expected from pool.apply()\n");
  }

  try {
    pool.map(f, ten);
    check(false, "expected ZeroDivisionError");
  } catch (const ZeroDivisionError&) {
    std::printf("\tGot ZeroDivisionError as expected from pool.map()\n");
  }

  try {
    for (double x : pool.imap(f, ten)) (void)x;
    check(false, "expected ZeroDivisionError");
  } catch (const ZeroDivisionError&) {
    std::printf("\tGot ZeroDivisionError as expected from list(pool.imap())\n");
  }

  auto it = pool.imap(f, ten);
  int last = -1;
  for (int i = 0; i < 10; ++i) {
    last = i;
    try {
      if (!it.next()) break;
      check(i != 5, "expected ZeroDivisionError");
    } catch (const ZeroDivisionError&) {
    }
  }
  check(last == 9, "i == 9");
  std::printf("\tGot ZeroDivisionError as expected from IMapIterator.next()\n\n");

  //
  // Testing timeouts
  //

  std::printf("Testing ApplyResult.get() with timeout: ");
  auto res = pool.apply_async(calculate, tasks[0]);
  for (;;) {
    std::fflush(stdout);
    try {
      std::printf("\n\t%s", res.get(std::chrono::milliseconds(20)).c_str());
      break;
    } catch (const mp::TimeoutError&) {
      std::printf(".");
    }
  }
  std::printf("\n\n");

  std::printf("Testing IMapIterator.next() with timeout: ");
  auto timed = pool.imap(calculate, tasks);
  for (;;) {
    std::fflush(stdout);
    try {
      auto next = timed.next(std::chrono::milliseconds(20));
      if (!next) break;
      std::printf("\n\t%s", next->c_str());
    } catch (const mp::TimeoutError&) {
      std::printf(".");
    }
  }
  std::printf("\n\n");

  //
  // Testing callback
  //

  std::printf("Testing callback:\n");

  std::vector<long long> got;
  const std::vector<long long> expected = {56, 0, 1, 8, 27, 64, 125, 216, 343, 512, 729};

  pool.apply_async(mp::Callbacks{[&](int product) { got.push_back(product); }, nullptr}, mul, 7, 8).wait();
  pool.map_async(mp::Callbacks{[&](const std::vector<long long>& cubes) { got.insert(got.end(), cubes.begin(), cubes.end()); },
                               nullptr},
                 pow3, up_to(10))
      .wait();

  if (got == expected) {
    std::printf("\tcallbacks succeeded\n\n");
  } else {
    std::printf("\t*** callbacks failed\n\n");
  }

  //
  // Check close() methods
  //

  std::printf("Testing close():\n");

  check(mp::active_children().size() == processes, "the workers are alive");

  auto slept = pool.apply_async(sleep_seconds, 0.5);
  pool.close();
  pool.join();

  slept.get();  // Python: assert result.get() is None
  check(mp::active_children().empty(), "the workers have ended");

  std::printf("\tclose() succeeded\n\n");

  //
  // Check terminate() method
  //

  std::printf("Testing terminate():\n");

  const double delta = 0.1;
  {
    mp::Pool two(2);
    two.apply(pow3, 2);
    std::vector<mp::AsyncResult<void>> sleeps;
    for (int i = 0; i < 100; ++i) sleeps.push_back(two.apply_async(sleep_seconds, delta));
    two.terminate();
    two.join();
    check(mp::active_children().empty(), "the workers have ended");
  }

  std::printf("\tterminate() succeeded\n\n");

  //
  // Check dropping the pool (Python: garbage collection)
  //

  std::printf("Testing garbage collection:\n");

  {
    mp::Pool two(2);
    two.apply(pow3, 2);
    for (int i = 0; i < 10; ++i) two.apply_async(sleep_seconds, delta);
  }  // close() + join()

  sleep_seconds(delta * 2);
  check(mp::active_children().empty(), "the workers have ended");

  std::printf("\tgarbage collection succeeded\n\n");
}

}  // namespace

int main() {
  std::printf("------------------------------- Using processes -------------------------------\n");
  test();
}
