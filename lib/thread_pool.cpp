// lib/thread_pool.cpp: mp::ThreadPool (Python: multiprocessing.pool.ThreadPool)
// and ThreadPoolCore, its threads and task queue.
// Invariants:
//  - every queued task is called exactly once: run (true) by one thread, or
//    cancelled (false) by terminate(); either way it delivers its outcome, so
//    no result waits forever;
//  - the threads leave only when the pool is terminated, or joining and the
//    queue is empty; they are joined exactly once, by join(), terminate() or
//    the destructor, never by one of themselves;
//  - outcomes (job bookkeeping and user callbacks) are delivered one at a
//    time under one recursive lock: a callback may submit work or terminate
//    the pool, which delivers cancellations from the same thread.
#include "mp/detail/thread_pool_core.hpp"
#include "mp/pool.hpp"
#include "mp/process.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "mp/errors.hpp"

namespace mp::detail {

struct ThreadPoolCore::State {
  enum class Phase { running, closed, terminated };

  std::mutex mutex;
  std::condition_variable work;         // a task was queued, or the phase changed
  std::condition_variable initialized;  // a thread finished its initializer
  std::deque<Task> queue;
  Phase phase = Phase::running;
  bool joining = false;  // join(): the threads leave once the queue is empty
  int initializers_done = 0;
  std::exception_ptr initializer_error;
  std::vector<std::thread> threads;
  std::vector<std::thread::id> thread_ids;

  std::mutex join_mutex;  // one joiner at a time; the threads are joined once
  bool threads_joined = false;

  std::recursive_mutex outcome_mutex;

  bool in_pool_thread() const {
    return std::find(thread_ids.begin(), thread_ids.end(), std::this_thread::get_id()) !=
           thread_ids.end();
  }

  void serve() {
    for (;;) {
      Task task;
      {
        std::unique_lock lock(mutex);
        work.wait(lock, [&] { return !queue.empty() || joining || phase == Phase::terminated; });
        if (phase == Phase::terminated || queue.empty()) return;
        task = std::move(queue.front());
        queue.pop_front();
      }
      task(true);
    }
  }

  // Cancels what is queued; returns the cancelled tasks, to be called
  // without the lock (they deliver their outcomes).
  std::deque<Task> stop() {
    std::deque<Task> cancelled;
    {
      std::lock_guard lock(mutex);
      phase = Phase::terminated;
      cancelled.swap(queue);
    }
    work.notify_all();
    return cancelled;
  }

  void join_threads() {
    std::lock_guard lock(join_mutex);
    if (threads_joined) return;
    for (auto& thread : threads) thread.join();
    threads_joined = true;
  }
};

ThreadPoolCore::ThreadPoolCore(int threads, std::function<void()> initializer)
    : state_(std::make_unique<State>()) {
  if (threads < 1)
    throw ValueError("ThreadPool: processes must be at least 1, not " + std::to_string(threads));
  State& s = *state_;
  s.threads.reserve(static_cast<std::size_t>(threads));
  s.thread_ids.reserve(static_cast<std::size_t>(threads));
  auto start = [&s, &initializer] {
    std::exception_ptr error;
    if (initializer) {
      try {
        initializer();
      } catch (...) {
        error = std::current_exception();
      }
    }
    {
      std::lock_guard lock(s.mutex);
      ++s.initializers_done;
      if (error && !s.initializer_error) s.initializer_error = error;
    }
    s.initialized.notify_all();
    if (!error) s.serve();
  };
  std::exception_ptr failure;
  {
    // thread_ids is complete before any thread can look at it (a thread
    // starts serving only after the constructor released the lock below).
    std::unique_lock lock(s.mutex);
    try {
      for (int i = 0; i < threads; ++i) {
        s.threads.emplace_back(start);
        s.thread_ids.push_back(s.threads.back().get_id());
      }
    } catch (const std::system_error& e) {
      failure = std::make_exception_ptr(
          OSError("ThreadPool: cannot start thread " + std::to_string(s.threads.size() + 1) +
                      " of " + std::to_string(threads) + ": " + e.what(),
                  e.code().value()));
    }
    s.initialized.wait(lock, [&] { return s.initializers_done == static_cast<int>(s.threads.size()); });
    if (!failure) failure = s.initializer_error;
  }
  if (failure) {
    s.stop();
    s.join_threads();
    std::rethrow_exception(failure);
  }
}

ThreadPoolCore::~ThreadPoolCore() { shutdown(); }

int ThreadPoolCore::processes() const noexcept { return static_cast<int>(state_->threads.size()); }

std::uint64_t ThreadPoolCore::submit(const std::shared_ptr<Job>&, std::vector<Task> tasks,
                                     bool sealed, const char* method) {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->phase != State::Phase::running)
      throw ValueError(std::string(method) + ": ThreadPool not running");
  }
  add_tasks(0, std::move(tasks), sealed, method);
  return 0;
}

void ThreadPoolCore::add_tasks(std::uint64_t, std::vector<Task> tasks, bool, const char* method) {
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    if (s.joining || s.phase == State::Phase::terminated)
      throw ValueError(std::string(method) +
                       ": the pool was joined or terminated before the input was all submitted");
    for (auto& task : tasks) s.queue.push_back(std::move(task));
  }
  if (tasks.size() == 1)
    s.work.notify_one();
  else
    s.work.notify_all();
}

void ThreadPoolCore::deliver(const std::function<void()>& outcome) {
  std::lock_guard lock(state_->outcome_mutex);
  outcome();
}

void ThreadPoolCore::close() {
  std::lock_guard lock(state_->mutex);
  if (state_->phase == State::Phase::running) state_->phase = State::Phase::closed;
}

void ThreadPoolCore::terminate() {
  for (auto& task : state_->stop()) task(false);
  // From a callback (one of the pool's threads) the threads are joined later,
  // by join() or the destructor.
  if (!state_->in_pool_thread()) state_->join_threads();
}

void ThreadPoolCore::join() {
  State& s = *state_;
  if (s.in_pool_thread())
    throw ValueError("ThreadPool.join: called from one of the pool's threads (a task or a callback)");
  {
    std::lock_guard lock(s.mutex);
    if (s.phase == State::Phase::running)
      throw ValueError("ThreadPool.join: the pool is still running; call close() or terminate() first");
    s.joining = true;
  }
  s.work.notify_all();
  s.join_threads();
}

void ThreadPoolCore::shutdown() noexcept {
  if (!state_ || state_->in_pool_thread()) return;
  close();
  {
    std::lock_guard lock(state_->mutex);
    state_->joining = true;
  }
  state_->work.notify_all();
  state_->join_threads();
}

}  // namespace mp::detail

namespace mp {

ThreadPool::ThreadPool(PoolOptions options) {
  if (options.maxtasksperchild)
    throw ValueError(
        "ThreadPool: maxtasksperchild is a process pool's option (Python's ThreadPool has none: "
        "its threads are never replaced)");
  core_ = std::make_shared<detail::ThreadPoolCore>(options.processes.value_or(cpu_count()),
                                                   std::move(options.initializer));
}

ThreadPool::~ThreadPool() {
  if (core_) core_->shutdown();
}

ThreadPool& ThreadPool::operator=(ThreadPool&& other) noexcept {
  if (this != &other) {
    if (core_) core_->shutdown();
    core_ = std::move(other.core_);
  }
  return *this;
}

void ThreadPool::close() { core_->close(); }
void ThreadPool::terminate() { core_->terminate(); }
void ThreadPool::join() { core_->join(); }
int ThreadPool::processes() const { return core_->processes(); }

std::exception_ptr ThreadPool::cancelled() {
  return std::make_exception_ptr(
      CancelledError("ThreadPool.terminate: the pool was terminated before this task began"));
}

}  // namespace mp
