// Shared ctypes: Python's _TestValue and _TestArray behaviours across real
// processes, and the lost-update fix Python lacks (fetch_add).
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <numeric>
#include <ranges>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "mp/process.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/synchronize.hpp"
#include "support.hpp"

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

TEST_CASE("Array and RawArray from any range, and from bytes as Python's 0..255") {
  std::vector<double> doubles{0.5, 1.5, 2.5};
  mp::Array<double> from_vector(doubles);
  CHECK(std::vector<double>(from_vector.begin(), from_vector.end()) == doubles);

  std::string text = "hello";
  mp::Array<char> chars(text);
  CHECK(std::string(chars.begin(), chars.end()) == "hello");

  auto odd = [](int i) { return i % 2 == 1; };
  mp::Array<long> filtered(std::views::iota(0, 10) | std::views::filter(odd));  // not sized
  CHECK(std::vector<long>(filtered.begin(), filtered.end()) == std::vector<long>{1, 3, 5, 7, 9});

  std::istringstream numbers("4 5 6 7");
  mp::Array<int> single_pass(std::views::istream<int>(numbers));  // counted only by reading it
  CHECK(std::vector<int>(single_pass.begin(), single_pass.end()) == std::vector<int>{4, 5, 6, 7});

  std::array<std::byte, 4> bytes{std::byte{0x01}, std::byte{0x7f}, std::byte{0x80}, std::byte{0xff}};
  mp::Array<int> from_bytes(bytes);
  CHECK(std::vector<int>(from_bytes.begin(), from_bytes.end()) == std::vector<int>{1, 127, 128, 255});
  mp::Array<std::byte> raw_bytes(std::as_bytes(std::span(bytes)));
  CHECK(raw_bytes[3] == std::byte{0xff});

  mp::RawArray<std::int16_t> raw(std::list<std::int16_t>{-1, 2});
  CHECK(raw.size() == 2);
  CHECK(raw[0] == -1);

  mp::Array<int> empty(std::vector<int>{});
  CHECK(empty.size() == 0);

  mp::Array<int> handle = from_bytes;  // a copy of the handle shares the array
  handle[0] = 42;
  CHECK(from_bytes[0] == 42);
  CHECK(run_child([&] {
          from_bytes[1] = -from_bytes[1];
          chars[0] = 'j';
          return filtered[4] == 9 && single_pass[3] == 7;
        }) == 0);
  CHECK(handle[1] == -127);
  CHECK(chars[0] == 'j');
}

TEST_CASE("Value and Array with lock=false: plain access, get_lock() is a ValueError") {
  mp::Value<int> value(5, false);
  static_assert(std::is_same_v<decltype(mp::Value(1, false)), mp::Value<int>>);
  mp::Array<int> array(3, false);
  mp::Array<int> listed({1, 2, 3}, false);
  mp::Array<int> ranged(std::vector<int>{7, 8}, false);
  CHECK(value.load() == 5);
  CHECK(run_child([&] {
          value.store(value.load() + 1);
          array[2] = 9;
          return true;
        }) == 0);
  CHECK(value.load() == 6);
  CHECK(array[2] == 9);
  CHECK(listed[2] == 3);
  CHECK(ranged.size() == 2);
  CHECK_THROWS_WITH_AS(value.get_lock(),
                       "Value.get_lock: made with lock=false, it has no lock (Python: AttributeError)",
                       mp::ValueError);
  CHECK_THROWS_AS(array.get_lock(), mp::ValueError);
  CHECK_THROWS_AS(listed.get_lock(), mp::ValueError);
  CHECK_THROWS_AS(ranged.get_lock(), mp::ValueError);
  mp::Value<int> locked(0, true);
  CHECK(locked.get_lock().acquire(false));
  locked.get_lock().release();
}

TEST_CASE("a caller's Lock shared by two Values: one holder blocks the other's get_lock(), across processes") {
  mp::Lock lock;
  mp::Value counter(0, lock);
  mp::Value ratio(0.5, lock);
  static_assert(std::is_same_v<decltype(counter), mp::Value<int, mp::Lock>>);
  static_assert(std::is_same_v<decltype(ratio.get_lock()), mp::Lock&>);
  mp::Array<int, mp::Lock> cells(2, lock);
  mp::Event held, may_release;
  mp::Process holder([&] {
    if (!counter.get_lock().acquire(patience)) mp::exit(1);
    held.set();
    may_release.wait(patience);
    counter.get_lock().release();
  });
  holder.start();
  REQUIRE(held.wait(patience));
  // Each acquire that wrongly succeeds is undone, so that a failure cannot hang the test.
  auto taken = [](mp::Lock& other, auto... timeout) {
    bool got = other.acquire(timeout...);
    if (got) other.release();
    return got;
  };
  CHECK_FALSE(taken(ratio.get_lock(), 100ms));
  CHECK_FALSE(taken(cells.get_lock(), false));
  CHECK_FALSE(taken(lock, false));
  may_release.set();
  CHECK(ratio.get_lock().acquire(patience));
  ratio.get_lock().release();
  holder.join(patience);
  CHECK(holder.exitcode() == 0);

  // store() and load() take the caller's lock too: a child's store waits for it.
  REQUIRE(lock.acquire(patience));
  mp::Process writer([&] { ratio.store(2.0); });
  writer.start();
  writer.join(300ms);
  CHECK(writer.exitcode() == std::nullopt);
  CHECK(ratio.value() == 0.5);
  lock.release();
  writer.join(patience);
  CHECK(writer.exitcode() == 0);
  CHECK(ratio.load() == 2.0);
}

TEST_CASE("a caller's RLock shared by a Value and an Array") {
  mp::RLock rlock;
  mp::Value<long> total(0, rlock);
  mp::Array<long> parts({1, 2, 3}, rlock);
  mp::Value<long> alone(0);
  {
    std::lock_guard outer(parts.get_lock());
    std::lock_guard inner(total.get_lock());  // the same RLock: recursion, not deadlock
    total.value() = std::accumulate(parts.begin(), parts.end(), 0L);
    CHECK(run_child([&] {
            bool blocked = !total.get_lock().acquire(100ms) && !rlock.acquire(false);
            bool separate = alone.get_lock().acquire(false);  // a Value's own lock is its own
            return blocked && separate;
          }) == 0);
  }
  CHECK(run_child([&] { return parts.get_lock().acquire(1s) && total.load() == 6; }) == 0);
}

}  // TEST_SUITE
