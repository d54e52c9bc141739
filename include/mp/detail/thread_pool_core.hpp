// mp/detail/thread_pool_core.hpp: the threads and the task queue behind
// mp::ThreadPool. The same shape as PoolCore (submit, add_tasks, close,
// terminate, join, processes), so that IMapIterator drives either; a task is
// a closure that runs in one of the threads and delivers its own outcome.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "mp/detail/pool_job.hpp"

namespace mp::detail {

class ThreadPoolCore {
 public:
  // Runs the task (true), or reports that terminate() cancelled it before it
  // began (false). It must deliver its outcome either way, and not throw.
  using Task = std::function<void(bool run)>;

  // Starts `threads` threads, each running `initializer` first; if an
  // initializer throws, the threads are stopped and its exception is thrown
  // from here.
  ThreadPoolCore(int threads, std::function<void()> initializer);
  ~ThreadPoolCore();
  ThreadPoolCore(const ThreadPoolCore&) = delete;
  ThreadPoolCore& operator=(const ThreadPoolCore&) = delete;

  int processes() const noexcept;

  // Queues a job's tasks. The job is reached through its tasks; the
  // parameter keeps PoolCore's shape. `sealed`: no more tasks will follow.
  // ValueError unless the pool is running.
  std::uint64_t submit(const std::shared_ptr<Job>& job, std::vector<Task> tasks, bool sealed,
                       const char* method);
  // imap's later chunks: accepted until join() or terminate(), as PoolCore.
  void add_tasks(std::uint64_t job, std::vector<Task> tasks, bool sealed, const char* method);

  // Runs `deliver` (a job's bookkeeping and its callbacks) under the one
  // lock that serializes them, as Python's single result thread does.
  void deliver(const std::function<void()>& outcome);

  void close();
  // Cancels the tasks not begun (their results fail with CancelledError),
  // lets the running ones finish, and joins the threads.
  void terminate();
  // Waits until every submitted task has run, then joins the threads.
  // ValueError while still running, or from one of the pool's threads.
  void join();
  // close() + join(), or nothing if already joined: the destructor's.
  void shutdown() noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace mp::detail
