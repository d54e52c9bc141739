// lib/job_book.cpp: JobBook, the job bookkeeping both message pools share.
// Invariants: a job is in `jobs` while it has outstanding tasks or may get
// more (not sealed); each task counted in `outstanding` is delivered once.
#include "mp/detail/job_book.hpp"

#include <string>

#include "mp/errors.hpp"

namespace mp::detail {

std::uint64_t JobBook::enter_job(std::shared_ptr<Job> job, std::vector<PoolTask>& tasks,
                                 bool sealed, const char* method) {
  if (phase != Phase::running) throw ValueError(std::string(method) + ": Pool not running");
  if (broken) std::rethrow_exception(broken);
  std::uint64_t id = next_job++;
  if (tasks.empty() && sealed) return id;
  jobs.emplace(id, Entry{std::move(job), tasks.size(), sealed});
  for (PoolTask& task : tasks) pending.push_back(Pending{id, std::move(task)});
  return id;
}

void JobBook::enter_tasks(std::uint64_t job, std::vector<PoolTask>& tasks, bool sealed,
                          const char* method) {
  auto it = jobs.find(job);
  if (it == jobs.end() || joined || phase == Phase::terminated)
    throw ValueError(std::string(method) +
                     ": the pool was joined or terminated before the input was all submitted");
  it->second.outstanding += tasks.size();
  it->second.sealed = sealed;
  for (PoolTask& task : tasks) pending.push_back(Pending{job, std::move(task)});
  if (it->second.outstanding == 0 && sealed) jobs.erase(it);
}

std::exception_ptr JobBook::begin_terminate(std::string_view pool_name) {
  if (phase == Phase::terminated) return nullptr;
  phase = Phase::terminated;
  return std::make_exception_ptr(CancelledError(
      std::string(pool_name) + ".terminate: the pool was terminated before this task finished"));
}

bool JobBook::wait_for_jobs(std::unique_lock<std::mutex>& lock, std::condition_variable& changed,
                            const char* method) {
  if (phase == Phase::running)
    throw ValueError(std::string(method) +
                     ": the pool is still running; call close() or terminate() first");
  if (joined) return false;
  for (auto& [id, entry] : jobs) entry.sealed = true;
  std::erase_if(jobs, [](const auto& item) { return item.second.outstanding == 0; });
  changed.wait(lock, [&] { return jobs.empty() || broken; });
  return true;
}

void JobBook::fail_pending(const std::exception_ptr& error, std::vector<Delivery>& deliveries) {
  for (Pending& p : pending) deliveries.push_back(Delivery{p.job, jobs[p.job].job, p.task.index, error});
  pending.clear();
}

void JobBook::deliver(std::vector<Delivery>& deliveries, std::string_view payload,
                      std::mutex& mutex, std::condition_variable& changed) {
  for (Delivery& delivery : deliveries) {
    if (delivery.error)
      delivery.job->task_failed(delivery.index, delivery.error);
    else
      delivery.job->task_succeeded(delivery.index, payload);
  }
  std::lock_guard lock(mutex);
  for (Delivery& delivery : deliveries) {
    auto it = jobs.find(delivery.job_id);
    if (it == jobs.end()) continue;
    if (--it->second.outstanding == 0 && it->second.sealed) jobs.erase(it);
  }
  deliveries.clear();
  changed.notify_all();
}

}  // namespace mp::detail
