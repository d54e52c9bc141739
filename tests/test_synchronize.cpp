// Synchronization: Python's _TestLock, _TestSemaphore, _TestCondition,
// _TestEvent and _TestBarrier behaviours across real processes, plus what
// Python cannot do: a holder killed with SIGKILL does not deadlock the others.
#include <doctest/doctest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mp/process.hpp"
#include "mp/queues.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/synchronize.hpp"
#include "python_versions.hpp"
#include "reprs.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test_support::error_text;
using test_support::sanitizer_slowdown;
using test_support::seconds_since;

namespace {

constexpr auto patience = 30s;  // the bound on every wait: a bug fails, never hangs

// A child running body(); it reports through its exit code (0: body returned true).
template <class Body>
mp::Process spawn(Body body) {
  mp::Process child([body]() mutable { mp::exit(body() ? 0 : 1); });
  child.start();
  return child;
}

int finish(mp::Process& child) {
  child.join(patience);
  return child.exitcode().value_or(-1000);
}

// The monotonic clock in nanoseconds: the same in every process, so children
// can stamp events into shared memory for the parent to compare.
long now_ns() {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}
constexpr long ns(std::chrono::nanoseconds duration) { return static_cast<long>(duration.count()); }

// A lock waiter checks its holder every 20 ms (liveness_slice): a takeover
// after a death must come within that, plus a margin for a loaded machine.
constexpr auto takeover_bound = 500ms * sanitizer_slowdown;

}  // namespace

TEST_SUITE("synchronize") {

TEST_CASE("Lock: acquire, release, locked and Python's over-release error") {
  mp::Lock lock;
  CHECK_FALSE(lock.locked());
  CHECK(lock.acquire());
  CHECK(lock.locked());
  CHECK_FALSE(lock.acquire(false));
  CHECK_FALSE(lock.acquire(-1s));  // negative timeout means zero
  lock.release();
  CHECK_FALSE(lock.locked());
  CHECK(error_text<mp::ValueError>([&] { lock.release(); }) ==
        "Lock.release: semaphore or lock released too many times");
}

TEST_CASE("Lock: acquire(timeout) on a held lock gives up after the timeout") {
  mp::Lock lock;
  lock.acquire();
  auto start = Clock::now();
  CHECK_FALSE(lock.acquire(200ms));
  double waited = seconds_since(start);
  CHECK(waited >= 0.19);
  CHECK(waited < 5.0);
  lock.release();
}

TEST_CASE("Lock: the standard lock adapters work") {
  mp::Lock lock;
  {
    std::lock_guard guard(lock);
    CHECK(lock.locked());
  }
  {
    std::unique_lock guard(lock, std::defer_lock);
    CHECK(guard.try_lock_for(10ms));
    CHECK_FALSE(lock.try_lock());
    CHECK_FALSE(lock.try_lock_until(Clock::now() + 10ms));
  }
  mp::RLock rlock;
  {
    std::scoped_lock both(lock, rlock);
    CHECK(lock.locked());
    CHECK(rlock.locked());
  }
  CHECK_FALSE(lock.locked());
  CHECK_FALSE(rlock.locked());
}

TEST_CASE("Lock: another process may release it, and a waiter in a third one gets it") {
  mp::Lock lock;
  mp::Event waiting;
  lock.acquire();
  auto waiter = spawn([&] {
    waiting.set();
    bool got = lock.acquire(patience);
    lock.release();
    return got;
  });
  REQUIRE(waiting.wait(patience));
  auto releaser = spawn([&] {
    lock.release();
    return true;
  });
  CHECK(finish(releaser) == 0);
  CHECK(finish(waiter) == 0);
  CHECK_FALSE(lock.locked());
}

TEST_CASE("Lock and RLock: mutual exclusion between processes loses no update") {
  mp::Lock lock;
  mp::RLock rlock;
  mp::RawValue<long> counter(0);
  constexpr int per_process = 20'000;
  auto work = [&] {
    for (int i = 0; i < per_process; ++i) {
      std::lock_guard outer(lock);
      std::lock_guard inner(rlock);
      long seen = counter.value();
      counter.value() = seen + 1;
    }
    return true;
  };
  std::vector<mp::Process> children;
  for (int i = 0; i < 3; ++i) children.push_back(spawn(work));
  for (auto& child : children) CHECK(finish(child) == 0);
  CHECK(counter.value() == 3L * per_process);
}

TEST_CASE("RLock: recursion, owner-only release") {
  mp::RLock lock;
  CHECK(lock.acquire());
  CHECK(lock.acquire());
  CHECK(lock.acquire(false));
  lock.release();
  lock.release();
  CHECK(lock.locked());

  std::string from_thread;
  std::thread([&] { from_thread = error_text<mp::ValueError>([&] { lock.release(); }); }).join();
  CHECK(from_thread == "RLock.release: attempt to release recursive lock not owned by thread");
  bool other_thread_got_it = true;
  std::thread([&] { other_thread_got_it = lock.acquire(50ms); }).join();
  CHECK_FALSE(other_thread_got_it);

  auto child = spawn([&] {
    bool refused = error_text<mp::ValueError>([&] { lock.release(); }) != "no exception";
    return refused && !lock.acquire(false);
  });
  CHECK(finish(child) == 0);

  lock.release();
  CHECK_FALSE(lock.locked());
  CHECK_THROWS_AS(lock.release(), mp::ValueError);
}

TEST_CASE("Semaphore: counting, get_value, timeout, release in another process wakes a waiter") {
  mp::Semaphore sem(2);
  CHECK(sem.get_value() == 2);
  CHECK(sem.acquire());
  CHECK(sem.acquire(false));
  CHECK(sem.get_value() == 0);
  CHECK_FALSE(sem.acquire(false));
  auto start = Clock::now();
  CHECK_FALSE(sem.acquire(100ms));
  CHECK(seconds_since(start) >= 0.09);
  sem.release();
  sem.release();
  sem.release();  // a plain Semaphore is unbounded
  CHECK(sem.get_value() == 3);
  CHECK_THROWS_AS(mp::Semaphore(-1), mp::ValueError);

  mp::Semaphore empty(0);
  mp::Event waiting;
  auto waiter = spawn([&] {
    waiting.set();
    return empty.acquire(patience);
  });
  REQUIRE(waiting.wait(patience));
  std::this_thread::sleep_for(50ms);  // most likely asleep on the futex by now
  empty.release();
  CHECK(finish(waiter) == 0);
  CHECK(empty.get_value() == 0);
}

TEST_CASE("BoundedSemaphore: release above the initial value is a ValueError") {
  mp::BoundedSemaphore sem(2);
  CHECK(error_text<mp::ValueError>([&] { sem.release(); }) ==
        "BoundedSemaphore.release: semaphore or lock released too many times");
  sem.acquire();
  sem.release();
  CHECK(sem.get_value() == 2);
  std::lock_guard guard(sem);
  CHECK(sem.get_value() == 1);
}

TEST_CASE("Condition: wait and notify require the lock") {
  mp::Condition cond;
  CHECK(error_text<mp::ValueError>([&] { cond.wait(10ms); }) ==
        "Condition.wait: must acquire() condition before using wait()");
  CHECK(error_text<mp::ValueError>([&] { cond.notify(); }) == "Condition.notify: lock is not owned");
  CHECK_THROWS_AS(cond.notify_all(), mp::ValueError);
  mp::Condition over_lock{mp::Lock()};
  CHECK_THROWS_AS(over_lock.wait(10ms), mp::ValueError);
}

TEST_CASE("Condition: wait(timeout) is false on timeout and a notify with no waiter is not kept") {
  mp::Condition cond;
  std::unique_lock guard(cond);
  cond.notify();  // nobody waits: lost, as in Python
  auto start = Clock::now();
  CHECK_FALSE(cond.wait(150ms));
  double waited = seconds_since(start);
  CHECK(waited >= 0.14);
  CHECK(waited < 5.0);
  CHECK_FALSE(cond.wait(-1s));
}

TEST_CASE("Condition: notify(n) wakes n sleeping processes, notify_all the rest") {
  mp::Condition cond;
  mp::RawValue<int> sleeping(0), woken(0);
  constexpr int waiters = 5;
  std::vector<mp::Process> children;
  for (int i = 0; i < waiters; ++i) {
    children.push_back(spawn([&] {
      std::unique_lock guard(cond);
      ++sleeping.value();
      bool notified = cond.wait(patience);
      ++woken.value();
      return notified;
    }));
  }
  auto count = [&](mp::RawValue<int>& value) {
    std::lock_guard guard(cond);
    return value.value();
  };
  auto wait_for_count = [&](mp::RawValue<int>& value, int expected) {
    auto deadline = Clock::now() + patience;
    while (count(value) < expected && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    return count(value);
  };
  REQUIRE(wait_for_count(sleeping, waiters) == waiters);
  {
    std::lock_guard guard(cond);
    cond.notify(2);
  }
  CHECK(wait_for_count(woken, 2) == 2);
  std::this_thread::sleep_for(200ms);  // nobody else may wake
  CHECK(count(woken) == 2);
  {
    std::lock_guard guard(cond);
    cond.notify_all();
  }
  CHECK(wait_for_count(woken, waiters) == waiters);
  for (auto& child : children) CHECK(finish(child) == 0);
}

TEST_CASE("Condition: wait over an RLock releases every level and restores them") {
  mp::Condition cond;
  mp::Event go;
  cond.acquire();
  cond.acquire();
  auto notifier = spawn([&] {
    if (!go.wait(patience) || !cond.acquire(patience)) return false;  // possible only if wait released both levels
    cond.notify();
    cond.release();
    return true;
  });
  go.set();
  CHECK(cond.wait(patience));
  cond.release();
  cond.release();  // the second level came back
  CHECK_THROWS_AS(cond.release(), mp::ValueError);
  CHECK(finish(notifier) == 0);
}

TEST_CASE("Condition: wait_for returns the predicate, with and without timeout") {
  mp::Condition cond{mp::Lock()};
  mp::RawValue<int> state(0);
  auto setter = spawn([&] {
    for (int i = 1; i <= 5; ++i) {
      std::this_thread::sleep_for(10ms);
      std::lock_guard guard(cond);
      state.value() = i;
      cond.notify_all();
    }
    return true;
  });
  {
    std::unique_lock guard(cond);
    CHECK(cond.wait_for([&] { return state.value() == 5; }, patience));
    CHECK(state.value() == 5);
    auto start = Clock::now();
    CHECK_FALSE(cond.wait_for([&] { return state.value() == 6; }, 100ms));
    CHECK(seconds_since(start) >= 0.09);
  }
  CHECK(finish(setter) == 0);
}

TEST_CASE("Event: set, clear, is_set, wait with timeout across processes") {
  mp::Event event;
  CHECK_FALSE(event.is_set());
  auto start = Clock::now();
  CHECK_FALSE(event.wait(100ms));
  CHECK(seconds_since(start) >= 0.09);
  event.set();
  CHECK(event.is_set());
  CHECK(event.wait());
  CHECK(event.wait(0s));
  event.clear();
  CHECK_FALSE(event.is_set());

  // The waiters' timeout is 30 s; set() must wake them at once, so each
  // returns well within 500 ms of it (a futex wake takes microseconds).
  constexpr int waiter_count = 3;
  mp::RawArray<long> returned_at(waiter_count);
  std::vector<mp::Process> waiters;
  for (int i = 0; i < waiter_count; ++i) {
    waiters.push_back(spawn([&, i] {
      bool set = event.wait(patience);
      returned_at[static_cast<std::size_t>(i)] = now_ns();
      return set;
    }));
  }
  auto all_asleep = [&] {
    return std::all_of(waiters.begin(), waiters.end(), [](mp::Process& waiter) {
      auto fields = test_support::stat_fields(waiter.pid().value_or(0));
      return !fields.empty() && fields[0] == "S";
    });
  };
  auto deadline = Clock::now() + patience;
  while (!all_asleep() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(20ms);  // asleep in the futex, not on the way to it
  long set_at = now_ns();
  event.set();
  for (auto& waiter : waiters) CHECK(finish(waiter) == 0);
  for (long at : returned_at) CHECK(at - set_at < ns(500ms * sanitizer_slowdown));
}

TEST_CASE("Barrier: indices, action once per cycle, 5 processes x 1000 passes") {
  constexpr int parties = 5, passes = 1000;
  mp::RawValue<int> actions(0);
  mp::RawArray<int> arrivals(passes);
  mp::Barrier barrier(parties, [&] { actions.fetch_add(1); });
  CHECK(barrier.parties() == parties);
  // Each pass adds the arrival index to arrivals[pass]; 0+1+2+3+4 = 10 per pass
  // means every index came exactly once (their sum and the count both match).
  auto party = [&] {
    for (int pass = 0; pass < passes; ++pass) {
      int index = barrier.wait(patience);
      if (index < 0 || index >= parties) return false;
      std::atomic_ref<int>(arrivals[pass]).fetch_add(1 << (index * 4));
      if (actions.atomic_load() < pass + 1) return false;  // the action ran before the release
    }
    return true;
  };
  std::vector<mp::Process> children;
  for (int i = 0; i < parties - 1; ++i) children.push_back(spawn(party));
  CHECK(party());
  for (auto& child : children) CHECK(finish(child) == 0);
  CHECK(actions.value() == passes);
  CHECK(std::all_of(arrivals.begin(), arrivals.end(), [](int bits) { return bits == 0x11111; }));
  CHECK_FALSE(barrier.broken());
  CHECK(barrier.n_waiting() == 0);
}

TEST_CASE("Barrier: a timeout breaks it for everyone until reset") {
  mp::Barrier barrier(3);
  mp::Event waiting;
  auto patient = spawn([&] {
    waiting.set();
    try {
      barrier.wait(patience);
    } catch (const mp::BrokenBarrierError&) {
      return true;
    }
    return false;
  });
  REQUIRE(waiting.wait(patience));
  auto deadline = Clock::now() + patience;
  while (barrier.n_waiting() != 1 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  CHECK(barrier.n_waiting() == 1);
  CHECK_THROWS_AS(barrier.wait(100ms), mp::BrokenBarrierError);
  CHECK(finish(patient) == 0);
  CHECK(barrier.broken());
  CHECK_THROWS_AS(barrier.wait(10ms), mp::BrokenBarrierError);
  barrier.reset();
  CHECK_FALSE(barrier.broken());

  mp::Barrier with_default(2, {}, 50ms);
  CHECK_THROWS_AS(with_default.wait(), mp::BrokenBarrierError);
  CHECK(with_default.broken());
}

namespace {

// A party that waits on `barrier` and succeeds when the barrier breaks under
// it; returns once it is waiting.
mp::Process spawn_broken_waiter(mp::Barrier& barrier) {
  auto waiter = spawn([&] {
    try {
      barrier.wait(patience);
    } catch (const mp::BrokenBarrierError&) {
      return true;
    }
    return false;
  });
  auto deadline = Clock::now() + patience;
  while (barrier.n_waiting() != 1 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  return waiter;
}

}  // namespace

TEST_CASE("Barrier: abort, reset while waiting, a throwing action, bad parties") {
  mp::Barrier barrier(2);
  auto aborted = spawn_broken_waiter(barrier);
  barrier.abort();
  CHECK(finish(aborted) == 0);
  CHECK(barrier.broken());
  barrier.reset();

  auto reset_out = spawn_broken_waiter(barrier);
  barrier.reset();
  CHECK(finish(reset_out) == 0);
  CHECK_FALSE(barrier.broken());
  auto partner = spawn([&] { return barrier.wait(patience) >= 0; });
  CHECK(barrier.wait(patience) >= 0);  // usable again after reset
  CHECK(finish(partner) == 0);

  mp::Barrier throwing(1, [] { throw std::runtime_error("action failed"); });
  CHECK_THROWS_AS(throwing.wait(), std::runtime_error);
  CHECK(throwing.broken());
  CHECK_THROWS_AS(mp::Barrier(0), mp::ValueError);
}

TEST_CASE("Barrier: a party killed while waiting makes later waits time out, not hang") {
  mp::Barrier barrier(3);
  mp::Process doomed([&] { barrier.wait(patience); });
  doomed.start();
  auto deadline = Clock::now() + patience;
  while (barrier.n_waiting() != 1 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  REQUIRE(barrier.n_waiting() == 1);
  doomed.kill();
  doomed.join(patience);
  // The dead party counts as arrived for its cycle...
  auto partner = spawn([&] { return barrier.wait(patience) >= 0; });
  CHECK(barrier.wait(patience) >= 0);
  CHECK(finish(partner) == 0);
  // ...but never leaves it, so the next cycle cannot open: the timeout ends the wait.
  auto start = Clock::now();
  CHECK_THROWS_AS(barrier.wait(200ms), mp::BrokenBarrierError);
  CHECK(seconds_since(start) < 5.0);
}

// --- dead owners ----------------------------------------------------------------------------

namespace {

// A child takes the lock `depth` times, says so, and sleeps holding it.
template <class Holdable>
mp::Process start_holder(Holdable& lock, int depth = 1) {
  mp::Event holding;
  mp::Process holder([&] {
    for (int level = 0; level < depth; ++level) lock.acquire();
    holding.set();
    std::this_thread::sleep_for(patience);
  });
  holder.start();
  REQUIRE(holding.wait(patience));
  return holder;
}

// The holder is killed with SIGKILL and not reaped yet: it is a zombie during
// the next acquire.
template <class Holdable>
void kill_holder(Holdable& lock, int depth = 1) {
  start_holder(lock, depth).kill();
}

template <class Holdable>
void check_recovery(Holdable& lock) {
  kill_holder(lock);
  auto start = Clock::now();
  REQUIRE(lock.acquire(patience));
  CHECK(seconds_since(start) < 2.0);
  CHECK(lock.owner_died());
  lock.mark_consistent();
  CHECK_FALSE(lock.owner_died());
  lock.release();
  CHECK(lock.acquire(false));
  CHECK_FALSE(lock.owner_died());
  lock.release();
}

}  // namespace

TEST_CASE("dead owner: a Lock held by a SIGKILLed process is taken over, and reported") {
  mp::Lock lock;
  check_recovery(lock);

  kill_holder(lock);  // a non-blocking acquire notices the death at once
  auto deadline = Clock::now() + patience;
  bool got = false;
  while (!(got = lock.acquire(false)) && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  CHECK(got);
  CHECK(lock.owner_died());
  lock.release();
}

TEST_CASE("dead owner: an RLock held twice by a SIGKILLed process starts over at depth 1") {
  mp::RLock lock;
  kill_holder(lock, 2);
  REQUIRE(lock.acquire(patience));
  CHECK(lock.owner_died());
  lock.release();
  CHECK_FALSE(lock.locked());
  check_recovery(lock);
}

TEST_CASE("dead owner: a waiter sleeping on the lock takes it over within the liveness slice") {
  mp::Lock lock;
  mp::Process holder = start_holder(lock);
  mp::RawValue<long> acquired_at(0);
  auto waiter = spawn([&] {
    bool got = lock.acquire(patience);
    acquired_at.value() = now_ns();
    bool reported = lock.owner_died();
    lock.release();
    return got && reported;
  });
  std::this_thread::sleep_for(100ms);
  long killed_at = now_ns();
  holder.kill();
  CHECK(finish(waiter) == 0);
  CHECK(acquired_at.value() - killed_at < ns(takeover_bound));
}

TEST_CASE("dead owner: a Condition's lock, and the condition still works") {
  mp::Condition cond;
  check_recovery(cond);

  mp::Condition over_lock{mp::Lock()};
  kill_holder(over_lock);
  auto waiter = spawn([&] {
    std::unique_lock guard(over_lock);  // recovers the lock
    return over_lock.wait(patience);
  });
  auto deadline = Clock::now() + patience;
  bool notified_someone = false;
  while (!notified_someone && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    std::lock_guard guard(over_lock);
    over_lock.notify();
    notified_someone = !waiter.is_alive();
  }
  CHECK(finish(waiter) == 0);
  CHECK(over_lock.owner_died());
}

TEST_CASE("dead waiter: a process killed in Condition.wait does not swallow later notifies") {
  mp::Condition cond;
  mp::Event waiting;
  mp::Process doomed([&] {
    std::unique_lock guard(cond);
    waiting.set();
    cond.wait(patience);
  });
  doomed.start();
  REQUIRE(waiting.wait(patience));
  REQUIRE(cond.acquire(patience));  // the doomed waiter released it in wait
  cond.release();
  doomed.kill();
  doomed.join(patience);

  mp::Event second_waiting;
  auto survivor = spawn([&] {
    std::unique_lock guard(cond);
    second_waiting.set();
    return cond.wait(patience);
  });
  REQUIRE(second_waiting.wait(patience));
  REQUIRE(cond.acquire(patience));
  cond.notify();  // one token: the dead waiter cannot take it
  cond.release();
  CHECK(finish(survivor) == 0);
}

// --- reused pids ------------------------------------------------------------------------------
//
// A dead holder's pid given to a new process: pid 1 of a new pid namespace
// (with a /proc of its own, so that /proc/<pid> speaks of the namespace's
// pids) writes /proc/sys/kernel/ns_last_pid to choose the next pid.

namespace {

// A raw fork running body(): inside the namespace there is no mp::Process
// around to reap or report, and pid 1 waits for its children itself.
template <class Body>
pid_t fork_running(Body body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  return pid;
}

// The next fork in this pid namespace gets `pid` (when it is free).
bool next_pid_will_be(pid_t pid) {
  std::ofstream last_pid("/proc/sys/kernel/ns_last_pid");
  last_pid << pid - 1 << std::flush;
  return last_pid.good();
}

void reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
}

// Runs scenario() as pid 1 of a new pid namespace; true when it returned true.
// If it dies, the kernel kills every process of the namespace with it.
bool in_new_pid_namespace(std::function<bool()> scenario) {
  auto outer = spawn([&] {
    if (::unshare(CLONE_NEWPID) != 0) return false;
    pid_t init = fork_running([&] {
      bool ok = ::unshare(CLONE_NEWNS) == 0 &&
                ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
                ::mount("proc", "/proc", "proc", 0, nullptr) == 0 && scenario();
      ::_exit(ok ? 0 : 1);
    });
    int status = 0;
    return init > 0 && ::waitpid(init, &status, 0) == init && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
  });
  return finish(outer) == 0;
}

// Forks a child that takes `lock` `depth` times and sleeps holding it;
// returns its pid once it holds it, or 0.
template <class Holdable>
pid_t fork_holder(Holdable& lock, int depth) {
  mp::Event holding;
  pid_t holder = fork_running([&] {
    for (int level = 0; level < depth; ++level) lock.acquire();
    holding.set();
    ::pause();
  });
  return holding.wait(patience) ? holder : 0;
}

// Choosing a pid needs root. In CI (CI=true), which runs as root, not
// being root is a failed check, not a silent skip.
bool may_choose_pids() {
  if (::geteuid() == 0) return true;
  if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true")
    FAIL_CHECK("not root in CI: the reused-pid cases cannot run");
  else
    MESSAGE("not root: no pid namespace with a chosen pid, case not run");
  return false;
}

// Runs scenario(holder) as pid 1 of a new pid namespace, where `holder` is a
// child holding `lock` `depth` times; true when it returned true.
template <class Holdable>
bool with_holder_in_new_pid_namespace(Holdable& lock, int depth, const std::function<bool(pid_t)>& scenario) {
  return in_new_pid_namespace([&] {
    pid_t holder = fork_holder(lock, depth);
    return holder != 0 && scenario(holder);
  });
}

}  // namespace

TEST_CASE("reused pid: a Lock waiter takes over from a dead holder whose pid a live process has") {
  if (!may_choose_pids()) return;
  mp::Lock lock;
  // [0] the new process got the holder's pid, [1] the waiter got the lock,
  // [2] it saw owner_died(), [3] when it got it, [4] when it was resumed
  mp::RawArray<long> seen(5);
  bool ran = with_holder_in_new_pid_namespace(lock, 1, [&](pid_t holder) {
    pid_t waiter = fork_running([&] {
      seen[1] = lock.acquire(3s);
      seen[3] = now_ns();
      seen[2] = lock.owner_died();
    });
    std::this_thread::sleep_for(100ms);  // asleep on the lock by now
    // While the holder's pid is free, or its zombie visible, even a bare-pid
    // check would see the death: the waiter is stopped through that window
    // and can only meet the new process.
    int status = 0;
    if (::kill(waiter, SIGSTOP) != 0 || ::waitpid(waiter, &status, WUNTRACED) != waiter) return false;
    ::kill(holder, SIGKILL);
    reap(holder);
    if (!next_pid_will_be(holder)) return false;
    pid_t reuser = fork_running([] { ::pause(); });  // started 100 ms after the holder: another tag
    seen[0] = reuser == holder;
    seen[4] = now_ns();
    ::kill(waiter, SIGCONT);
    reap(waiter);
    ::kill(reuser, SIGKILL);
    reap(reuser);
    return true;
  });
  REQUIRE(ran);
  REQUIRE(seen[0] == 1);
  CHECK(seen[1] == 1);
  CHECK(seen[2] == 1);
  CHECK(seen[3] - seen[4] < ns(takeover_bound));
}

TEST_CASE("reused pid: a new process with a dead RLock holder's pid and tid takes it over at depth 1") {
  if (!may_choose_pids()) return;
  mp::RLock lock;
  // [0] the new process got the holder's pid, [1] its main thread's tid is
  // that pid too, [2] it got the lock, [3] it saw owner_died(), [4] one
  // release freed it, [5] how long the acquire took
  mp::RawArray<long> seen(6);
  bool ran = with_holder_in_new_pid_namespace(lock, 2, [&](pid_t holder) {
    ::kill(holder, SIGKILL);
    reap(holder);
    std::this_thread::sleep_for(30ms);  // a later clock tick: the new process's start differs
    if (!next_pid_will_be(holder)) return false;
    pid_t reuser = fork_running([&] {
      seen[0] = ::getpid() == holder;
      seen[1] = ::gettid() == holder;
      long start = now_ns();
      seen[2] = lock.acquire(3s);
      seen[5] = now_ns() - start;
      seen[3] = lock.owner_died();
      lock.release();
      seen[4] = !lock.locked();
    });
    reap(reuser);
    return true;
  });
  REQUIRE(ran);
  REQUIRE(seen[0] == 1);
  CHECK(seen[1] == 1);
  CHECK(seen[2] == 1);
  CHECK(seen[3] == 1);
  CHECK(seen[4] == 1);
  CHECK(seen[5] < ns(takeover_bound));
}

// --- wall-clock steps ---------------------------------------------------------------------------

namespace {

// Adds `step` to CLOCK_REALTIME in one relative adjustment (never a read and
// a set, which would lose the time between them).
bool step_wall_clock(std::chrono::seconds step) {
  timex change{};
  change.modes = ADJ_SETOFFSET | ADJ_NANO;
  change.time.tv_sec = static_cast<time_t>(step.count());  // tv_usec holds nanoseconds: 0
  return ::clock_adjtime(CLOCK_REALTIME, &change) >= 0;
}

// A child that, once `go` is set, steps the wall clock by `step`, records when
// in `stepped_at`, and steps it back after `hold`. It leaves the test's process
// group and blocks every blockable signal, so the clock comes back even if the
// test is killed meanwhile; exit code 0 when both steps worked.
mp::Process start_clock_stepper(std::chrono::seconds step, std::chrono::milliseconds hold,
                                mp::Event& go, mp::RawValue<long>& stepped_at) {
  return spawn([step, hold, &go, &stepped_at] {
    ::setsid();
    sigset_t all;
    ::sigfillset(&all);
    ::sigprocmask(SIG_BLOCK, &all, nullptr);
    if (!go.wait(patience) || !step_wall_clock(step)) return false;
    stepped_at.value() = now_ns();
    timespec held{static_cast<time_t>(hold.count() / 1000), static_cast<long>(hold.count() % 1000) * 1'000'000};
    ::clock_nanosleep(CLOCK_MONOTONIC, 0, &held, nullptr);  // no signal can cut it short
    return step_wall_clock(-step);
  });
}

}  // namespace

TEST_CASE("timeouts run on the monotonic clock: wall-clock steps neither shorten nor stretch them") {
  if (::geteuid() != 0) {
    MESSAGE("not root: the wall clock cannot be stepped, case not run");
    return;
  }
  constexpr auto timeout = 300ms;
  // A wait on the wall clock would return at the forward step (~50 ms in) or
  // at the step back (1.5 s after the backward one): both outside these bounds.
  constexpr double earliest = 0.29, latest = 1.0 * sanitizer_slowdown;
  for (auto step : {10s, -10s}) {
    CAPTURE(step.count());
    mp::Lock held;
    held.acquire();
    mp::Condition condition;
    mp::Event never_set, go;
    mp::Queue<int> empty;
    mp::RawValue<long> stepped_at(0);
    mp::Process stepper = start_clock_stepper(step, 1500ms, go, stepped_at);

    struct Wait {
      const char* what;
      std::function<bool()> times_out;
      long started_at = 0;
      double waited = 0;
      bool timed_out = false;
    };
    std::vector<Wait> waits;
    waits.push_back({"Event.wait", [&] { return !never_set.wait(timeout); }});
    waits.push_back({"Lock.acquire", [&] { return !held.acquire(timeout); }});
    waits.push_back({"Condition.wait", [&] {
                       std::unique_lock guard(condition);
                       return !condition.wait(timeout);
                     }});
    waits.push_back({"Queue.get", [&] {
                       try {
                         empty.get(timeout);
                       } catch (const mp::Empty&) {
                         return true;
                       }
                       return false;
                     }});
    std::vector<std::thread> threads;
    for (auto& wait : waits) {
      threads.emplace_back([&wait] {
        wait.started_at = now_ns();
        auto start = Clock::now();
        wait.timed_out = wait.times_out();
        wait.waited = seconds_since(start);
      });
    }
    std::this_thread::sleep_for(50ms);
    go.set();
    for (auto& thread : threads) thread.join();
    held.release();
    REQUIRE(finish(stepper) == 0);
    for (const auto& wait : waits) {
      std::string what = wait.what;
      CAPTURE(what);
      CHECK(wait.timed_out);
      CHECK(wait.waited >= earliest);
      CHECK(wait.waited < latest);
      // The step must land while the wait runs, or it proves nothing.
      CHECK(stepped_at.value() - wait.started_at < ns(timeout) - ns(50ms));
    }
  }
}

TEST_CASE("repr and operator<< are Python's for Lock, RLock, the semaphores, Condition and Event, every version") {
  std::vector<std::string> ours;
  auto show = [&](const auto& object) {
    std::ostringstream printed;
    printed << object;
    CHECK(printed.str() == object.repr());
    ours.push_back(test_support::normalized_repr(object.repr()));
  };
  auto shown_while_held = [&](auto lock, bool by_thread) {
    mp::Event held, release;
    auto hold = [=]() mutable {
      if (!lock.acquire(30s)) return;
      held.set();
      release.wait(30s);
      lock.release();
    };
    std::thread thread;
    mp::Process process(hold);
    if (by_thread)
      thread = std::thread(hold);
    else
      process.start();
    CHECK(held.wait(30s));
    show(lock);
    release.set();
    if (by_thread)
      thread.join();
    else
      process.join(30s);
  };

  mp::Lock lock;
  show(lock);
  REQUIRE(lock.acquire(false));
  show(lock);
  lock.release();
  shown_while_held(mp::Lock(), false);
  mp::RLock rlock;
  show(rlock);
  REQUIRE(rlock.acquire(false));
  REQUIRE(rlock.acquire(false));
  show(rlock);
  rlock.release();
  rlock.release();
  shown_while_held(mp::RLock(), false);
  shown_while_held(mp::RLock(), true);
  mp::Semaphore semaphore(3);
  REQUIRE(semaphore.acquire(false));
  show(semaphore);
  mp::BoundedSemaphore bounded(2);
  REQUIRE(bounded.acquire(false));
  show(bounded);
  mp::Condition condition;
  show(condition);
  show(mp::Condition(mp::Lock()));
  std::thread waiter([&] {
    if (!condition.acquire(30s)) return;
    condition.wait(30s);
    condition.release();
  });
  auto deadline = Clock::now() + 30s;
  while (condition.repr().ends_with(" 0)>") && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  show(condition);
  REQUIRE(condition.acquire(30s));
  condition.notify();
  condition.release();
  waiter.join();
  mp::Event event;
  show(event);
  event.set();
  show(event);

  for (const auto& python : test_support::python_interpreters()) {
    CAPTURE(python.version);
    CHECK(test_support::python_reprs(python.path, "synchronize") == ours);
  }
}

}  // TEST_SUITE
