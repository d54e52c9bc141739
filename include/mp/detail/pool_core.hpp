// mp/detail/pool_core.hpp: the untyped engine behind mp::Pool. It owns the
// workers, their task queues, the result queue and the two helper threads, and
// knows which task each worker holds, so that a dead worker fails exactly the
// task it was running (mp::WorkerLost) and hands back the ones it never began.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mp/detail/pool_job.hpp"
#include "mp/detail/pool_task.hpp"

namespace mp::detail {

// A map sends its tasks to the workers in batches of about this many bytes.
inline constexpr std::size_t submit_batch_bytes = 64 << 10;

struct PoolTask {
  std::uint64_t index;  // the chunk's position in its job
  Runner runner;
  std::string record;  // the task record, its header left to be sealed when it is sent
};

class PoolCore {
 public:
  using Task = PoolTask;
  PoolCore(int processes, std::function<void()> initializer,
           std::optional<int> maxtasksperchild);
  ~PoolCore();
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  int processes() const noexcept;

  // Registers a job with its first tasks. `sealed` says that no more tasks will
  // be added; the job is forgotten once sealed and all its tasks are done.
  // Throws ValueError naming `method` unless the pool is running.
  std::uint64_t submit(std::shared_ptr<Job> job, std::vector<PoolTask> tasks, bool sealed,
                       const char* method);
  // More tasks for a job that is not sealed yet (imap's lazy input, a map's
  // later batches). After close() this is still allowed: the job was accepted
  // while running. Throws ValueError naming `method` after join() or terminate().
  void add_tasks(std::uint64_t job, std::vector<PoolTask> tasks, bool sealed, const char* method);

  // For ProcessPoolExecutor's futures. cancel() withdraws a job none of whose
  // tasks has been handed to a worker: they are dropped and nothing is
  // delivered; false once one was handed out or the job is done.
  // cancel_pending() withdraws every task still waiting in the pool, failing
  // each with `error`. started() says whether a worker has begun a task of
  // the job (it reads the workers' shared slots: no message, nothing on the
  // hot path). broken() is what broke the pool (its initializer failed, no
  // worker could be started), or null.
  bool cancel(std::uint64_t job);
  void cancel_pending(std::exception_ptr error);
  bool started(std::uint64_t job) const;
  // For a future's result(), while it waits for the one task of `job`: if
  // that task's result is at the head of the result queue and no other
  // thread is handling the queue, books and delivers it in this thread (its
  // callbacks run here), as the result thread would; true if it did. The
  // caller then skips a hop through the result thread, whose wake-up is a
  // large part of a short task's round trip. A result at the head that is
  // not the job's, or any other message, is left to the result thread.
  bool deliver_own(std::uint64_t job) noexcept;
  // Between these, a thread polls with deliver_own (it watches the result
  // queue): a task result the workers put meanwhile wakes the result thread
  // only if the thread leaves it, deliver_own or unwatch_results() waking it
  // then. So a result its own waiter takes costs no wake-up of the result
  // thread. Call unwatch_results() before sleeping, once per watch_results().
  void watch_results() noexcept;
  void unwatch_results() noexcept;
  std::exception_ptr broken() const;

  void close();
  void terminate();
  void join();
  // Destruction: close() then join() for a running pool, join() otherwise.
  void shutdown() noexcept;

  // Worker pids, for tests and diagnostics.
  std::vector<int> worker_pids() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace mp::detail
