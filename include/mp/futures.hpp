// mp/futures.hpp: ProcessPoolExecutor, Future, as_completed, wait (Python:
// concurrent.futures with processes).
//
// One worker core, two facades: the executor is a second face of the Pool's
// engine (detail::PoolCore: the same workers, task records, result thread,
// worker-death detection and replacement), not a pool of its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "mp/detail/deadline.hpp"
#include "mp/detail/pool_core.hpp"
#include "mp/detail/pool_job.hpp"
#include "mp/errors.hpp"
#include "mp/pool.hpp"

namespace mp {

struct ExecutorOptions {
  std::optional<int> max_workers;             // default cpu_count()
  std::function<void()> initializer;          // runs once in every worker, replacements too
  std::optional<int> max_tasks_per_child;     // a worker exits after this many tasks (chunks)
};

// wait()'s return_when (Python's module constants).
enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

template <class R>
class Future;

namespace detail {

// Wakes one as_completed() or wait() call as its futures complete: each
// future it watches reports its index once.
class CompletionWaiter {
 public:
  void notify(std::size_t index);
  // Appends the indices reported since the last call to `out`; waits for at
  // least one until the deadline. False if none came.
  bool take(std::vector<std::size_t>& out, const Deadline& deadline);

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<std::size_t> completed_;
};

// The untyped part of a future: its status, done-callbacks, waiters, and the
// way back to its job in the pool (cancel(), running()).
class FutureCore {
 public:
  explicit FutureCore(std::weak_ptr<PoolCore> pool) : pool_(std::move(pool)) {}
  FutureCore(const FutureCore&) = delete;
  FutureCore& operator=(const FutureCore&) = delete;
  virtual ~FutureCore() = default;

  void set_job(std::uint64_t job) { job_.store(job, std::memory_order_release); }

  // While result() spins: the calling thread watches the pool's result queue
  // (PoolCore::watch_results) and help() delivers this future's outcome in
  // it if it is next there (PoolCore::deliver_own). stop() (or the
  // destructor) ends the watch, before the thread sleeps.
  class OwnResult {
   public:
    explicit OwnResult(const FutureCore& future);
    ~OwnResult() { stop(); }
    OwnResult(const OwnResult&) = delete;
    OwnResult& operator=(const OwnResult&) = delete;
    bool help() noexcept;
    void stop() noexcept;

   private:
    std::shared_ptr<PoolCore> pool_;  // null: the pool is gone, or not watching any more
    std::uint64_t job_;
  };
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }
  bool running() const;
  // Withdraws the job if no worker has it yet; true if the future is (now) cancelled.
  bool cancel();

  void add_callback(std::function<void()> callback);
  // Reports `index` to `waiter` once done (now, if it is).
  void add_waiter(const std::shared_ptr<CompletionWaiter>& waiter, std::size_t index);
  void remove_waiter(const CompletionWaiter* waiter);

  // The executor's translation of a task's error: a dead worker or a broken
  // pool becomes BrokenProcessPool; a withdrawal by shutdown(cancel_futures)
  // sets `cancelled`.
  static std::exception_ptr executor_error(std::exception_ptr error, const PoolCore& pool,
                                           bool& cancelled);
  // Rethrows what submitting to `pool` threw, a broken pool's error as
  // BrokenProcessPool.
  [[noreturn]] static void rethrow_submit_error(const PoolCore& pool);

 protected:
  // The outcome lands in three steps: done() turns true first (so that a
  // thread whose result() returned sees done()), then the typed state is set
  // (result() wakes), then waiters and callbacks run, in the delivering thread.
  void mark_done(bool cancelled);
  void notify_done();
  // The typed state's outcome for a cancellation.
  virtual void set_cancelled(std::exception_ptr error) = 0;

 private:
  std::weak_ptr<PoolCore> pool_;
  std::atomic<std::uint64_t> job_{0};
  std::atomic<bool> done_{false};
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;  // callbacks_, waiters_, and one cancel() at a time
  std::vector<std::function<void()>> callbacks_;
  std::vector<std::pair<std::shared_ptr<CompletionWaiter>, std::size_t>> waiters_;
};

template <class Stored>
class FutureState final : public FutureCore {
 public:
  using FutureCore::FutureCore;

  void finish(std::optional<Stored> value, std::exception_ptr error, bool cancelled) {
    mark_done(cancelled);
    result.set(std::move(value), std::move(error));
    notify_done();
  }

  ResultState<Stored> result;

 private:
  void set_cancelled(std::exception_ptr error) override { result.set(std::nullopt, std::move(error)); }
};

// A submit()'s job: one task, its outcome into the future.
template <class Stored>
class FutureJob final : public Job {
 public:
  FutureJob(std::shared_ptr<FutureState<Stored>> state, const PoolCore* pool)
      : state_(std::move(state)), pool_(pool) {}

  void task_succeeded(std::uint64_t, std::string_view payload) override {
    auto [value, error] = decode_result<Stored>(payload, "ProcessPoolExecutor: task result");
    if (error)
      task_failed(0, std::move(error));
    else
      state_->finish(std::move(value), nullptr, false);
  }

  void task_failed(std::uint64_t, std::exception_ptr error) override {
    bool cancelled = false;
    error = FutureCore::executor_error(std::move(error), *pool_, cancelled);
    state_->finish(std::nullopt, std::move(error), cancelled);
  }

 private:
  std::shared_ptr<FutureState<Stored>> state_;
  const PoolCore* pool_;  // the core that delivers: alive while it does
};

template <class R>
using future_stored_t = std::conditional_t<std::is_void_v<R>, NoValue, R>;

template <class R>
std::shared_ptr<FutureCore> future_core(const Future<R>& future) {
  return future.state_;
}

// Registers one waiter on every future; unregisters on destruction.
template <class R>
class WaiterScope {
 public:
  explicit WaiterScope(const std::vector<Future<R>>& futures)
      : futures_(futures), waiter_(std::make_shared<CompletionWaiter>()) {
    for (std::size_t i = 0; i < futures_.size(); ++i) future_core(futures_[i])->add_waiter(waiter_, i);
  }
  ~WaiterScope() {
    for (const Future<R>& future : futures_) future_core(future)->remove_waiter(waiter_.get());
  }
  WaiterScope(const WaiterScope&) = delete;
  WaiterScope& operator=(const WaiterScope&) = delete;
  CompletionWaiter& waiter() { return *waiter_; }

 private:
  const std::vector<Future<R>>& futures_;
  std::shared_ptr<CompletionWaiter> waiter_;
};

// The futures of `futures` in completion order, until all are in or the deadline.
template <class R>
std::vector<Future<R>> completed_before(const std::vector<Future<R>>& futures,
                                        const Deadline& deadline) {
  WaiterScope<R> scope(futures);
  std::vector<std::size_t> order;
  while (order.size() < futures.size()) {
    if (!scope.waiter().take(order, deadline))
      throw TimeoutError("as_completed: " + std::to_string(futures.size() - order.size()) + " (of " +
                         std::to_string(futures.size()) + ") futures unfinished after the timeout");
  }
  std::vector<Future<R>> result;
  result.reserve(order.size());
  for (std::size_t index : order) result.push_back(futures[index]);
  return result;
}

}  // namespace detail

// Future (Python: concurrent.futures.Future, as ProcessPoolExecutor.submit returns it)
//
// A handle: copies share one outcome. result() rethrows the task's error as
// the Pool does (a std::invalid_argument arrives as Remote<std::invalid_argument>,
// see mp::RemoteError); a dead worker fails it with mp::BrokenProcessPool.
// Differs from Python:
//  - running() is true once a worker has begun the task, read from the
//    worker's shared slot (Python says running as soon as the task is queued
//    to its workers); cancel() succeeds while the task waits in the executor,
//    before it is handed to a worker's queue (a worker holds at least two
//    tasks, one running, one queued; a queued one is neither running() nor
//    cancellable, as in Python's call queue);
//  - a done-callback that throws is reported on stderr and ignored (Python
//    logs it); callbacks run in the executor's result thread, or at once in
//    the caller's if the future is already done, or in the thread whose
//    result() took the outcome from the result queue itself, and must be quick.
// Blocking: result() and exception() wait (spinning for up to 50 us first,
// then sleeping; while it spins, its result, once next in the executor's
// result queue, is delivered by the waiting thread, and the worker leaves the
// result thread asleep: one hop and one wake-up fewer); the timed forms throw
// mp::TimeoutError; a cancelled future's result() and exception() throw
// mp::CancelledError.
template <class R>
class Future {
  using Stored = detail::future_stored_t<R>;

 public:
  explicit Future(std::shared_ptr<detail::FutureState<Stored>> state) : state_(std::move(state)) {}

  R result() { return result_before(detail::Deadline::never()); }
  template <class Rep, class Per>
  R result(std::chrono::duration<Rep, Per> timeout) {
    return result_before(detail::Deadline::after(timeout));
  }

  std::exception_ptr exception() { return exception_before(detail::Deadline::never()); }
  template <class Rep, class Per>
  std::exception_ptr exception(std::chrono::duration<Rep, Per> timeout) {
    return exception_before(detail::Deadline::after(timeout));
  }

  bool done() const { return state_->done(); }
  bool running() const { return state_->running(); }
  bool cancel() { return state_->cancel(); }
  bool cancelled() const { return state_->cancelled(); }

  // f(Future<R>&) once the future is done (now, if it is).
  template <class F>
  void add_done_callback(F f) {
    static_assert(std::is_invocable_v<F&, Future<R>&>,
                  "Future.add_done_callback: the callback must take Future<R>&");
    state_->add_callback([f = std::move(f), weak = std::weak_ptr(state_)]() mutable {
      if (auto state = weak.lock()) {
        Future<R> future(std::move(state));
        f(future);
      }
    });
  }

 private:
  friend std::shared_ptr<detail::FutureCore> detail::future_core<R>(const Future<R>&);

  void wait_before(const detail::Deadline& deadline) {
    detail::FutureCore::OwnResult own(*state_);
    if (!state_->result.wait_until(deadline, [&own] { return own.help(); }, [&own] { own.stop(); }))
      throw TimeoutError("Future.result: the result is not ready after the timeout");
  }
  R result_before(const detail::Deadline& deadline) {
    wait_before(deadline);
    if constexpr (std::is_void_v<R>) {
      state_->result.value();
    } else {
      return state_->result.value();
    }
  }
  std::exception_ptr exception_before(const detail::Deadline& deadline) {
    wait_before(deadline);
    std::exception_ptr error = state_->result.error();
    if (state_->cancelled()) std::rethrow_exception(error);
    return error;
  }

  std::shared_ptr<detail::FutureState<Stored>> state_;
};

// wait()'s answer (Python: DoneAndNotDoneFutures).
template <class R>
struct DoneAndNotDone {
  std::vector<Future<R>> done;
  std::vector<Future<R>> not_done;
};

// as_completed (Python: concurrent.futures.as_completed): the futures in the
// order they complete, once all have. Differs from Python: a vector, not a
// generator; with a timeout, mp::TimeoutError if not all complete in time
// (its message says how many did not; wait() gives the partial split).
template <class R>
std::vector<Future<R>> as_completed(const std::vector<Future<R>>& futures) {
  return detail::completed_before(futures, detail::Deadline::never());
}
template <class R, class Rep, class Per>
std::vector<Future<R>> as_completed(const std::vector<Future<R>>& futures,
                                    std::chrono::duration<Rep, Per> timeout) {
  return detail::completed_before(futures, detail::Deadline::after(timeout));
}

namespace detail {
template <class R>
DoneAndNotDone<R> wait_before(const std::vector<Future<R>>& futures, const Deadline& deadline,
                              ReturnWhen return_when) {
  WaiterScope<R> scope(futures);
  std::vector<std::size_t> completed;
  std::size_t examined = 0;  // FIRST_EXCEPTION looks at each completion once
  auto enough = [&] {
    if (completed.size() == futures.size()) return true;
    if (return_when == ReturnWhen::FIRST_COMPLETED) return !completed.empty();
    if (return_when == ReturnWhen::FIRST_EXCEPTION) {
      for (; examined < completed.size(); ++examined) {
        Future<R> future = futures[completed[examined]];
        if (!future.cancelled() && future.exception()) return true;
      }
    }
    return false;
  };
  while (!enough() && scope.waiter().take(completed, deadline)) {
  }
  DoneAndNotDone<R> split;
  for (const Future<R>& future : futures) (future.done() ? split.done : split.not_done).push_back(future);
  return split;
}
}  // namespace detail

// wait (Python: concurrent.futures.wait): returns when `return_when` holds
// (FIRST_EXCEPTION: a future failed, not cancelled; else all done) or at the
// timeout, with the futures split into done and not done. Never throws a
// task's error. Named as Python's; mp::wait over connections is another overload.
template <class R>
DoneAndNotDone<R> wait(const std::vector<Future<R>>& futures,
                       ReturnWhen return_when = ALL_COMPLETED) {
  return detail::wait_before(futures, detail::Deadline::never(), return_when);
}
template <class R, class Rep, class Per>
DoneAndNotDone<R> wait(const std::vector<Future<R>>& futures,
                       std::chrono::duration<Rep, Per> timeout,
                       ReturnWhen return_when = ALL_COMPLETED) {
  return detail::wait_before(futures, detail::Deadline::after(timeout), return_when);
}

// The range ProcessPoolExecutor::map returns: results in input order, each
// task's error thrown at its position (a dead worker's as BrokenProcessPool);
// with a timeout, mp::TimeoutError once a result is not in by the deadline
// counted from the map() call (Python's rule). The iteration may go on after
// an error.
template <class R>
class ExecutorMapIterator {
 public:
  using value_type = R;
  ExecutorMapIterator(IMapIterator<R> results, std::shared_ptr<detail::PoolCore> pool,
                      detail::Deadline deadline)
      : results_(std::move(results)), pool_(std::move(pool)), deadline_(deadline) {}

  std::optional<R> next() {
    try {
      if (deadline_.infinite()) return results_.next();
      return results_.next(*deadline_.remaining());
    } catch (const RemoteError&) {
      throw;  // the task's own error, a remote TimeoutError too
    } catch (const TimeoutError&) {
      throw TimeoutError("ProcessPoolExecutor.map: a result is not ready by the map's timeout");
    } catch (...) {
      bool cancelled = false;
      std::rethrow_exception(
          detail::FutureCore::executor_error(std::current_exception(), *pool_, cancelled));
    }
  }

  using iterator = detail::NextIterator<ExecutorMapIterator, R>;
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  IMapIterator<R> results_;
  std::shared_ptr<detail::PoolCore> pool_;
  detail::Deadline deadline_;
};

// ProcessPoolExecutor (Python: concurrent.futures.ProcessPoolExecutor, fork context)
//
// The Pool's workers behind Python's executor interface: submit() gives a
// Future, map() a lazy range of results. Callables and arguments travel as
// for Pool (functions, captureless lambdas, cereal functors; a capturing
// lambda does not compile), and so do errors (typed, see mp::RemoteError).
// Differs from Python:
//  - a worker that dies mid-task (SIGKILL, segfault, _exit) fails that task's
//    future with mp::BrokenProcessPool (an mp::WorkerLost) within
//    milliseconds; the worker is replaced and the executor stays usable
//    (Python breaks the whole executor: every pending future fails and
//    submit() raises). An initializer that throws does break it, as in Python:
//    outstanding and later futures fail with BrokenProcessPool naming the
//    initializer's error, and submit() throws it;
//  - map() takes its whole input at once, as Python does, and yields results
//    lazily; chunks that are not consumed run anyway; a chunk that fails
//    throws at its position and iteration may go on;
//  - submit() after shutdown() throws mp::ValueError (Python: RuntimeError).
// Blocking: shutdown(true) and the destructor wait for every submitted task;
// shutdown(false) returns at once (the workers finish the work and the
// destructor joins them). Thread-safe: several threads may submit.
class ProcessPoolExecutor {
 public:
  ProcessPoolExecutor() : ProcessPoolExecutor(ExecutorOptions{}) {}
  explicit ProcessPoolExecutor(int max_workers) : ProcessPoolExecutor(ExecutorOptions{max_workers, {}, {}}) {}
  explicit ProcessPoolExecutor(ExecutorOptions options);
  ~ProcessPoolExecutor();
  ProcessPoolExecutor(ProcessPoolExecutor&&) noexcept = default;
  ProcessPoolExecutor& operator=(ProcessPoolExecutor&&) noexcept;

  template <class F, class... Args>
  auto submit(F f, Args&&... args) {
    if constexpr (detail::check_pool_apply<F, std::decay_t<Args>...>()) {
      using R = detail::task_result_t<F, std::decay_t<Args>...>;
      using Stored = detail::future_stored_t<R>;
      auto state = std::make_shared<detail::FutureState<Stored>>(core_);
      std::vector<detail::PoolTask> tasks;
      tasks.push_back(detail::apply_task(f, std::forward<Args>(args)...));
      state->set_job(submit_job(std::make_shared<detail::FutureJob<Stored>>(state, core_.get()),
                                std::move(tasks)));
      return Future<R>(std::move(state));
    }
  }

  template <class F, class Range>
  auto map(F f, Range&& inputs, std::size_t chunksize = 1) {
    return map_before(std::move(f), std::forward<Range>(inputs), chunksize,
                      detail::Deadline::never());
  }
  template <class F, class Range, class Rep, class Per>
  auto map(F f, Range&& inputs, std::size_t chunksize, std::chrono::duration<Rep, Per> timeout) {
    return map_before(std::move(f), std::forward<Range>(inputs), chunksize,
                      detail::Deadline::after(timeout));
  }

  // Python's shutdown(wait, cancel_futures): no more submits; cancel_futures
  // cancels the tasks no worker has been handed yet (their futures report
  // cancelled(), map's chunks throw CancelledError); wait waits for the rest.
  void shutdown(bool wait = true, bool cancel_futures = false);

  int max_workers() const;
  std::vector<int> worker_pids() const;  // live workers, for diagnostics

 private:
  std::uint64_t submit_job(std::shared_ptr<detail::Job> job, std::vector<detail::PoolTask> tasks);

  template <class F, class Range>
  auto map_before(F f, Range&& inputs, std::size_t chunksize, detail::Deadline deadline) {
    using Value = detail::chunk_result_t<F, detail::range_item_t<Range>, false>;
    if constexpr (detail::check_pool_map<F, detail::range_item_t<Range>, false>()) {
      auto chunks = detail::map_feed(std::move(f), std::forward<Range>(inputs), chunksize,
                                     "ProcessPoolExecutor.map");
      // Python takes the whole input at once: the first feed takes it all.
      auto all_at_once = [chunks = std::move(chunks)](std::vector<detail::PoolTask>& tasks,
                                                      std::size_t) mutable {
        return chunks(tasks, std::numeric_limits<std::size_t>::max());
      };
      try {
        return ExecutorMapIterator<Value>(
            IMapIterator<Value>(core_, true, std::move(all_at_once), "ProcessPoolExecutor.map"),
            core_, deadline);
      } catch (...) {
        detail::FutureCore::rethrow_submit_error(*core_);
      }
    }
  }

  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace mp
