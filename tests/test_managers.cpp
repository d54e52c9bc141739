// Manager and its proxies (Python: multiprocessing.managers): a server
// process reached over sockets by forked children, Pool workers and
// unrelated connections; its lifetime; clients that die, stall or lie.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "mp/managers.hpp"
#include "mp/pool.hpp"
#include "mp/process.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto patience = 60s;  // the bound on every wait: a bug fails, never hangs

// Runs `body` in a forked child and returns its exit code (-N for signal N).
template <class F>
int in_child(F body) {
  mp::Process child([body]() mutable { body(); });
  child.start();
  child.join(patience);
  REQUIRE_FALSE(child.is_alive());
  return child.exitcode().value_or(-1000);
}

}  // namespace

TEST_SUITE("managers") {
  TEST_CASE("dict: every member, across a forked child") {
    mp::Manager manager;
    auto dict = manager.dict<std::string, int>();
    dict.set("a", 1);
    dict.set("b", 2);
    CHECK(dict.get("a") == 1);
    CHECK(dict.get("zz", 7) == 7);
    CHECK(dict.contains("b"));
    CHECK_FALSE(dict.contains("c"));
    CHECK(dict.size() == 2);
    CHECK_THROWS_AS(dict.get("zz"), mp::KeyError);
    CHECK(in_child([dict] {
            dict.set("c", dict.get("a") + dict.get("b"));
            dict.update(std::map<std::string, int>{{"d", 4}});
          }) == 0);
    CHECK(dict.keys() == std::vector<std::string>{"a", "b", "c", "d"});  // insertion order
    CHECK(dict.values() == std::vector<int>{1, 2, 3, 4});
    CHECK(dict.items().back() == std::pair<std::string, int>("d", 4));
    CHECK(dict.pop("a") == 1);
    CHECK(dict.pop("a", -1) == -1);
    CHECK_THROWS_AS(dict.pop("a"), mp::Remote<mp::KeyError>);
    CHECK(dict.copy() == std::map<std::string, int>{{"b", 2}, {"c", 3}, {"d", 4}});
    dict.clear();
    CHECK(dict.size() == 0);
  }

  TEST_CASE("list: append, extend, negative indices, pop, IndexError") {
    mp::Manager manager;
    auto list = manager.list<int>();
    list.append(1);
    list.extend(std::vector<int>{2, 3, 4});
    CHECK(list.get(-1) == 4);
    list.set(0, 10);
    CHECK(list.pop() == 4);
    CHECK(list.pop(0) == 10);
    CHECK(list.size() == 2);
    CHECK(list.copy() == std::vector<int>{2, 3});
    CHECK_THROWS_AS(list.get(5), mp::Remote<mp::IndexError>);
    CHECK(in_child([list] { list.append(list.get(0) * 100); }) == 0);
    CHECK(list.copy() == std::vector<int>{2, 3, 200});
  }

  TEST_CASE("Namespace holds Objects; repr is Python's") {
    mp::Manager manager;
    auto ns = manager.Namespace();
    ns.set("x", mp::Object(10));
    ns.set("y", mp::Object(std::string("hello")));
    CHECK(in_child([ns] { ns.set("z", mp::Object(ns.get("x").as<std::int64_t>() + 1)); }) == 0);
    CHECK(ns.get("z") == mp::Object(11));
    CHECK(ns.repr() == "Namespace(x=10, y='hello', z=11)");
    CHECK(ns.has("x"));
    ns.remove("x");
    CHECK_FALSE(ns.has("x"));
    CHECK_THROWS_AS(ns.get("x"), mp::Remote<mp::KeyError>);
  }

  TEST_CASE("Value and Lock: four processes increment under the lock") {
    mp::Manager manager;
    auto value = manager.Value<int>(0);
    auto lock = manager.Lock();
    std::vector<mp::Process> children;
    for (int i = 0; i < 4; ++i)
      children.emplace_back([value, lock]() mutable {
        for (int k = 0; k < 50; ++k) {
          lock.acquire();
          value.set(value.get() + 1);
          lock.release();
        }
      });
    for (auto& child : children) child.start();
    for (auto& child : children) {
      child.join(patience);
      CHECK(child.exitcode() == 0);
    }
    CHECK(value.get() == 200);
  }
}
