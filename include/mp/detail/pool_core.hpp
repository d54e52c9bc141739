// mp/detail/pool_core.hpp: the untyped engine behind mp::Pool. It owns the
// workers, their task queues, the result queue and the two helper threads, and
// knows which task each worker holds, so that a dead worker fails exactly the
// task it was running (mp::WorkerLost) and hands back the ones it never began.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mp/detail/pool_job.hpp"
#include "mp/detail/pool_task.hpp"

namespace mp::detail {

struct PoolTask {
  std::uint64_t index;  // the chunk's position in its job
  Runner runner;
  std::string payload;
};

class PoolCore {
 public:
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
  // More tasks for a job that is not sealed yet (imap's lazy input). After
  // close() this is still allowed: the job was accepted while running.
  void add_tasks(std::uint64_t job, std::vector<PoolTask> tasks, bool sealed);

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
