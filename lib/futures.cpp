// lib/futures.cpp: ProcessPoolExecutor and the untyped part of its futures.
// The executor owns a detail::PoolCore (the Pool's engine) and adds nothing
// to its workers or threads: a future is a Job whose outcome lands in a
// FutureState.
// Invariants:
//  - a future completes exactly once: either its job delivers (in the pool's
//    result thread, in the thread of its own result() that took its result
//    from the queue, or in the thread of shutdown(cancel_futures)), or
//    cancel() withdrew the job from the pool first, after which the pool
//    never delivers it;
//  - done() turns true before the outcome is stored, and callbacks and
//    waiters run after it, never under a lock of the pool or of the future;
//  - a waiter is told of each future at most once, and a future that is done
//    when a waiter arrives tells it at once.
#include "mp/futures.hpp"

#include <cstdio>

#include "mp/process.hpp"

namespace mp {
namespace detail {

void CompletionWaiter::notify(std::size_t index) {
  {
    std::lock_guard lock(mutex_);
    completed_.push_back(index);
  }
  arrived_.notify_all();
}

bool CompletionWaiter::take(std::vector<std::size_t>& out, const Deadline& deadline) {
  std::unique_lock lock(mutex_);
  auto any = [&] { return !completed_.empty(); };
  if (deadline.infinite())
    arrived_.wait(lock, any);
  else if (!arrived_.wait_until(lock, deadline.time_point(), any))
    return false;
  out.insert(out.end(), completed_.begin(), completed_.end());
  completed_.clear();
  return true;
}

bool FutureCore::running() const {
  if (done()) return false;
  auto pool = pool_.lock();
  return pool && pool->started(job_.load(std::memory_order_acquire));
}

FutureCore::OwnResult::OwnResult(const FutureCore& future)
    : pool_(future.pool_.lock()), job_(future.job_.load(std::memory_order_acquire)) {
  if (pool_) pool_->watch_results();
}

bool FutureCore::OwnResult::help() noexcept { return pool_ && pool_->deliver_own(job_); }

void FutureCore::OwnResult::stop() noexcept {
  if (!pool_) return;
  pool_->unwatch_results();
  pool_.reset();
}

bool FutureCore::cancel() {
  {
    // One cancel() at a time, so that a second one sees the first's outcome.
    std::lock_guard lock(mutex_);
    if (done()) return cancelled();
    auto pool = pool_.lock();
    if (!pool || !pool->cancel(job_.load(std::memory_order_acquire))) return false;
    // Withdrawn: the pool will never deliver this job, so nothing else completes it.
    done_.store(true, std::memory_order_release);
    cancelled_.store(true, std::memory_order_release);
  }
  set_cancelled(std::make_exception_ptr(CancelledError("Future: the future was cancelled")));
  notify_done();
  return true;
}

void FutureCore::mark_done(bool cancelled) {
  cancelled_.store(cancelled, std::memory_order_release);
  done_.store(true, std::memory_order_release);
}

namespace {

// A callback that throws is reported and the others still run (Python logs
// it and goes on).
void run_callback(const std::function<void()>& callback) noexcept {
  try {
    callback();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mp: exception calling callback for a Future: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "mp: exception calling callback for a Future (not a std::exception)\n");
  }
}

}  // namespace

// Runs each waiter and callback once, outside the lock.
void FutureCore::notify_done() {
  std::vector<std::function<void()>> callbacks;
  std::vector<std::pair<std::shared_ptr<CompletionWaiter>, std::size_t>> waiters;
  {
    std::lock_guard lock(mutex_);
    callbacks.swap(callbacks_);
    waiters.swap(waiters_);
  }
  for (auto& [waiter, index] : waiters) waiter->notify(index);
  for (auto& callback : callbacks) run_callback(callback);
}

void FutureCore::add_callback(std::function<void()> callback) {
  {
    std::lock_guard lock(mutex_);
    if (!done()) {
      callbacks_.push_back(std::move(callback));
      return;
    }
  }
  // Done: it runs now, in the caller's thread, as in Python; its result()
  // waits the moment the outcome may still be landing (see mark_done).
  run_callback(callback);
}

void FutureCore::add_waiter(const std::shared_ptr<CompletionWaiter>& waiter, std::size_t index) {
  {
    std::lock_guard lock(mutex_);
    if (!done()) {
      waiters_.emplace_back(waiter, index);
      return;
    }
  }
  waiter->notify(index);
}

void FutureCore::remove_waiter(const CompletionWaiter* waiter) {
  std::lock_guard lock(mutex_);
  std::erase_if(waiters_, [waiter](const auto& entry) { return entry.first.get() == waiter; });
}

namespace {

std::exception_ptr broken_pool(const std::exception_ptr& cause) {
  try {
    std::rethrow_exception(cause);
  } catch (const std::exception& e) {
    return std::make_exception_ptr(BrokenProcessPool(
        std::string("ProcessPoolExecutor: the pool is broken and runs nothing: ") + e.what(), 1));
  }
}

}  // namespace

std::exception_ptr FutureCore::executor_error(std::exception_ptr error, const PoolCore& pool,
                                              bool& cancelled) {
  if (error == pool.broken()) return broken_pool(error);
  try {
    std::rethrow_exception(error);
  } catch (const RemoteError&) {
    return error;  // what the task threw
  } catch (const BrokenProcessPool&) {
    return error;
  } catch (const WorkerLost& e) {
    return std::make_exception_ptr(BrokenProcessPool(
        std::string("ProcessPoolExecutor: the process running this task was terminated abruptly (") +
            e.what() + "); it was replaced",
        e.exitcode()));
  } catch (const CancelledError&) {
    cancelled = true;
    return error;
  } catch (...) {
    return error;
  }
}

void FutureCore::rethrow_submit_error(const PoolCore& pool) {
  std::exception_ptr error = std::current_exception();
  if (error == pool.broken()) std::rethrow_exception(broken_pool(error));
  std::rethrow_exception(error);
}

}  // namespace detail

ProcessPoolExecutor::ProcessPoolExecutor(ExecutorOptions options) {
  int workers = options.max_workers.value_or(cpu_count());
  if (workers < 1)
    throw ValueError("ProcessPoolExecutor: max_workers must be greater than 0, not " +
                     std::to_string(workers));
  if (options.max_tasks_per_child && *options.max_tasks_per_child < 1)
    throw ValueError("ProcessPoolExecutor: max_tasks_per_child must be >= 1, not " +
                     std::to_string(*options.max_tasks_per_child));
  core_ = std::make_shared<detail::PoolCore>(workers, std::move(options.initializer),
                                             options.max_tasks_per_child);
}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  if (core_) core_->shutdown();
}

ProcessPoolExecutor& ProcessPoolExecutor::operator=(ProcessPoolExecutor&& other) noexcept {
  if (this != &other) {
    if (core_) core_->shutdown();
    core_ = std::move(other.core_);
  }
  return *this;
}

std::uint64_t ProcessPoolExecutor::submit_job(std::shared_ptr<detail::Job> job,
                                              std::vector<detail::PoolTask> tasks) {
  try {
    return core_->submit(std::move(job), std::move(tasks), true, "ProcessPoolExecutor.submit");
  } catch (...) {
    detail::FutureCore::rethrow_submit_error(*core_);
  }
}

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  if (cancel_futures)
    core_->cancel_pending(std::make_exception_ptr(CancelledError(
        "ProcessPoolExecutor.shutdown: cancelled (cancel_futures) before a worker took it")));
  core_->close();
  if (wait) core_->join();
}

int ProcessPoolExecutor::max_workers() const { return core_->processes(); }
std::vector<int> ProcessPoolExecutor::worker_pids() const { return core_->worker_pids(); }

}  // namespace mp
