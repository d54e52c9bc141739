// lib/pool.cpp: the Pool's parent side (PoolCore) and its workers' loop.
// Invariants:
//  - two helper threads: the watcher turns worker deaths into messages on the
//    result queue; the result thread handles every message in queue order and
//    is the only thread that forks workers, never with the mutex held; a
//    future's result() may handle the head instead when it is that future's
//    task result (deliver_own), under the same `reader` lock, so the order
//    holds;
//  - every message on the result queue reaches a reader: a worker's result
//    put while a result() watches the queue wakes nobody, and that result()
//    then takes it or wakes the result thread (QueueCore::watch); deaths,
//    initializer failures and the stop message always wake it;
//  - no exception leaves either thread (it would std::terminate the program):
//    a worker reaped elsewhere is lost with its exit code unknown, a
//    replacement that cannot start leaves its slot vacant (retried; with no
//    worker left the work fails with the cause), a failed poll or put in the
//    watcher is retried, and anything else fails the pool's work with an mp::
//    error naming it;
//  - a task is lost only if its worker began it (its slot says so); otherwise
//    it goes to another worker.
#include "mp/pool.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "mp/detail/fd.hpp"
#include "mp/detail/identity.hpp"
#include "mp/detail/job_book.hpp"
#include "mp/detail/pool_messages.hpp"
#include "mp/detail/remote_exception.hpp"
#include "mp/detail/shared_mapping.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/process.hpp"
#include "mp/detail/queue_core.hpp"

namespace mp {
namespace detail {
namespace {

// One per worker slot, in shared memory: the last task the worker began. A
// worker stores it after taking the task from its queue and before running
// it, so after a death every task up to it was begun (and is lost), and every
// task after it was never touched (and goes to another worker).
struct WorkerSlot {
  std::atomic<std::uint64_t> started{0};
};

// How many tasks a worker holds (one running, the others waiting in its
// queue). At least two, so that it never idles while its next task travels.
// More when its tasks are short: enough for about `queued_work_ns` of work, so
// that it does not run dry (and sleep, and need waking) every time the result
// thread is a little late, while a task still waits at most about that long
// behind the short ones ahead of it. Before its first result, a worker's task
// lengths are unknown and it gets the minimum. A worker is topped up once it
// is down to half its window, not after every result, so that one wake-up
// brings it many tasks.
constexpr std::size_t min_window = 2;
constexpr std::size_t max_window = 64;
constexpr std::uint64_t queued_work_ns = 1'000'000;

using Pending = JobBook::Pending;
using Delivery = JobBook::Delivery;
using Phase = JobBook::Phase;

struct InFlight {
  std::uint64_t seq;
  std::uint64_t job;
  PoolTask task;
};

// How long a slot whose replacement could not be started (fork's EAGAIN,
// EMFILE for the task queue's memfd or the pidfd) waits before the next try.
constexpr auto respawn_retry = std::chrono::milliseconds(50);

struct Worker {
  std::unique_ptr<Process> process;
  std::shared_ptr<QueueCore> tasks;
  std::deque<InFlight> in_flight{};
  std::uint64_t generation = 0;
  bool alive = false;
  bool watched = false;
  int budget = -1;  // tasks it may still be given; -1: unlimited
  std::uint64_t run_ns = 0;  // how long its recent tasks took, on average; 0: none seen
  std::size_t window = min_window;
  bool topping_up = true;  // below half its window since it was last full

  // Whether pump() should give it a task now (see the window above).
  bool wants_tasks() {
    if (!alive || budget == 0) return false;
    if (in_flight.size() <= window / 2) topping_up = true;
    if (in_flight.size() >= window) topping_up = false;
    return topping_up;
  }

  void learn_run_time(std::uint64_t sample) {
    run_ns = run_ns == 0 ? sample : (3 * run_ns + sample) / 4;
    window = static_cast<std::size_t>(std::clamp<std::uint64_t>(
        queued_work_ns / std::max<std::uint64_t>(run_ns, 1), min_window, max_window));
  }
};

// `prefix` followed by what `cause` says, as an mp:: error: an OSError keeps
// its errno, so that the caller can still tell EAGAIN from EMFILE.
std::exception_ptr pool_failure(const std::string& prefix, const std::exception_ptr& cause) {
  try {
    std::rethrow_exception(cause);
  } catch (const OSError& e) {
    return std::make_exception_ptr(OSError(prefix + e.what(), e.code()));
  } catch (const std::exception& e) {
    return std::make_exception_ptr(ProcessError(prefix + e.what()));
  } catch (...) {
    return std::make_exception_ptr(ProcessError(prefix + "something that is not a std::exception"));
  }
}

// Reaps a worker whose sentinel fired. Its exit code, or nullopt if some other
// part of the program reaped it first (SIGCHLD set to SIG_IGN, a waitpid(-1)):
// waitpid then fails with ECHILD, which Process::join may report by throwing.
std::optional<int> reap(Process& process) noexcept {
  try {
    process.join();
    return process.exitcode();
  } catch (...) {
    return std::nullopt;
  }
}

void put_stop(QueueCore& tasks) {
  std::string stop;
  begin_task(stop);
  seal_task(stop, 0, 0);
  tasks.put(stop, Deadline::never());
}

}  // namespace

void raise_serialization_error(std::string_view message, std::string&) {
  throw SerializationError(std::string(message));
}

std::size_t default_chunksize(std::size_t items, int processes) {
  // Python: chunksize, extra = divmod(len, len(pool) * 4); if extra: chunksize += 1
  std::size_t per = 4 * static_cast<std::size_t>(processes);
  return items / per + (items % per != 0 ? 1 : 0);
}

struct PoolCore::State : JobBook {
  State(int processes, std::function<void()> initializer, std::optional<int> maxtasks)
      : processes(processes),
        initializer(std::move(initializer)),
        maxtasks(maxtasks),
        slot_mapping(sizeof(WorkerSlot) * static_cast<std::size_t>(processes), "Pool"),
        slots(static_cast<WorkerSlot*>(slot_mapping.data())),
        wake(check("eventfd", [] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }, "Pool")),
        workers(static_cast<std::size_t>(processes)) {}

  const int processes;
  const std::function<void()> initializer;
  const std::optional<int> maxtasks;
  const pid_t owner = current_pid();
  // The result thread does not spin: on a loaded machine with fewer cores
  // than workers plus helper threads, a spinning reader takes the CPU its
  // record must come from (measured: sequential apply_async().get() 30-40%
  // slower with every pool queue spinning).
  QueueCore results{0, "Pool result queue", false};
  // Held by whoever handles the head of `results`: the result thread, or a
  // future's result() taking its own result (deliver_own).
  std::mutex reader;
  SharedMapping slot_mapping;
  WorkerSlot* slots;
  FileDescriptor wake;  // tells the watcher thread to re-read the worker table

  mutable std::mutex mutex;
  std::condition_variable changed;  // jobs finished, workers exited, spawning done
  bool draining = false;  // join() is telling workers to exit: start no more
  bool stopping = false;
  std::vector<Worker> workers;
  std::uint64_t next_seq = 1;
  int next_worker_name = 1;
  bool spawned_initial = false;
  std::exception_ptr spawn_error;
  std::thread result_thread;
  std::thread watcher_thread;
  // Result thread only: slots whose replacement failed to start, and when to
  // try again.
  std::vector<std::uint32_t> vacant_slots;
  Clock::time_point next_respawn;
  // Watcher thread only, kept between rounds.
  std::vector<pollfd> watched_fds;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> watched_owners;
  std::string watcher_message;

  void poke_watcher() noexcept {
    std::uint64_t one = 1;
    (void)retry("write", [&] { return ::write(wake.get(), &one, sizeof one); });
  }

  [[noreturn]] void worker_main(std::uint32_t slot, const std::shared_ptr<QueueCore>& tasks,
                                std::uint64_t generation) {
    // The parent owns Ctrl-C; a worker dies with the parent, never orphaned.
    ::signal(SIGINT, SIG_IGN);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != owner) ::_exit(1);
    std::string result;
    if (initializer) {
      try {
        initializer();
      } catch (...) {
        describe_current_exception(result, ResultKind::initializer_failed, slot, generation, 0);
        results.put(result, Deadline::never());
        ::_exit(1);
      }
    }
    int done = 0;
    std::string_view record;
    // A task's time runs from when the worker could start it (it took it from
    // an empty queue, or finished the one before) to when it is done: one
    // clock read per task while the worker is busy.
    using Clock = std::chrono::steady_clock;
    Clock::time_point finished = Clock::now();
    // A task is read where it lies in the queue, and removed once run, as
    // the next one is taken.
    tasks->peek(record, Deadline::never());
    bool idle = true;  // the worker waited for this task
    for (;;) {
      Clock::time_point began = idle ? Clock::now() : finished;
      TaskRecord task = decode_task(record);
      if (task.seq == 0) ::_exit(0);
      slots[slot].started.store(task.seq, std::memory_order_release);
      begin_result(result, ResultKind::succeeded, slot, generation, task.seq);
      try {
        reinterpret_cast<Runner>(task.runner)(task.payload, result);
      } catch (...) {
        describe_current_exception(result, ResultKind::failed, slot, generation, task.seq);
      }
      finished = Clock::now();
      stamp_run_time(result, static_cast<std::uint64_t>(
                                 std::chrono::nanoseconds(finished - began).count()));
      // A future's result() that watches the queue takes its result itself
      // (deliver_own): the result thread is woken only if it leaves one.
      results.put_unless_watched(result, Deadline::never());
      if (maxtasks && ++done >= *maxtasks) ::_exit(0);
      idle = tasks->qsize() <= 1;  // nothing queued behind this task
      tasks->pop_and_peek(record, Deadline::never());
    }
  }

  // Forks a worker into `slot`. Runs in the result thread, which lives as long
  // as the pool, so PR_SET_PDEATHSIG (tied to the forking thread) only fires
  // when the pool's process dies. Never called with the mutex held: a lock
  // held across fork would stay locked in the child.
  void spawn(std::uint32_t slot) {
    // The worker, the only reader, spins briefly for its next task (adaptive,
    // see SpinPolicy): a caller that submits a task as soon as it has the
    // last one's result then finds it awake, and pays no futex wake-up.
    auto tasks = std::make_shared<QueueCore>(0, "Pool task queue", true);
    std::uint64_t generation;
    std::string name;
    {
      std::lock_guard lock(mutex);
      generation = workers[slot].generation + 1;
      name = "ForkPoolWorker-" + std::to_string(next_worker_name++);
    }
    slots[slot].started.store(0, std::memory_order_relaxed);
    auto process = std::make_unique<Process>(
        ProcessOptions{name, true},
        [this, slot, tasks, generation] { worker_main(slot, tasks, generation); });
    process->start();
    std::lock_guard lock(mutex);
    // A new worker: nothing in flight, its task lengths not learnt yet.
    Worker& worker = workers[slot] = Worker{.process = std::move(process),
                                            .tasks = tasks,
                                            .generation = generation,
                                            .alive = true,
                                            .watched = true,
                                            .budget = maxtasks ? *maxtasks : -1};
    // join() may have sent its stop messages while this worker was forking.
    if (draining) put_stop(*worker.tasks);
    poke_watcher();
  }

  // Hands pending tasks to workers with room, each to the least loaded one:
  // idle workers first.
  void pump() {
    while (!pending.empty()) {
      Worker* target = nullptr;
      for (Worker& worker : workers) {
        if (!worker.wants_tasks()) continue;
        if (!target || worker.in_flight.size() < target->in_flight.size()) target = &worker;
      }
      if (!target) return;
      Pending next = std::move(pending.front());
      pending.pop_front();
      std::uint64_t seq = next_seq++;
      seal_task(next.task.record, seq, reinterpret_cast<std::uintptr_t>(next.task.runner));
      target->tasks->put(next.task.record, Deadline::never());
      target->in_flight.push_back(InFlight{seq, next.job, std::move(next.task)});
      if (target->budget > 0) --target->budget;
    }
  }

  void deliver(std::vector<Delivery>& deliveries, std::string_view payload = {}) {
    JobBook::deliver(deliveries, payload, mutex, changed);
  }

  // Books a task's result under the mutex and says whom to deliver it to:
  // nobody if its worker was replaced or terminate() cancelled it. With
  // `only_job`, a result of another job is left alone (false).
  bool book_task_result(const ResultRecord& message, std::optional<std::uint64_t> only_job,
                        std::vector<Delivery>& deliveries) {
    std::lock_guard lock(mutex);
    Worker& worker = workers[message.worker];
    if (worker.generation != message.generation) return !only_job;
    auto it = std::find_if(worker.in_flight.begin(), worker.in_flight.end(),
                           [&](const InFlight& f) { return f.seq == message.seq; });
    if (it == worker.in_flight.end()) return !only_job;  // cancelled by terminate()
    if (only_job && it->job != *only_job) return false;
    auto job = jobs.find(it->job);
    std::exception_ptr error;
    if (message.kind == ResultKind::failed) error = remote_failure(message);
    deliveries.push_back(Delivery{it->job, job->second.job, it->task.index, error});
    worker.in_flight.erase(it);
    worker.learn_run_time(message.run_ns);
    if (phase != Phase::terminated) pump();
    return true;
  }

  void on_task_result(const ResultRecord& message) {
    std::vector<Delivery> deliveries;
    book_task_result(message, std::nullopt, deliveries);
    deliver(deliveries, message.payload);
  }

  // See PoolCore::deliver_own.
  bool deliver_own(std::uint64_t job) noexcept {
    try {
      // Held by the result thread, which handles the head, or by another
      // future's result(), which takes its own or wakes the result thread.
      std::unique_lock hold(reader, std::try_to_lock);
      std::string_view record;
      if (!hold || !results.peek(record, Deadline::now())) return false;
      ResultRecord message = decode_result(record);
      std::vector<Delivery> deliveries;
      if ((message.kind == ResultKind::succeeded || message.kind == ResultKind::failed) &&
          book_task_result(message, job, deliveries)) {
        // Copied before the record goes, so that the result thread can go on
        // meanwhile: a submit()'s result is one value, seldom large.
        std::string payload(message.payload);
        results.pop_and_peek(record, Deadline::now());
        hold.unlock();
        deliver(deliveries, payload);
        return true;
      }
    } catch (...) {
      // Left to the result thread, which reports what fails.
    }
    // The put of a record left here may have skipped the result thread
    // (this thread watches the queue): it is woken now.
    results.wake_readers();
    return false;
  }

  void fail_everything(std::exception_ptr error, std::vector<Delivery>& deliveries) {
    for (Worker& worker : workers) {
      for (InFlight& f : worker.in_flight)
        deliveries.push_back(Delivery{f.job, jobs[f.job].job, f.task.index, error});
      worker.in_flight.clear();
    }
    fail_pending(error, deliveries);
  }

  void on_initializer_failed(const ResultRecord& message) {
    std::vector<Delivery> deliveries;
    {
      std::lock_guard lock(mutex);
      if (broken) return;
      broken = remote_failure(message, "Pool: the worker initializer threw ");
      fail_everything(broken, deliveries);
    }
    deliver(deliveries);
  }

  void on_worker_exited(const ResultRecord& message) {
    Worker& worker = workers[message.worker];
    std::vector<Delivery> deliveries;
    {
      std::lock_guard lock(mutex);
      if (worker.generation != message.generation || !worker.alive) return;
      // Its sentinel fired, so this reaps at once; under the lock so that
      // terminate() never signals a pid that was just reaped.
      std::optional<int> exitcode = reap(*worker.process);
      worker.alive = false;
      std::string how = exitcode ? "exit code " + std::to_string(*exitcode)
                                 : "exit code unknown (reaped elsewhere: SIGCHLD ignored or a waitpid(-1))";
      std::uint64_t started = slots[message.worker].started.load(std::memory_order_acquire);
      for (auto it = worker.in_flight.rbegin(); it != worker.in_flight.rend(); ++it) {
        if (it->seq <= started) {
          auto lost = std::make_exception_ptr(WorkerLost(
              "Pool: worker " + worker.process->name() + " (pid " +
                  std::to_string(worker.process->pid().value_or(0)) +
                  ") died while running this task, " + how,
              exitcode.value_or(-SIGKILL)));
          deliveries.push_back(Delivery{it->job, jobs[it->job].job, it->task.index, lost});
        } else {
          pending.push_front(Pending{it->job, std::move(it->task)});
        }
      }
      worker.in_flight.clear();
    }
    deliver(deliveries);
    replace(message.worker);
    std::lock_guard lock(mutex);
    changed.notify_all();
  }

  // Whether a dead worker's slot should get a new one. Called with the mutex held.
  bool wants_replacement() const {
    return !broken && !stopping && !draining &&
           (phase == Phase::running || (phase == Phase::closed && !pending.empty()));
  }

  // Starts a worker in the dead `slot` if the pool still wants one there. If
  // it cannot be started, the slot stays vacant and is tried again every
  // respawn_retry while the other workers go on; with no worker left, the
  // outstanding and later work fails with the cause instead of waiting for a
  // fork that may never succeed.
  void replace(std::uint32_t slot) {
    {
      std::lock_guard lock(mutex);
      if (!wants_replacement()) return;
    }
    try {
      spawn(slot);
    } catch (...) {
      std::exception_ptr cause = std::current_exception();
      bool any_alive;
      {
        std::lock_guard lock(mutex);
        any_alive = std::any_of(workers.begin(), workers.end(), [](const Worker& w) { return w.alive; });
      }
      if (any_alive) {
        if (std::find(vacant_slots.begin(), vacant_slots.end(), slot) == vacant_slots.end())
          vacant_slots.push_back(slot);
        next_respawn = Clock::now() + respawn_retry;
      } else {
        vacant_slots.clear();
        break_pool(pool_failure("Pool: no worker is left to run this task; starting a replacement failed: ",
                                cause));
      }
    }
    // The dead worker's untouched tasks (and with a vacant slot, all tasks)
    // go to the others now, not when one of them next reports.
    std::lock_guard lock(mutex);
    pump();
  }

  void retry_vacant_slots() {
    if (vacant_slots.empty() || Clock::now() < next_respawn) return;
    std::vector<std::uint32_t> retry = std::exchange(vacant_slots, {});
    for (std::uint32_t slot : retry) replace(slot);
  }

  // How long the result thread may wait for a message: until the next retry
  // of a vacant slot, if there is one.
  Deadline result_deadline() const {
    return vacant_slots.empty() ? Deadline::never() : Deadline::after(next_respawn - Clock::now());
  }

  // Fails the outstanding work with `error`, and all later work (submit
  // throws it), from any thread without the mutex held.
  void break_pool(std::exception_ptr error) noexcept {
    try {
      std::vector<Delivery> deliveries;
      {
        std::lock_guard lock(mutex);
        if (!broken) broken = error;
        fail_everything(broken, deliveries);
      }
      deliver(deliveries);
    } catch (...) {
      // Out of memory while failing the work: what was delivered stays so.
    }
  }

  // Handles one message; false on the stop message.
  bool handle(const ResultRecord& message) {
    switch (message.kind) {
      case ResultKind::succeeded:
      case ResultKind::failed:
        on_task_result(message);
        break;
      case ResultKind::initializer_failed:
        on_initializer_failed(message);
        break;
      case ResultKind::worker_exited:
        on_worker_exited(message);
        break;
      case ResultKind::stop:
        return false;
    }
    return true;
  }

  void serve() {
    try {
      for (std::uint32_t slot = 0; slot < static_cast<std::uint32_t>(processes); ++slot) spawn(slot);
    } catch (...) {
      std::lock_guard lock(mutex);
      spawn_error = std::current_exception();
    }
    {
      std::lock_guard lock(mutex);
      spawned_initial = true;
      changed.notify_all();
      if (spawn_error) return;
    }
    // Each message is read where it lies in the queue (the result thread is
    // its only reader), and removed once handled, as the next one is taken.
    // Nothing may escape this thread (std::terminate would end the program):
    // a failure here fails the pool's work with an mp:: error naming it.
    // It waits without `reader`, so that a future's result() may take its
    // own result meanwhile (deliver_own), then handles what is there under
    // it, the head once more as it may have changed.
    std::string_view record;
    for (;;) {
      try {
        if (results.peek(record, result_deadline())) {
          std::lock_guard hold(reader);
          // If handle() or pop_and_peek throws, the next try peeks again. A
          // message handled twice is harmless: each handler ignores what it
          // has already seen.
          bool holding = results.peek(record, Deadline::now());
          while (holding) {
            if (!handle(decode_result(record))) return;
            holding = results.pop_and_peek(record, Deadline::now());
          }
        }
        retry_vacant_slots();
      } catch (...) {
        break_pool(pool_failure("Pool: the result thread failed: ", std::current_exception()));
        std::this_thread::sleep_for(respawn_retry);  // a failure that repeats does not spin
      }
    }
  }

  // Turns worker deaths into messages on the result queue, behind any result
  // the worker sent before it died, so the result thread sees them in order.
  // If poll or put fails (ENOMEM, a descriptor limit), it tries again, a
  // little later each time: a death is then reported late, never lost, and
  // nothing escapes the thread.
  void watch() {
    auto backoff = std::chrono::milliseconds(1);
    for (;;) {
      try {
        if (!watch_once()) return;
        backoff = std::chrono::milliseconds(1);
      } catch (...) {
        std::this_thread::sleep_for(backoff);
        backoff = std::min(2 * backoff, std::chrono::milliseconds(100));
      }
    }
  }

  // One wait for a death or a change of the worker table; false once stopping.
  bool watch_once() {
    std::vector<pollfd>& fds = watched_fds;
    std::vector<std::pair<std::uint32_t, std::uint64_t>>& owners = watched_owners;
    fds.assign(1, pollfd{wake.get(), POLLIN, 0});
    owners.clear();
    {
      std::lock_guard lock(mutex);
      if (stopping) return false;
      for (std::uint32_t slot = 0; slot < workers.size(); ++slot) {
        if (!workers[slot].watched) continue;
        fds.push_back(pollfd{workers[slot].process->sentinel(), POLLIN, 0});
        owners.emplace_back(slot, workers[slot].generation);
      }
    }
    check("poll", [&] { return ::poll(fds.data(), fds.size(), -1); }, "Pool watcher");
    if (fds[0].revents != 0) {
      std::uint64_t count;
      (void)retry("read", [&] { return ::read(wake.get(), &count, sizeof count); });
    }
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto [slot, generation] = owners[i - 1];
      {
        std::lock_guard lock(mutex);
        if (workers[slot].generation != generation || !workers[slot].watched) continue;
      }
      // Unwatched only once the message is sent: if put throws, the next
      // round sees the sentinel again.
      begin_result(watcher_message, ResultKind::worker_exited, slot, generation, 0);
      results.put(watcher_message, Deadline::never());
      std::lock_guard lock(mutex);
      if (workers[slot].generation == generation) workers[slot].watched = false;
    }
    return true;
  }

  void stop_threads() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    poke_watcher();
    if (watcher_thread.joinable()) watcher_thread.join();
    if (result_thread.joinable()) {
      std::string stop;
      begin_result(stop, ResultKind::stop, 0, 0, 0);
      results.put(stop, Deadline::never());
      result_thread.join();
    }
  }

  void kill_workers() {
    std::lock_guard lock(mutex);
    for (Worker& worker : workers)
      if (worker.alive) worker.process->kill();
  }
};

PoolCore::PoolCore(int processes, std::function<void()> initializer,
                   std::optional<int> maxtasksperchild) {
  if (processes < 1)
    throw ValueError("Pool: number of processes must be at least 1, not " +
                     std::to_string(processes));
  if (maxtasksperchild && *maxtasksperchild < 1)
    throw ValueError("Pool: maxtasksperchild must be a positive int or empty, not " +
                     std::to_string(*maxtasksperchild));
  state_ = std::make_unique<State>(processes, std::move(initializer), maxtasksperchild);
  State& s = *state_;
  s.result_thread = std::thread([&s] { s.serve(); });
  std::unique_lock lock(s.mutex);
  s.changed.wait(lock, [&] { return s.spawned_initial; });
  if (s.spawn_error) {
    // Python's test_release_unused_processes: workers already started go away.
    std::exception_ptr error = s.spawn_error;
    lock.unlock();
    s.kill_workers();
    for (Worker& worker : s.workers)
      if (worker.process && worker.alive) worker.process->join();
    s.result_thread.join();
    std::rethrow_exception(error);
  }
  lock.unlock();
  s.watcher_thread = std::thread([&s] { s.watch(); });
}

PoolCore::~PoolCore() { shutdown(); }

int PoolCore::processes() const noexcept { return state_->processes; }

std::uint64_t PoolCore::submit(std::shared_ptr<Job> job, std::vector<PoolTask> tasks, bool sealed,
                               const char* method) {
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  std::uint64_t id = s.enter_job(std::move(job), tasks, sealed, method);
  s.pump();
  return id;
}

void PoolCore::add_tasks(std::uint64_t job, std::vector<PoolTask> tasks, bool sealed,
                         const char* method) {
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  s.enter_tasks(job, tasks, sealed, method);
  s.pump();
}

bool PoolCore::cancel(std::uint64_t job) {
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  auto it = s.jobs.find(job);
  if (it == s.jobs.end() || !it->second.sealed) return false;
  auto waiting = [job](const Pending& p) { return p.job == job; };
  if (static_cast<std::size_t>(std::count_if(s.pending.begin(), s.pending.end(), waiting)) !=
      it->second.outstanding)
    return false;
  std::erase_if(s.pending, waiting);
  s.jobs.erase(it);
  s.changed.notify_all();
  return true;
}

void PoolCore::cancel_pending(std::exception_ptr error) {
  State& s = *state_;
  std::vector<Delivery> deliveries;
  {
    std::lock_guard lock(s.mutex);
    s.fail_pending(error, deliveries);
  }
  s.deliver(deliveries);
}

bool PoolCore::started(std::uint64_t job) const {
  const State& s = *state_;
  std::lock_guard lock(s.mutex);
  for (std::size_t slot = 0; slot < s.workers.size(); ++slot) {
    // The worker stores the seq it begins (release) before running the task.
    std::uint64_t begun = s.slots[slot].started.load(std::memory_order_acquire);
    for (const InFlight& f : s.workers[slot].in_flight)
      if (f.job == job && f.seq <= begun) return true;
  }
  return false;
}

bool PoolCore::deliver_own(std::uint64_t job) noexcept { return state_->deliver_own(job); }
void PoolCore::watch_results() noexcept { state_->results.watch(); }
void PoolCore::unwatch_results() noexcept { state_->results.unwatch(); }

std::exception_ptr PoolCore::broken() const {
  std::lock_guard lock(state_->mutex);
  return state_->broken;
}

void PoolCore::close() {
  std::lock_guard lock(state_->mutex);
  state_->JobBook::close();
}

void PoolCore::terminate() {
  State& s = *state_;
  std::vector<Delivery> deliveries;
  if (!cancel_everything(s, "Pool", deliveries)) return;
  s.kill_workers();
  s.deliver(deliveries);
}

void PoolCore::join() {
  State& s = *state_;
  if (std::this_thread::get_id() == s.result_thread.get_id())
    throw ValueError("Pool.join: called from a callback, which runs in the pool's own thread");
  std::unique_lock lock(s.mutex);
  if (!s.wait_for_jobs(lock, s.changed, "Pool.join")) return;
  s.draining = true;
  for (Worker& worker : s.workers)
    if (worker.alive) put_stop(*worker.tasks);
  s.changed.wait(lock, [&] {
    return std::none_of(s.workers.begin(), s.workers.end(), [](const Worker& w) { return w.alive; });
  });
  s.joined = true;
  lock.unlock();
  s.stop_threads();
}

void PoolCore::shutdown() noexcept {
  if (!state_) return;
  try {
    close();
    join();
  } catch (...) {
    terminate();
    state_->stop_threads();
  }
}

std::vector<int> PoolCore::worker_pids() const {
  std::lock_guard lock(state_->mutex);
  std::vector<int> pids;
  for (const Worker& worker : state_->workers)
    if (worker.alive) pids.push_back(worker.process->pid().value_or(0));
  return pids;
}

}  // namespace detail

Pool::Pool(PoolOptions options)
    : MessagePoolMethods(std::make_shared<detail::PoolCore>(options.processes.value_or(cpu_count()),
                                                            std::move(options.initializer),
                                                            options.maxtasksperchild)) {}

std::vector<int> Pool::worker_pids() const { return core_->worker_pids(); }

}  // namespace mp
