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

// The pid of the server a Manager made just now: the child that was not
// there before.
int new_child(const std::vector<int>& before) {
  for (int pid : mp::active_children())
    if (std::find(before.begin(), before.end(), pid) == before.end()) return pid;
  FAIL("no new child");
  return -1;
}

// A connection that passed the handshake, for the raw frames below.
mp::Connection raw_client(mp::Manager& manager) {
  return mp::Client(manager.address(), manager.authkey());
}

void write_raw(int fd, std::string_view bytes) {
  REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(bytes.size()));
}

void square_into(mp::DictProxy<int, int> squares, int x) { squares.set(x, x * x); }

// CPython's mp_newtype.py / the docs' MathsClass, registered with the manager.
class Maths {
 public:
  int add(int x, int y) const { return x + y; }
  int mul(int x, int y) const { return x * y; }
  void count(const std::string& word) { words_.push_back(word); }
  std::vector<std::string> counted() const { return words_; }
  double divide(double x, double y) const {
    if (y == 0) throw std::invalid_argument("Maths.divide: division by zero");
    return x / y;
  }
  int hidden() const { return 42; }  // not registered: no proxy can call it

 private:
  std::vector<std::string> words_;
};
MP_MANAGER_TYPE(Maths, &Maths::add, &Maths::mul, &Maths::count, &Maths::counted, &Maths::divide)

}  // namespace

TEST_SUITE("managers") {
  TEST_CASE("dict: every member, across a forked child") {
    mp::Manager manager;
    auto dict = manager.dict<std::string, int>();
    dict.set("a", 1);
    dict.set("b", 2);
    dict.set("a", 1);  // in place: still first, still two keys
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

  TEST_CASE("proxies travel as Pool task arguments") {
    mp::Manager manager;
    auto squares = manager.dict<int, int>();
    mp::Pool pool(2);
    std::vector<std::tuple<mp::DictProxy<int, int>, int>> tasks;
    for (int x = 0; x < 10; ++x) tasks.emplace_back(squares, x);
    pool.starmap(square_into, tasks);
    pool.close();
    pool.join();
    CHECK(squares.size() == 10);
    CHECK(squares.get(9) == 81);
  }

  TEST_CASE("shutdown stops the server and removes its socket and directory") {
    auto before = mp::active_children();
    mp::Manager manager;
    int server = new_child(before);
    auto dict = manager.dict<int, int>();
    dict.set(1, 1);
    std::filesystem::path socket = manager.address().path;
    CHECK(std::filesystem::exists(socket));
    manager.shutdown();
    CHECK(test_support::process_gone(server));
    CHECK_FALSE(std::filesystem::exists(socket));
    CHECK_FALSE(std::filesystem::exists(socket.parent_path()));
    CHECK_THROWS_AS(dict.get(1), mp::Error);
    manager.shutdown();  // idempotent
  }

  TEST_CASE("a server whose creator is SIGKILLed stops by itself within 300 ms") {
    auto [reader, writer] = mp::Pipe(false);
    mp::Process creator([writer]() mutable {
      auto before = mp::active_children();
      mp::Manager manager;
      writer.send(new_child(before));
      ::pause();
    });
    creator.start();
    REQUIRE(reader.poll(patience));
    int server = reader.recv<int>();
    CHECK_FALSE(test_support::process_gone(server));
    creator.kill();
    creator.join(patience);
    auto killed = std::chrono::steady_clock::now();
    CHECK(test_support::all_gone_within({server}, 2s));
    CHECK(test_support::seconds_since(killed) < 0.3);
  }

  TEST_CASE("TCP address, Manager::connect from another connection, wrong key refused") {
    mp::Manager manager(mp::ManagerOptions{mp::tcp_address("127.0.0.1", 0), "secret", {}});
    CHECK(manager.address().family == mp::Address::Family::tcp);
    CHECK(manager.address().port != 0);
    CHECK(manager.authkey() == "secret");
    auto shared = manager.dict<std::string, std::string>();
    shared.set("from", "owner");
    // A connected program knows only the address and the key; the proxy's
    // handle is what it is sent (here through a pipe as bytes).
    std::string handle = mp::detail::dumps(shared, "test");
    CHECK(in_child([address = manager.address(), handle] {
            auto other = mp::Manager::connect(address, "secret");
            auto dict = mp::detail::loads<mp::DictProxy<std::string, std::string>>(handle, "test");
            dict.set("to", dict.get("from") + " and connected");
            other.list<int>().append(1);  // a connected Manager creates objects too
            other.shutdown();             // forgets, does not stop the server
          }) == 0);
    CHECK(shared.get("to") == "owner and connected");
    CHECK_THROWS_AS(mp::Manager::connect(manager.address(), "wrong"), mp::AuthenticationError);
    CHECK(shared.size() == 2);
  }

  TEST_CASE("64 client processes blocked in calls at once; the others are still served") {
    mp::Manager manager;
    auto arrived = manager.Semaphore(0);
    auto go = manager.Event();
    std::vector<mp::Process> clients;
    for (int i = 0; i < 64; ++i)
      clients.emplace_back([arrived, go]() mutable {
        arrived.release();
        mp::exit(go.wait(patience) ? 0 : 3);
      });
    for (auto& client : clients) client.start();
    for (int i = 0; i < 64; ++i) REQUIRE(arrived.acquire(patience));
    // Every client now waits inside the server (or is about to).
    auto started = std::chrono::steady_clock::now();
    auto dict = manager.dict<int, int>();
    dict.set(1, 2);
    CHECK(dict.get(1) == 2);
    CHECK(test_support::seconds_since(started) < 1.0);
    go.set();
    for (auto& client : clients) {
      client.join(patience);
      CHECK(client.exitcode() == 0);
    }
  }

  TEST_CASE(
      "a hostile client (stall, garbage, forged length, wrong key) neither crashes nor stalls the "
      "server") {
    auto before = mp::active_children();
    mp::Manager manager;
    int server = new_child(before);
    auto dict = manager.dict<int, int>();
    // A client stalled inside a frame: 3 of 100 announced bytes.
    mp::Connection stalled = raw_client(manager);
    write_raw(stalled.fileno(), std::string("\0\0\0\x64"
                                            "abc",
                                            7));
    // A well-framed request of garbage: an error reply, the connection goes on.
    mp::Connection garbage = raw_client(manager);
    garbage.send_bytes(std::string("\xff\x13garbage", 9));
    REQUIRE(garbage.poll(patience));
    std::string reply = garbage.recv_bytes();
    CHECK(reply[0] == 1);
    garbage.send_bytes(std::string(3, '\x7f'));  // shorter than a header
    REQUIRE(garbage.poll(patience));
    CHECK(garbage.recv_bytes()[0] == 1);
    // A forged length (2 GiB) closes that connection only.
    mp::Connection forged = raw_client(manager);
    write_raw(forged.fileno(), std::string("\x7f\xff\xff\xffxx", 6));
    REQUIRE(forged.poll(patience));
    CHECK_THROWS_AS(forged.recv_bytes(), mp::EOFError);
    // The wrong key, and a peer that sends nothing at all.
    CHECK_THROWS_AS(mp::Client(manager.address(), std::string("wrong")), mp::AuthenticationError);
    mp::Connection silent = mp::Client(manager.address());  // no handshake from our side
    auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) dict.set(i, i);
    CHECK(dict.size() == 100);
    CHECK(test_support::seconds_since(started) < 1.0);
    CHECK_FALSE(test_support::process_gone(server));
  }

  TEST_CASE("a client SIGKILLed mid-call leaves the server and the other clients working") {
    mp::Manager manager;
    auto dict = manager.dict<int, int>();
    auto list = manager.list<int>();
    mp::Process busy([dict, list]() mutable {
      for (int i = 0;; ++i) {
        dict.set(i % 100, i);
        list.append(i);
      }
    });
    busy.start();
    // Another client calls side by side while the first dies.
    std::atomic<bool> stop = false;
    std::atomic<int> calls = 0;
    std::thread other([&, dict]() mutable {
      while (!stop) {
        dict.set(-1, calls);
        ++calls;
      }
    });
    REQUIRE(test_support::within(patience, [&] { return list.size() >= 200; }));
    busy.kill();
    busy.join(patience);
    int before = calls;
    std::this_thread::sleep_for(200ms);
    stop = true;
    other.join();
    CHECK(calls > before);
    CHECK(dict.size() == 101);
    std::size_t size = list.size();
    list.append(-1);
    CHECK(list.size() == size + 1);
  }

  TEST_CASE(
      "a lock held by a SIGKILLed client is released at once; the next holder sees owner_died") {
    mp::Manager manager;
    auto lock = manager.Lock();
    auto rlock = manager.RLock();
    auto held = manager.Event();
    mp::Process holder([lock, rlock, held]() mutable {
      lock.acquire();
      rlock.acquire();
      rlock.acquire();
      held.set();
      ::pause();
    });
    holder.start();
    REQUIRE(held.wait(patience));
    CHECK_FALSE(lock.acquire(false));
    CHECK_FALSE(rlock.acquire(50ms));
    CHECK_FALSE(lock.owner_died());
    std::thread killer([&] {
      std::this_thread::sleep_for(100ms);
      holder.kill();
    });
    auto started = std::chrono::steady_clock::now();
    bool acquired = lock.acquire(patience);  // waiting on the server when the holder dies
    double waited = test_support::seconds_since(started);
    killer.join();
    REQUIRE(acquired);
    CHECK(waited < 0.1 + 0.3);
    holder.join(patience);
    CHECK(lock.owner_died());
    CHECK(rlock.acquire(2s));
    CHECK(rlock.owner_died());
    rlock.release();
    lock.mark_consistent();
    CHECK_FALSE(lock.owner_died());
    lock.release();
    CHECK_THROWS_AS(lock.release(), mp::Remote<mp::ValueError>);
  }

  TEST_CASE("a client SIGKILLed while it waits on the server never takes the lock") {
    mp::Manager manager;
    auto lock = manager.Lock();
    auto waiting = manager.Event();
    REQUIRE(lock.acquire(patience));
    mp::Process waiter([lock, waiting]() mutable {
      waiting.set();
      lock.acquire();  // blocks on the server
      mp::exit(0);
    });
    waiter.start();
    REQUIRE(waiting.wait(patience));
    std::this_thread::sleep_for(50ms);  // into its acquire
    waiter.kill();
    waiter.join(patience);
    std::this_thread::sleep_for(200ms);  // the server notices a gone waiter within 100 ms
    lock.release();
    REQUIRE(lock.acquire(2s));
    CHECK_FALSE(lock.owner_died());  // the dead waiter never held it
    lock.release();
  }

  TEST_CASE("RLock is per thread; Semaphore, BoundedSemaphore, Event, Queue, JoinableQueue") {
    mp::Manager manager;
    auto rlock = manager.RLock();
    CHECK(rlock.acquire(patience));
    CHECK(rlock.acquire(patience));
    std::thread([rlock]() mutable {
      CHECK_FALSE(rlock.acquire(false));
      CHECK_THROWS_AS(rlock.release(), mp::Remote<mp::ValueError>);
    }).join();
    rlock.release();
    rlock.release();
    CHECK_FALSE(rlock.locked());

    auto bounded = manager.BoundedSemaphore(1);
    CHECK(bounded.acquire(patience));
    CHECK_FALSE(bounded.acquire(20ms));
    bounded.release();
    CHECK_THROWS_AS(bounded.release(), mp::Remote<mp::ValueError>);
    CHECK(bounded.get_value() == 1);

    auto event = manager.Event();
    CHECK_FALSE(event.wait(20ms));
    CHECK(in_child([event] { event.set(); }) == 0);
    CHECK(event.is_set());
    event.clear();
    CHECK_FALSE(event.is_set());

    auto queue = manager.Queue<std::string>(1);
    queue.put("a");
    CHECK(queue.full());
    CHECK_THROWS_AS(queue.put_nowait("b"), mp::Remote<mp::Full>);
    CHECK(queue.get(patience) == "a");
    CHECK_THROWS_AS(queue.get(20ms), mp::Remote<mp::Empty>);
    CHECK(in_child([queue] { queue.put("from child"); }) == 0);
    CHECK(queue.get(patience) == "from child");

    auto tasks = manager.JoinableQueue<int>();
    tasks.put(1);
    tasks.put(2);
    CHECK_FALSE(tasks.join(20ms));
    CHECK(in_child([tasks] {
            tasks.get();
            tasks.task_done();
            tasks.get();
            tasks.task_done();
          }) == 0);
    CHECK(tasks.join(patience));
    CHECK_THROWS_AS(tasks.task_done(), mp::Remote<mp::ValueError>);
  }

  TEST_CASE("a registered user type: the docs' MathsClass and mp_newtype's exposure rules") {
    mp::Manager manager;
    auto maths = manager.make<Maths>();
    CHECK(maths.call(&Maths::add, 4, 3) == 7);  // Python: maths.add(4, 3)
    CHECK(maths.call(&Maths::mul, 7, 8) == 56);
    // State lives on the server: a forked child and a Pool worker see one object.
    maths.call(&Maths::count, std::string("parent"));
    CHECK(in_child([maths] { maths.call(&Maths::count, std::string("child")); }) == 0);
    CHECK(maths.call(&Maths::counted) == std::vector<std::string>{"parent", "child"});
    CHECK(maths.call(&Maths::divide, 1.0, 4.0) == 0.25);
    CHECK_THROWS_AS(maths.call(&Maths::divide, 1.0, 0.0), mp::Remote<std::invalid_argument>);
    CHECK(test_support::error_text<mp::ValueError>([&] {
            maths.call(&Maths::hidden);
          }).find("not registered") != std::string::npos);
    // Two instances are two objects.
    auto other = manager.make<Maths>();
    CHECK(other.call(&Maths::counted).empty());
  }

  TEST_CASE("Condition: wait/notify across processes, timeouts, misuse") {
    mp::Manager manager;
    auto condition = manager.Condition();
    auto items = manager.list<int>();
    CHECK_THROWS_AS(condition.wait(10ms), mp::Remote<mp::ValueError>);
    CHECK_THROWS_AS(condition.notify(), mp::Remote<mp::ValueError>);
    REQUIRE(condition.acquire(patience));
    CHECK_FALSE(condition.wait(20ms));  // reacquired after the timeout
    condition.release();
    // Each consumer signals while it holds the lock, which it releases only
    // inside wait(): once the producer holds the lock after three signals,
    // all three wait, and only notify() can wake them.
    auto ready = manager.Semaphore(0);
    std::vector<mp::Process> consumers;
    for (int i = 0; i < 3; ++i)
      consumers.emplace_back([condition, items, ready]() mutable {
        condition.acquire();
        ready.release();
        while (items.size() == 0)
          if (!condition.wait(10s)) mp::exit(2);
        items.pop(0);
        condition.release();
        mp::exit(0);
      });
    for (auto& consumer : consumers) consumer.start();
    for (int i = 0; i < 3; ++i) REQUIRE(ready.acquire(patience));
    for (int i = 0; i < 3; ++i) {
      REQUIRE(condition.acquire(patience));
      items.append(i);
      condition.notify();
      condition.release();
    }
    for (auto& consumer : consumers) {
      consumer.join(patience);
      CHECK(consumer.exitcode() == 0);
    }
    CHECK(items.size() == 0);
  }

  TEST_CASE("Barrier: parties meet across processes; abort, reset, a dead party breaks it") {
    mp::Manager manager;
    auto barrier = manager.Barrier(3);
    CHECK(barrier.parties() == 3);
    auto indices = manager.list<int>();
    std::vector<mp::Process> parties;
    for (int i = 0; i < 2; ++i)
      parties.emplace_back(
          [barrier, indices]() mutable { indices.append(barrier.wait(patience)); });
    for (auto& party : parties) party.start();
    indices.append(barrier.wait(patience));
    for (auto& party : parties) {
      party.join(patience);
      CHECK(party.exitcode() == 0);
    }
    auto seen = indices.copy();
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<int>{0, 1, 2});

    CHECK_THROWS_AS(barrier.wait(50ms), mp::Remote<mp::BrokenBarrierError>);  // a timeout breaks it
    CHECK(barrier.broken());
    barrier.reset();
    CHECK_FALSE(barrier.broken());

    mp::Process reset_waiter([barrier] {
      try {
        barrier.wait(patience);
      } catch (const mp::BrokenBarrierError&) {
        mp::exit(7);
      }
    });
    reset_waiter.start();
    REQUIRE(test_support::within(patience, [&] { return barrier.n_waiting() >= 1; }));
    barrier.reset();  // the waiter is told, the barrier is fresh
    reset_waiter.join(patience);
    CHECK(reset_waiter.exitcode() == 7);
    CHECK_FALSE(barrier.broken());
    CHECK(barrier.n_waiting() == 0);

    mp::Process doomed([barrier] { barrier.wait(patience); });
    doomed.start();
    REQUIRE(test_support::within(patience, [&] { return barrier.n_waiting() >= 1; }));
    doomed.kill();
    doomed.join(patience);
    auto started = std::chrono::steady_clock::now();
    while (!barrier.broken() && test_support::seconds_since(started) < 2)
      std::this_thread::sleep_for(5ms);
    CHECK(barrier.broken());  // within the server's 100 ms client check
    CHECK(test_support::seconds_since(started) < 0.3);
    CHECK_THROWS_AS(barrier.wait(patience), mp::Remote<mp::BrokenBarrierError>);
  }

  TEST_CASE("Barrier: a party that dies once the barrier tripped leaves the next generation whole") {
    mp::Manager manager;
    auto barrier = manager.Barrier(2);
    // The dead party's server thread notices its death when the trip wakes
    // it, unless its 100 ms client check comes first (then the barrier
    // breaks, rightly, and the attempt is repeated).
    bool tripped = false;
    for (int attempt = 0; attempt < 5 && !tripped; ++attempt) {
      mp::Process doomed([barrier] { barrier.wait(patience); });
      doomed.start();
      REQUIRE(test_support::within(patience, [&] { return barrier.n_waiting() >= 1; }));
      doomed.kill();
      doomed.join(patience);
      try {
        CHECK(barrier.wait(patience) == 1);
        tripped = true;
      } catch (const mp::BrokenBarrierError&) {
        barrier.reset();
      }
    }
    REQUIRE(tripped);
    std::this_thread::sleep_for(300ms);  // the dead party's thread has long run
    CHECK_FALSE(barrier.broken());
    CHECK(barrier.n_waiting() == 0);
    mp::Process next([barrier] { mp::exit(barrier.wait(patience) == 0 ? 0 : 1); });
    next.start();
    REQUIRE(test_support::within(patience, [&] { return barrier.n_waiting() >= 1; }));
    CHECK(barrier.wait(patience) == 1);
    next.join(patience);
    CHECK(next.exitcode() == 0);
  }
}
