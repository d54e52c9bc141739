// lib/synchronize.cpp: Lock, RLock, Semaphore, Condition, Event and Barrier
// (synchronize.hpp) over futex words in shared memory, and the slow path of
// the lock word (sync_lock_word.hpp). Invariants: a lock word holds 0 or its
// holder's owner stamp, so a holder is judged dead only when the process that
// stamped it is gone, never because its pid now names another process; every
// wait has a monotonic deadline and lock waits wake every liveness_slice.
#include "mp/synchronize.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <mutex>
#include <string>

#include "mp/detail/fd.hpp"
#include "mp/detail/futex.hpp"
#include "mp/detail/shared_mapping.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/errors.hpp"
#include "mp/process.hpp"

namespace mp {
namespace detail {

// How long a waiter sleeps before asking whether the holder still lives: the
// bound on recovery after a holder's death, against one read of its
// /proc/<pid>/stat per slice.
constexpr std::chrono::milliseconds liveness_slice{20};
constexpr int spins_before_sleeping = 100;

struct SemaphoreState {
  std::atomic<std::uint32_t> value;
  std::atomic<std::uint32_t> sleepers{0};
  std::uint32_t maximum;
};

// A notify hands out tokens and bumps the generation; a waiter may take a token
// only once the generation moved past the one it registered in, so a wait that
// begins after a notify never steals that notify. sleepers (waiters not yet
// served) is written only under the condition's lock; it is atomic (relaxed)
// so that repr() may read it without the lock, as Python's does.
struct ConditionState {
  std::atomic<std::uint32_t> generation{0};
  std::atomic<std::uint32_t> tokens{0};
  std::atomic<std::uint32_t> sleepers{0};
};

// threading.Barrier's state machine, guarded by the barrier's condition lock.
enum BarrierPhase : int { filling = 0, draining = 1, resetting = -1, broken_phase = -2 };
struct BarrierState {
  int parties;
  std::atomic<int> count{0};
  std::atomic<int> phase{filling};
};

namespace {

// Whether a process with this pid exists and has not exited, by the pid
// alone: for holders whose start /proc cannot tell.
bool pid_alive(pid_t pid) {
  int fd = static_cast<int>(retry("pidfd_open", [&] { return ::syscall(SYS_pidfd_open, pid, 0); }));
  if (fd < 0) {
    if (errno == ESRCH) return false;
    // No pidfd (old kernel, descriptors exhausted): kill(0) cannot see zombies, but still sees reaped holders.
    return retry("kill", [&] { return ::kill(pid, 0); }) == 0 || errno != ESRCH;
  }
  FileDescriptor pidfd(fd);
  pollfd exited{pidfd.get(), POLLIN, 0};
  return check("poll", [&] { return ::poll(&exited, 1, 0); }, "Lock") == 0;
}

}  // namespace

bool owner_alive(std::uint64_t stamp) {
  const std::uint64_t mine = current_owner_stamp();
  if (stamp == mine) return true;  // a thread of ours holds it
  const pid_t pid = stamp_pid(stamp);
  // Our pid with another stamp: the process that had this pid before us.
  if (pid == current_pid()) return false;
  // Without a tag of our own, this /proc is not our pid namespace's.
  if (stamp_tag(mine) == 0) return pid_alive(pid);
  std::optional<ProcessStart> now = read_process_start(pid);
  if (!now) return pid_alive(pid);  // gone, or hidden (hidepid): the pidfd decides
  if (now->exited) return false;
  return stamp_tag(stamp) == 0 || now->tag == stamp_tag(stamp);
}

bool lock_word_acquire_slow(LockWord& lock, const Deadline& deadline) {
  const std::uint64_t me = current_owner_stamp();
  for (int spin = 0; spin < spins_before_sleeping; ++spin) {
    std::uint64_t value = lock.word.load(std::memory_order_relaxed);
    if (value == 0 && lock.word.compare_exchange_weak(value, me, std::memory_order_acquire,
                                                      std::memory_order_relaxed))
      return true;
    cpu_relax();
  }
  for (;;) {
    std::uint64_t value = lock.word.load(std::memory_order_relaxed);
    if (value == 0) {
      // Others may sleep on the word: keep the bit so that our release wakes one.
      if (lock.word.compare_exchange_strong(value, me | LockWord::contended_bit,
                                            std::memory_order_acquire, std::memory_order_relaxed))
        return true;
      continue;
    }
    if (!(value & LockWord::contended_bit)) {
      if (!lock.word.compare_exchange_strong(value, value | LockWord::contended_bit,
                                             std::memory_order_relaxed))
        continue;
      value |= LockWord::contended_bit;
    }
    if (futex_wait(lock.word, LockWord::futex_half(value), deadline.capped(liveness_slice))) continue;
    // The compare-and-swap replaces exactly the stamp judged dead: if the word
    // changed meanwhile (a release, another taker), we look again.
    if (!owner_alive(LockWord::holder(value))) {
      if (lock.word.compare_exchange_strong(value, me | LockWord::contended_bit,
                                            std::memory_order_acquire, std::memory_order_relaxed)) {
        lock.owner_died.store(1, std::memory_order_relaxed);
        return true;
      }
      continue;
    }
    if (deadline.expired()) return false;
  }
}

void lock_word_wake_one(LockWord& lock) noexcept { futex_wake(lock.word, 1); }

namespace {

template <class State, class... Args>
std::shared_ptr<State> make_state(const char* object, Args&&... args) {
  return make_shared_object<State>(object, std::forward<Args>(args)...);
}

bool take_token(ConditionState& state) {
  std::uint32_t tokens = state.tokens.load(std::memory_order_acquire);
  while (tokens > 0)
    if (state.tokens.compare_exchange_weak(tokens, tokens - 1, std::memory_order_acquire)) return true;
  return false;
}

}  // namespace
}  // namespace detail

using detail::Deadline;

// --- Lock ---------------------------------------------------------------------------------

Lock::Lock() : word_(detail::make_state<detail::LockWord>("Lock")) {}

bool Lock::acquire_until(const Deadline& deadline) {
  return word_->try_acquire_fast() || detail::lock_word_acquire_slow(*word_, deadline);
}

void Lock::released_too_often() {
  throw ValueError("Lock.release: semaphore or lock released too many times");
}

bool Lock::locked() const { return word_->word.load(std::memory_order_relaxed) != 0; }
bool Lock::owner_died() const { return word_->owner_died.load(std::memory_order_relaxed) != 0; }
void Lock::mark_consistent() { word_->owner_died.store(0, std::memory_order_relaxed); }

std::string Lock::repr() const {
  std::uint64_t holder = detail::LockWord::holder(word_->word.load(std::memory_order_relaxed));
  std::string owner = holder == 0                              ? "None"
                      : holder == detail::current_owner_stamp() ? current_process().name
                                                                : "SomeOtherProcess";
  return "<Lock(owner=" + owner + ")>";
}

bool Lock::held_by_caller_process() const {
  return detail::LockWord::holder(word_->word.load(std::memory_order_relaxed)) ==
         detail::current_owner_stamp();
}

// --- RLock --------------------------------------------------------------------------------

RLock::RLock() : state_(detail::make_state<detail::RLockState>("RLock")) {}
RLock::RLock(std::shared_ptr<detail::RLockState> state) : state_(std::move(state)) {}

bool RLock::acquire_until(const Deadline& deadline) {
  detail::RLockState& state = *state_;
  if (state.held_by_caller()) {
    state.depth.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (!state.lock.try_acquire_fast() && !detail::lock_word_acquire_slow(state.lock, deadline))
    return false;
  state.owner_tid.store(detail::current_tid(), std::memory_order_relaxed);
  state.depth.store(1, std::memory_order_relaxed);
  return true;
}

void RLock::release() {
  detail::RLockState& state = *state_;
  if (!state.held_by_caller())
    throw ValueError("RLock.release: attempt to release recursive lock not owned by thread");
  if (state.depth.fetch_sub(1, std::memory_order_relaxed) > 1) return;
  state.owner_tid.store(0, std::memory_order_relaxed);
  detail::lock_word_release(state.lock);
}

bool RLock::locked() const { return state_->lock.word.load(std::memory_order_relaxed) != 0; }
bool RLock::owner_died() const {
  return state_->lock.owner_died.load(std::memory_order_relaxed) != 0;
}
void RLock::mark_consistent() { state_->lock.owner_died.store(0, std::memory_order_relaxed); }

std::string RLock::repr() const {
  const detail::RLockState& state = *state_;
  std::uint64_t holder = detail::LockWord::holder(state.lock.word.load(std::memory_order_relaxed));
  std::string owner_and_count =
      holder == 0                              ? "None, 0"
      : state.held_by_caller()                 ? current_process().name + ", " +
                                   std::to_string(state.depth.load(std::memory_order_relaxed))
      : holder == detail::current_owner_stamp() ? "SomeOtherThread, nonzero"
                                                : "SomeOtherProcess, nonzero";
  return "<RLock(" + owner_and_count + ")>";
}

// --- Semaphore ----------------------------------------------------------------------------

Semaphore::Semaphore(int value) : Semaphore(value, INT_MAX, "Semaphore") {}

Semaphore::Semaphore(int value, std::uint32_t maximum, const char* kind) {
  if (value < 0)
    throw ValueError(std::string(kind) + ": initial value must be >= 0, got " + std::to_string(value));
  state_ = detail::make_state<detail::SemaphoreState>(kind);
  state_->value.store(static_cast<std::uint32_t>(value));
  state_->maximum = maximum;
}

BoundedSemaphore::BoundedSemaphore(int value)
    : Semaphore(value, static_cast<std::uint32_t>(std::max(value, 0)), "BoundedSemaphore") {}

bool Semaphore::acquire_until(const Deadline& deadline) {
  detail::SemaphoreState& state = *state_;
  auto take_one = [&] {
    std::uint32_t value = state.value.load(std::memory_order_relaxed);
    while (value > 0)
      if (state.value.compare_exchange_weak(value, value - 1, std::memory_order_acquire)) return true;
    return false;
  };
  for (;;) {
    if (take_one()) return true;
    // sleepers is raised before the kernel re-checks value == 0, and release()
    // raises value before reading sleepers (both seq_cst): no lost wake-up.
    state.sleepers.fetch_add(1);
    bool in_time = detail::futex_wait(state.value, 0, deadline);
    state.sleepers.fetch_sub(1);
    if (!in_time) return take_one();
  }
}

void Semaphore::release() {
  detail::SemaphoreState& state = *state_;
  std::uint32_t value = state.value.load(std::memory_order_relaxed);
  do {
    if (value >= state.maximum)
      throw ValueError(std::string(state.maximum != INT_MAX ? "BoundedSemaphore" : "Semaphore") +
                       ".release: semaphore or lock released too many times");
  } while (!state.value.compare_exchange_weak(value, value + 1));
  if (state.sleepers.load() > 0) detail::futex_wake(state.value, 1);
}

int Semaphore::get_value() const {
  return static_cast<int>(state_->value.load(std::memory_order_relaxed));
}

std::string Semaphore::repr() const {
  std::string value = "value=" + std::to_string(get_value());
  if (state_->maximum == INT_MAX) return "<Semaphore(" + value + ")>";
  return "<BoundedSemaphore(" + value + ", maxvalue=" + std::to_string(state_->maximum) + ")>";
}

// --- Condition ----------------------------------------------------------------------------

Condition::Condition() : Condition(RLock()) {}
Condition::Condition(Lock lock)
    : lock_(std::move(lock)), state_(detail::make_state<detail::ConditionState>("Condition")) {}
Condition::Condition(RLock lock)
    : lock_(std::move(lock)), state_(detail::make_state<detail::ConditionState>("Condition")) {}

bool Condition::acquire_until(const Deadline& deadline) {
  return std::visit([&](auto& lock) { return lock.acquire_until(deadline); }, lock_);
}
void Condition::release() {
  std::visit([](auto& lock) { lock.release(); }, lock_);
}
bool Condition::owner_died() const {
  return std::visit([](const auto& lock) { return lock.owner_died(); }, lock_);
}
void Condition::mark_consistent() {
  std::visit([](auto& lock) { lock.mark_consistent(); }, lock_);
}

void Condition::require_held(const char* method) const {
  bool held = std::holds_alternative<Lock>(lock_)
                  ? std::get<Lock>(lock_).held_by_caller_process()
                  : std::get<RLock>(lock_).state_->held_by_caller();
  if (held) return;
  if (std::string_view(method) == "wait")
    throw ValueError("Condition.wait: must acquire() condition before using wait()");
  throw ValueError(std::string("Condition.") + method + ": lock is not owned");
}

bool Condition::wait_until(const Deadline& deadline) {
  require_held("wait");
  detail::ConditionState& state = *state_;
  const std::uint32_t registered = state.generation.load(std::memory_order_acquire);
  state.sleepers.fetch_add(1, std::memory_order_relaxed);

  // Let go of every recursion level; they come back after the wait.
  std::uint32_t depth = 1;
  if (auto* rlock = std::get_if<RLock>(&lock_)) {
    depth = rlock->state_->depth.exchange(1, std::memory_order_relaxed);
    rlock->release();
  } else {
    std::get<Lock>(lock_).release();
  }

  bool notified = false;
  for (;;) {
    std::uint32_t generation = state.generation.load(std::memory_order_acquire);
    if (generation != registered && detail::take_token(state)) {
      notified = true;
      break;
    }
    if (!detail::futex_wait(state.generation, generation, deadline)) break;
  }

  acquire_until(Deadline::never());
  if (auto* rlock = std::get_if<RLock>(&lock_))
    rlock->state_->depth.store(depth, std::memory_order_relaxed);
  if (!notified) {
    // A notify may have picked us while we timed out: then its token is ours.
    if (state.generation.load(std::memory_order_acquire) != registered && detail::take_token(state))
      notified = true;
    else
      state.sleepers.fetch_sub(1, std::memory_order_relaxed);
  }
  return notified;
}

void Condition::notify(int n) {
  require_held("notify");
  detail::ConditionState& state = *state_;
  std::uint32_t woken = std::min(static_cast<std::uint32_t>(std::max(n, 0)),
                                 state.sleepers.load(std::memory_order_relaxed));
  if (woken == 0) return;
  state.sleepers.fetch_sub(woken, std::memory_order_relaxed);
  state.tokens.fetch_add(woken, std::memory_order_release);
  state.generation.fetch_add(1, std::memory_order_release);
  detail::futex_wake(state.generation, static_cast<int>(woken));
}

void Condition::notify_all() { notify(INT_MAX); }

std::string Condition::repr() const {
  std::string lock = std::visit([](const auto& lock) { return lock.repr(); }, lock_);
  return "<Condition(" + lock + ", " +
         std::to_string(state_->sleepers.load(std::memory_order_relaxed)) + ")>";
}

// --- Event --------------------------------------------------------------------------------

Event::Event() : flag_(detail::make_state<std::atomic<std::uint32_t>>("Event", 0u)) {}

void Event::set() {
  flag_->store(1, std::memory_order_release);
  detail::futex_wake(*flag_, detail::futex_wake_all);
}
void Event::clear() { flag_->store(0, std::memory_order_release); }
bool Event::is_set() const { return flag_->load(std::memory_order_acquire) != 0; }

std::string Event::repr() const {
  char address[32];
  std::snprintf(address, sizeof address, "%p", static_cast<const void*>(flag_.get()));
  return std::string("<Event at ") + address + (is_set() ? " set>" : " unset>");
}

bool Event::wait_until(const Deadline& deadline) {
  while (!is_set())
    if (!detail::futex_wait(*flag_, 0, deadline)) return is_set();
  return true;
}

// --- Barrier ------------------------------------------------------------------------------

Barrier::Barrier(int parties, std::function<void()> action,
                 std::optional<std::chrono::nanoseconds> timeout)
    : condition_(Lock()), action_(std::move(action)), timeout_(timeout) {
  if (parties <= 0)
    throw ValueError("Barrier: parties must be at least 1, got " + std::to_string(parties));
  state_ = detail::make_state<detail::BarrierState>("Barrier");
  state_->parties = parties;
}

int Barrier::wait() {
  return wait_until(timeout_ ? Deadline::after(*timeout_) : Deadline::never());
}

int Barrier::wait_until(const Deadline& deadline) {
  using namespace detail;
  BarrierState& state = *state_;
  std::unique_lock guard(condition_);
  auto not_turning_over = [&] {
    int phase = state.phase.load(std::memory_order_relaxed);
    return phase != draining && phase != resetting;
  };
  // Python waits here without a timeout; a party killed inside the previous
  // cycle would then hold everyone forever.
  if (!condition_.wait_for_until(not_turning_over, deadline))
    throw BrokenBarrierError("Barrier.wait: timed out waiting for the previous cycle to drain");
  if (state.phase.load(std::memory_order_relaxed) == broken_phase)
    throw BrokenBarrierError("Barrier.wait: the barrier is broken");

  // The last one out of a draining or resetting barrier opens it for the next cycle.
  auto leave = [&] {
    int phase = state.phase.load(std::memory_order_relaxed);
    if (state.count.fetch_sub(1, std::memory_order_relaxed) == 1 &&
        (phase == draining || phase == resetting)) {
      state.phase.store(filling, std::memory_order_relaxed);
      condition_.notify_all();
    }
  };
  int index = state.count.fetch_add(1, std::memory_order_relaxed);
  try {
    if (index + 1 == state.parties) {
      try {
        if (action_) action_();
      } catch (...) {
        break_barrier();
        throw;
      }
      state.phase.store(draining, std::memory_order_relaxed);
      condition_.notify_all();
    } else {
      auto released = [&] { return state.phase.load(std::memory_order_relaxed) != filling; };
      if (!condition_.wait_for_until(released, deadline)) {
        break_barrier();
        throw BrokenBarrierError("Barrier.wait: timed out, the barrier is now broken");
      }
      if (state.phase.load(std::memory_order_relaxed) < 0)
        throw BrokenBarrierError("Barrier.wait: the barrier was broken, aborted or reset");
    }
  } catch (...) {
    leave();
    throw;
  }
  leave();
  return index;
}

void Barrier::break_barrier() {
  state_->phase.store(detail::broken_phase, std::memory_order_relaxed);
  condition_.notify_all();
}

void Barrier::reset() {
  using namespace detail;
  std::lock_guard guard(condition_);
  BarrierState& state = *state_;
  int phase = state.phase.load(std::memory_order_relaxed);
  if (state.count.load(std::memory_order_relaxed) > 0) {
    if (phase == filling || phase == broken_phase) state.phase.store(resetting, std::memory_order_relaxed);
  } else {
    state.phase.store(filling, std::memory_order_relaxed);
  }
  condition_.notify_all();
}

void Barrier::abort() {
  std::lock_guard guard(condition_);
  break_barrier();
}

int Barrier::parties() const { return state_->parties; }

int Barrier::n_waiting() const {
  return state_->phase.load(std::memory_order_relaxed) == detail::filling
             ? state_->count.load(std::memory_order_relaxed)
             : 0;
}

bool Barrier::broken() const {
  return state_->phase.load(std::memory_order_relaxed) == detail::broken_phase;
}

}  // namespace mp
