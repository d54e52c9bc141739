// mp/detail/job_book.hpp: the parent-side bookkeeping that both message pools
// (Pool's PoolCore, mpi::Pool's MpiCore) keep alike: the jobs, their tasks not
// yet handed to a worker, the pool's phase, and how outcomes reach their jobs.
// It knows nothing of workers; its owner's mutex guards it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mp/detail/pool_core.hpp"
#include "mp/detail/pool_job.hpp"

namespace mp::detail {

class JobBook {
 public:
  enum class Phase { running, closed, terminated };
  struct Pending {
    std::uint64_t job;
    PoolTask task;
  };
  struct Entry {
    std::shared_ptr<Job> job;
    std::size_t outstanding = 0;
    bool sealed = false;
  };
  // An outcome to hand to its job outside the lock: user callbacks may run.
  struct Delivery {
    std::uint64_t job_id;
    std::shared_ptr<Job> job;
    std::uint64_t index;
    std::exception_ptr error;  // null: succeeded with the payload
  };

  Phase phase = Phase::running;
  bool joined = false;
  std::exception_ptr broken;  // set: nothing can run, submit throws it
  std::deque<Pending> pending;
  std::unordered_map<std::uint64_t, Entry> jobs;
  std::uint64_t next_job = 1;

  // The checks and the bookkeeping of Core::submit and Core::add_tasks (see
  // PoolCore); the tasks are moved to `pending`.
  std::uint64_t enter_job(std::shared_ptr<Job> job, std::vector<PoolTask>& tasks, bool sealed,
                          const char* method);
  void enter_tasks(std::uint64_t job, std::vector<PoolTask>& tasks, bool sealed,
                   const char* method);
  void close() {
    if (phase == Phase::running) phase = Phase::closed;
  }
  // terminate()'s first step: null if the pool was terminated already, else
  // the CancelledError, naming `pool_name`, that every unfinished task gets.
  std::exception_ptr begin_terminate(std::string_view pool_name);
  // The first half of join(), `lock` holding the owner's mutex: refuses a
  // running pool (ValueError naming `method`), then waits until every job
  // is done (imap's unfinished input gets nothing more) or the pool is
  // broken. False if the pool was joined already.
  bool wait_for_jobs(std::unique_lock<std::mutex>& lock, std::condition_variable& changed,
                     const char* method);
  // A failure with `error` for every pending task, which are dropped.
  void fail_pending(const std::exception_ptr& error, std::vector<Delivery>& deliveries);
  // Hands the outcomes to their jobs (without `mutex`: callbacks run), then
  // under `mutex` forgets the finished jobs and notifies `changed`. Empties
  // `deliveries`.
  void deliver(std::vector<Delivery>& deliveries, std::string_view payload, std::mutex& mutex,
               std::condition_variable& changed);
};

// terminate()'s bookkeeping in an engine's State (a JobBook with its `mutex`
// and its own fail_everything, which also knows the tasks handed to workers):
// under the mutex, every unfinished task gets the CancelledError naming
// `pool_name`. False if the pool was terminated already.
template <class EngineState>
bool cancel_everything(EngineState& state, std::string_view pool_name,
                       std::vector<JobBook::Delivery>& deliveries) {
  std::lock_guard lock(state.mutex);
  std::exception_ptr cancelled = state.begin_terminate(pool_name);
  if (!cancelled) return false;
  state.fail_everything(cancelled, deliveries);
  return true;
}

}  // namespace mp::detail
