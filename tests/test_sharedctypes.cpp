// Shared ctypes: Python's _TestValue and _TestArray behaviours across real
// processes, and the lost-update fix Python lacks (fetch_add).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "mp/process.hpp"
#include "mp/sharedctypes.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto patience = 30s;

template <class Body>
int run_child(Body body) {
  mp::Process child([body]() mutable { mp::exit(body() ? 0 : 1); });
  child.start();
  child.join(patience);
  return child.exitcode().value_or(-1000);
}

struct Point {
  double x;
  std::int32_t y;
  char tag;
};

}  // namespace

TEST_SUITE("sharedctypes") {

TEST_CASE("Value: initial values, load/store, a child's writes are seen") {
  mp::Value<int> i(7);
  mp::Value<double> d(1.25);
  mp::Value<char> c('x');
  mp::Value<long> zero;
  CHECK(i.load() == 7);
  CHECK(d.load() == 1.25);
  CHECK(c.value() == 'x');
  CHECK(zero.load() == 0);
  CHECK(run_child([&] {
          i.store(-i.load());
          d.value() = d.value() * 2;
          c.store('y');
          return true;
        }) == 0);
  CHECK(i.load() == -7);
  CHECK(d.load() == 2.5);
  CHECK(c.load() == 'y');
  mp::Value<int> copy = i;  // a handle: copies share the value
  copy.store(3);
  CHECK(i.load() == 3);
}

TEST_CASE("Value: a trivially copyable struct") {
  mp::Value<Point> point(Point{1.5, 2, 'p'});
  CHECK(run_child([&] {
          std::lock_guard guard(point.get_lock());
          point.value().y += 40;
          return point.value().tag == 'p';
        }) == 0);
  Point seen = point.load();
  CHECK(seen.x == 1.5);
  CHECK(seen.y == 42);
}

TEST_CASE("Value: get_lock() guards += across processes; fetch_add needs no lock") {
  mp::Value<long> locked(0), atomic(0);
  constexpr int per_process = 20'000;
  std::vector<mp::Process> children;
  for (int k = 0; k < 3; ++k) {
    children.emplace_back([&] {
      for (int i = 0; i < per_process; ++i) {
        {
          std::lock_guard guard(locked.get_lock());
          locked.value() += 1;
        }
        atomic.fetch_add(1);
      }
    });
    children.back().start();
  }
  for (auto& child : children) {
    child.join(patience);
    CHECK(child.exitcode() == 0);
  }
  CHECK(locked.load() == 3L * per_process);
  CHECK(atomic.atomic_load() == 3L * per_process);
}

TEST_CASE("Value: the other atomic operations, RawValue") {
  mp::Value<std::uint32_t> bits(0b1100);
  CHECK(bits.fetch_or(0b0011) == 0b1100);
  CHECK(bits.fetch_and(0b0110) == 0b1111);
  CHECK(bits.fetch_xor(0b0101) == 0b0110);
  CHECK(bits.fetch_sub(1) == 0b0011);
  CHECK(bits.exchange(9) == 2);
  std::uint32_t expected = 8;
  CHECK_FALSE(bits.compare_exchange(expected, 1));
  CHECK(expected == 9);
  CHECK(bits.compare_exchange(expected, 1));
  CHECK(bits.load() == 1);

  mp::RawValue<int> raw(5);
  CHECK(run_child([&] {
          raw.fetch_add(10);
          raw.store(raw.load() + 1);
          return true;
        }) == 0);
  CHECK(raw.value() == 16);
}

TEST_CASE("Array: zero fill, initializer list, at() bounds, span, children write") {
  mp::Array<int> zeros(10);
  CHECK(zeros.size() == 10);
  CHECK(std::accumulate(zeros.begin(), zeros.end(), 0) == 0);
  mp::Array<double> values{1.0, 2.0, 3.0};
  CHECK(values.size() == 3);
  CHECK(values[2] == 3.0);
  CHECK(values.at(0) == 1.0);
  CHECK_THROWS_WITH_AS(values.at(3), "Array.at: index 3 out of range for size 3", mp::ValueError);

  CHECK(run_child([&] {
          std::lock_guard guard(zeros.get_lock());
          for (std::size_t i = 0; i < zeros.size(); ++i) zeros[i] = static_cast<int>(i * i);
          return true;
        }) == 0);
  auto span = zeros.span();
  CHECK(span.size() == 10);
  CHECK(span[9] == 81);
  CHECK(std::accumulate(span.begin(), span.end(), 0) == 285);

  mp::Array<int> empty(0);
  CHECK(empty.size() == 0);
  CHECK_THROWS_AS(empty.at(0), mp::ValueError);
}

TEST_CASE("Array: structs, RawArray, the lock is per array") {
  mp::Array<Point> points(4);
  points[1] = Point{0.5, 7, 'q'};
  mp::RawArray<std::int64_t> raw{1, 2, 3};
  CHECK(run_child([&] {
          raw[0] = points[1].y;
          points.at(3).tag = 'z';
          return raw.at(2) == 3;
        }) == 0);
  CHECK(raw[0] == 7);
  CHECK(points[3].tag == 'z');
  CHECK_THROWS_WITH_AS(raw.at(5), "RawArray.at: index 5 out of range for size 3", mp::ValueError);

  mp::Array<int> other(1);
  std::lock_guard guard(points.get_lock());
  CHECK(other.get_lock().acquire(false));  // a different lock
  other.get_lock().release();
}

}  // TEST_SUITE
