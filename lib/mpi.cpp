// lib/mpi.cpp: mp::mpi::Pool's engine (MpiCore): the master's side on rank 0
// and the workers' loop on ranks >= 1.
// Invariants:
//  - MPI is initialized with MPI_THREAD_SERIALIZED and every MPI call after
//    start-up is made with State::mutex held (the master thread's, a
//    submitting thread's own sends, an apply waiter's polls for its own
//    result), so calls never overlap; a submit sends its tasks itself,
//    without waking another thread first;
//  - a waiter receives (receive_own) only while its job is the only one, so
//    no other job's delivery or callbacks run in its thread; while it polls,
//    the master thread does not (waiter_until), and it hands back at once
//    when it stops polling without its result;
//  - a worker holds at most its window of tasks (chunks_in_flight, more for
//    short tasks: see WorkerRank); the master knows which,
//    by seq, so a result is matched to its task and anything it does not
//    expect (a cancelled task, a lost worker's late result) is dropped;
//  - a worker rank sends nothing after its stop acknowledgement, and the
//    master thread ends only once every rank has acknowledged or is lost, so
//    MPI_Finalize finds no message in flight from a live rank;
//  - idle polling backs off to sleeps (MPI's own waits would spin a core):
//    a poller spins for spin_before_sleep after its last message, then sleeps
//    1 us, 2 us, ... up to PoolOptions::idle_sleep_max.
#include <mpi.h>
#include <sys/prctl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "mp/detail/futex.hpp"
#include "mp/detail/job_book.hpp"
#include "mp/detail/pool_messages.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/mpi.hpp"

namespace mp::detail {
namespace {

enum Tag : int { tag_task = 1, tag_result = 2, tag_stop = 3, tag_ready = 4 };

// Long enough to cover the gap between a result and the next task of a
// caller that submits one task at a time. An empty probe already yields the
// core inside Open MPI when the host is oversubscribed (mpirun
// --oversubscribe sets mpi_yield_when_idle), so the spin adds no yield of its
// own (docs/cluster.md, "Why the engine's other constants").
constexpr auto spin_before_sleep = std::chrono::microseconds(1000);

// The master thread leaves MPI to a waiter that polls for its own result
// (MpiCore::receive_own) for this long after its last poll or its
// submit_awaited: two pollers would share a core with the worker that is to
// answer. A waiter that gives up hands back at once; this bounds the wait
// for one that never comes (apply_async whose result is only read later)
// and, in a run of applies, how often the master thread wakes to look.
constexpr auto waiter_grace = std::chrono::microseconds(200);

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<std::size_t>(length));
}

// Throws mp::ProcessError naming the call and the peer rank (-1: none).
void mpi_check(int code, const char* call, int peer = -1) {
  if (code == MPI_SUCCESS) return;
  std::string message = std::string("mpi::Pool: ") + call;
  if (peer >= 0) message += " with rank " + std::to_string(peer);
  throw ProcessError(message + " failed: " + mpi_error_text(code));
}

// A sleep's timer slack is 50 us by default: an idle poller that asks for
// 1 us would sleep 50.
void tighten_timer_slack() {
  check("prctl", [] { return ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); }, "mpi::Pool");
}

// How long an idle poller pauses before its next poll: zero while it spins.
class Backoff {
 public:
  explicit Backoff(std::chrono::microseconds max) : max_(max) {}
  void reset() { idle_ = false; }
  // Idle for a spin already (another thread polled in its place): sleeps
  // from the shortest pause on.
  void spun() {
    idle_ = true;
    idle_since_ = Clock::now() - spin_before_sleep;
    sleep_ = std::chrono::microseconds(1);
  }
  std::chrono::microseconds next() {
    auto now = Clock::now();
    if (!idle_) {
      idle_ = true;
      idle_since_ = now;
      sleep_ = std::chrono::microseconds(1);
    }
    if (now - idle_since_ < spin_before_sleep) return std::chrono::microseconds(0);
    auto pause = sleep_;
    sleep_ = std::min(2 * sleep_, max_);
    return pause;
  }

 private:
  std::chrono::microseconds max_;
  std::chrono::microseconds sleep_{1};
  bool idle_ = false;
  Clock::time_point idle_since_{};
};

// Receives the message `status` announced into `buffer`.
void receive(std::string& buffer, const MPI_Status& status) {
  int count = 0;
  mpi_check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count", status.MPI_SOURCE);
  buffer.resize(static_cast<std::size_t>(count));
  mpi_check(MPI_Recv(buffer.data(), count, MPI_BYTE, status.MPI_SOURCE, status.MPI_TAG,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE),
            "MPI_Recv", status.MPI_SOURCE);
}

int message_size(std::size_t size, int peer) {
  if (size > static_cast<std::size_t>(INT32_MAX))
    throw ValueError("mpi::Pool: a message of " + std::to_string(size) + " bytes for rank " +
                     std::to_string(peer) + " exceeds MPI's 2 GiB count; use smaller chunks");
  return static_cast<int>(size);
}

void send(const std::string& message, int peer, int tag) {
  mpi_check(MPI_Send(message.data(), message_size(message.size(), peer), MPI_BYTE, peer, tag,
                     MPI_COMM_WORLD),
            "MPI_Send", peer);
}

// Serves tasks from rank 0 until it says stop; runs no code of the caller's
// main() after the Pool's constructor.
[[noreturn]] void serve_as_worker(int rank, const mpi::PoolOptions& options) {
  try {
    tighten_timer_slack();
    const auto worker = static_cast<std::uint32_t>(rank);
    std::string message, result;
    begin_result(result, ResultKind::succeeded, worker, 0, 0);
    if (options.initializer) {
      try {
        options.initializer.function();
      } catch (...) {
        describe_current_exception(result, ResultKind::initializer_failed, worker, 0, 0);
      }
    }
    send(result, 0, tag_ready);
    Backoff backoff(options.idle_sleep_max);
    Clock::time_point last_stop_check{};
    for (;;) {
      MPI_Status status;
      int arrived = 0;
      mpi_check(MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &arrived, &status), "MPI_Iprobe", 0);
      if (!arrived) {
        auto pause = backoff.next();
        if (pause.count() > 0)
          std::this_thread::sleep_for(pause);
        else
          cpu_relax();
        continue;
      }
      backoff.reset();
      receive(message, status);
      if (status.MPI_TAG == tag_stop) break;
      // terminate() sends a stop behind tasks this worker has not begun:
      // they are dropped. Looked for at most once a millisecond: a probe that
      // finds nothing costs a sched_yield inside Open MPI when oversubscribed
      // (docs/cluster.md has what checking at every task cost).
      const auto now = Clock::now();
      if (now - last_stop_check >= std::chrono::milliseconds(1)) {
        last_stop_check = now;
        int stop_waiting = 0;
        MPI_Status stop;
        mpi_check(MPI_Iprobe(0, tag_stop, MPI_COMM_WORLD, &stop_waiting, &stop), "MPI_Iprobe", 0);
        if (stop_waiting) {
          receive(message, stop);
          break;
        }
      }
      TaskRecord task = decode_task(message);
      begin_result(result, ResultKind::succeeded, worker, 0, task.seq);
      const auto began = Clock::now();
      try {
        reinterpret_cast<Runner>(decode_code_address(task.runner))(task.payload, result);
      } catch (...) {
        describe_current_exception(result, ResultKind::failed, worker, 0, task.seq);
      }
      stamp_run_time(result, static_cast<std::uint64_t>(
                                 std::chrono::nanoseconds(Clock::now() - began).count()));
      send(result, 0, tag_result);
    }
    send(std::string(), 0, tag_stop);  // nothing more comes from this rank
    MPI_Finalize();
    std::exit(0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mp::mpi::Pool worker rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }
}

// Every rank's build fingerprint to every rank; true if all are rank 0's.
// On a mismatch rank 0 gets the message naming the odd ranks.
bool same_build_everywhere(int rank, int size, std::string& message) {
  const std::string mine = build_fingerprint();
  std::string all(fingerprint_bytes * static_cast<std::size_t>(size), '\0');
  mpi_check(MPI_Allgather(mine.data(), static_cast<int>(fingerprint_bytes), MPI_BYTE, all.data(),
                          static_cast<int>(fingerprint_bytes), MPI_BYTE, MPI_COMM_WORLD),
            "MPI_Allgather");
  std::string_view master = std::string_view(all).substr(0, fingerprint_bytes);
  std::string odd;
  for (int other = 1; other < size; ++other) {
    std::string_view theirs =
        std::string_view(all).substr(fingerprint_bytes * static_cast<std::size_t>(other),
                                     fingerprint_bytes);
    if (theirs == master) continue;
    odd += (odd.empty() ? "" : ", ") + std::to_string(other) + " (" +
           describe_fingerprint(theirs) + ")";
  }
  if (odd.empty()) return true;
  if (rank == 0)
    message = "mpi::Pool: every rank must run the same build, but rank(s) " + odd +
              " differ from rank 0 (" + describe_fingerprint(master) +
              "); tasks name code by its place in the binary, so launch one build everywhere "
              "(the same path on every host, rebuilt nowhere in between)";
  return false;
}

using Pending = JobBook::Pending;
using Delivery = JobBook::Delivery;
using Phase = JobBook::Phase;

struct InFlight {
  std::uint64_t seq;
  std::uint64_t job;
  std::uint64_t index;
  Runner runner;
  std::shared_ptr<std::string> record;  // also held by its send until that completes
};

struct Outgoing {
  int peer;
  MPI_Request request;
  std::shared_ptr<std::string> record;
};

// A worker is sent enough tasks for about queued_work of its recent task
// length (as the fork Pool does), at least chunks_in_flight and at most
// max_window: with short tasks, the master's reply to each result comes too
// late for a worker that holds only a few (docs/cluster.md, "Why the
// engine's other constants").
constexpr std::uint64_t queued_work_ns = 1'000'000;
constexpr std::size_t max_window = 64;

struct WorkerRank {
  std::size_t window = 0;    // set from chunks_in_flight, then learnt
  std::uint64_t run_ns = 0;  // its recent task length, on average; 0: none seen
  void learn_run_time(std::uint64_t sample, std::size_t least) {
    run_ns = run_ns == 0 ? sample : (3 * run_ns + sample) / 4;
    window = std::clamp<std::size_t>(
        static_cast<std::size_t>(queued_work_ns / std::max<std::uint64_t>(run_ns, 1)), least,
        std::max(least, max_window));
  }
  std::deque<InFlight> in_flight;
  Clock::time_point last_heard;  // its last message, or when it was last given work while idle
  bool lost = false;
  bool stop_sent = false;
  bool stopped = false;
};

}  // namespace

struct MpiCore::State : JobBook {
  State(int size, const mpi::PoolOptions& options)
      : options(options), ranks(static_cast<std::size_t>(size - 1)) {
    for (WorkerRank& rank : ranks) rank.window = static_cast<std::size_t>(options.chunks_in_flight);
  }

  const mpi::PoolOptions options;
  std::mutex mutex;                  // the state below, and every MPI call
  std::condition_variable wake;      // the master thread: tasks or a stop to send
  std::condition_variable changed;   // jobs finished
  bool stopping = false;
  std::vector<WorkerRank> ranks;     // rank r is ranks[r - 1]
  std::vector<Outgoing> outgoing;
  std::vector<MPI_Request> requests;  // reap_sends' scratch
  std::vector<int> completed;
  std::uint64_t next_seq = 1;
  std::thread master;

  void isend(std::shared_ptr<std::string> record, int peer, int tag) {
    MPI_Request request;
    mpi_check(MPI_Isend(record->data(), message_size(record->size(), peer), MPI_BYTE, peer, tag,
                        MPI_COMM_WORLD, &request),
              "MPI_Isend", peer);
    outgoing.push_back(Outgoing{peer, request, std::move(record)});
  }

  // Sends pending tasks to the least loaded ranks with room. Mutex held.
  void pump() {
    while (!pending.empty()) {
      WorkerRank* target = nullptr;
      int peer = 0;
      for (std::size_t i = 0; i < ranks.size(); ++i) {
        WorkerRank& rank = ranks[i];
        if (rank.lost || rank.stop_sent ||
            rank.in_flight.size() >= rank.window)
          continue;
        if (!target || rank.in_flight.size() < target->in_flight.size()) {
          target = &rank;
          peer = static_cast<int>(i + 1);
        }
      }
      if (!target) return;
      Pending next = std::move(pending.front());
      pending.pop_front();
      const std::uint64_t seq = next_seq++;
      seal_task(next.task.record, seq,
                encode_code_address(reinterpret_cast<std::uintptr_t>(next.task.runner)));
      auto record = std::make_shared<std::string>(std::move(next.task.record));
      if (target->in_flight.empty()) target->last_heard = Clock::now();
      isend(record, peer, tag_task);
      target->in_flight.push_back(
          InFlight{seq, next.job, next.task.index, next.task.runner, std::move(record)});
    }
  }

  // Forgets the sends that are complete. Mutex held. One MPI_Testsome for
  // all: every MPI test runs Open MPI's progress engine once, which costs
  // more than the test itself.
  void reap_sends() {
    if (outgoing.empty()) return;
    requests.clear();
    for (const Outgoing& out : outgoing) requests.push_back(out.request);
    completed.resize(requests.size());
    int count = 0;
    mpi_check(MPI_Testsome(static_cast<int>(requests.size()), requests.data(), &count,
                           completed.data(), MPI_STATUSES_IGNORE),
              "MPI_Testsome");
    if (count <= 0) return;  // none, or MPI_UNDEFINED: no active request
    for (int i = 0; i < count; ++i) outgoing[static_cast<std::size_t>(completed[static_cast<std::size_t>(i)])].record.reset();
    std::erase_if(outgoing, [](const Outgoing& out) { return !out.record; });
  }

  bool stops_to_send() const {
    return stopping && std::any_of(ranks.begin(), ranks.end(),
                                   [](const WorkerRank& rank) { return !rank.stop_sent; });
  }

  bool waiting_for_workers() const {
    if (!outgoing.empty()) return true;
    return std::any_of(ranks.begin(), ranks.end(), [&](const WorkerRank& rank) {
      return !rank.lost && (!rank.in_flight.empty() || (rank.stop_sent && !rank.stopped));
    });
  }

  // Recovery: a rank that owes tasks and has been silent too long is lost;
  // its tasks go back to the front of the queue. Mutex held.
  void find_lost_ranks(std::vector<Delivery>& deliveries) {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < ranks.size(); ++i) {
      WorkerRank& rank = ranks[i];
      if (rank.lost || rank.in_flight.empty() || now - rank.last_heard < options.silence_timeout)
        continue;
      rank.lost = true;
      std::fprintf(stderr,
                   "mp::mpi::Pool: worker rank %zu has been silent for %lld ms while it owed %zu "
                   "chunk(s): taken as lost, its chunks run on other ranks\n",
                   i + 1, static_cast<long long>(options.silence_timeout.count()),
                   rank.in_flight.size());
      for (auto it = rank.in_flight.rbegin(); it != rank.in_flight.rend(); ++it)
        pending.push_front(Pending{it->job, PoolTask{it->index, it->runner, *it->record}});
      rank.in_flight.clear();
      // A send to a rank that is gone may never complete: it is let go.
      const int peer = static_cast<int>(i + 1);
      std::erase_if(outgoing, [peer](Outgoing& out) {
        if (out.peer != peer) return false;
        MPI_Request_free(&out.request);
        return true;
      });
      pump();
    }
    if (!pending.empty() &&
        std::all_of(ranks.begin(), ranks.end(), [](const WorkerRank& r) { return r.lost; })) {
      if (!broken)
        broken = std::make_exception_ptr(
            WorkerLost("mpi::Pool: every worker rank was lost (silent for longer than "
                       "PoolOptions::silence_timeout)",
                       -1));
      fail_everything(broken, deliveries);
    }
  }

  void fail_everything(const std::exception_ptr& error, std::vector<Delivery>& deliveries) {
    for (WorkerRank& rank : ranks) {
      for (InFlight& f : rank.in_flight)
        deliveries.push_back(Delivery{f.job, jobs[f.job].job, f.index, error});
      rank.in_flight.clear();
    }
    fail_pending(error, deliveries);
  }

  void deliver(std::vector<Delivery>& deliveries, std::string_view payload = {}) {
    JobBook::deliver(deliveries, payload, mutex, changed);
  }

  // A result from `peer`; the mutex held on entry, released on return.
  void on_result(std::unique_lock<std::mutex>& lock, int peer, const std::string& message,
                 std::vector<Delivery>& deliveries) {
    ResultRecord result = decode_result(message);
    WorkerRank& rank = ranks[static_cast<std::size_t>(peer - 1)];
    rank.last_heard = Clock::now();
    if (rank.lost) return;  // its tasks were sent again: this one is late
    auto it = std::find_if(rank.in_flight.begin(), rank.in_flight.end(),
                           [&](const InFlight& f) { return f.seq == result.seq; });
    if (it == rank.in_flight.end()) return;  // cancelled by terminate()
    std::exception_ptr error;
    if (result.kind == ResultKind::failed) error = remote_failure(result);
    deliveries.push_back(Delivery{it->job, jobs[it->job].job, it->index, error});
    rank.in_flight.erase(it);
    rank.learn_run_time(result.run_ns, static_cast<std::size_t>(options.chunks_in_flight));
    if (phase != Phase::terminated) pump();
    lock.unlock();
    deliver(deliveries, result.payload);
  }

  // Takes one message if one has arrived: a result (delivered, which
  // releases `lock`) or a stop acknowledgement. Mutex held on entry. True if
  // there was one. `message` holds the result while it is delivered.
  bool receive_one(std::unique_lock<std::mutex>& lock, std::string& message,
                   std::vector<Delivery>& deliveries) {
    MPI_Status status;
    int arrived = 0;
    mpi_check(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &arrived, &status),
              "MPI_Iprobe");
    if (!arrived) return false;
    receive(message, status);
    if (status.MPI_TAG == tag_result) {
      on_result(lock, status.MPI_SOURCE, message, deliveries);
    } else if (status.MPI_TAG == tag_stop) {
      ranks[static_cast<std::size_t>(status.MPI_SOURCE - 1)].stopped = true;
    }
    return true;
  }

  // Until then the master thread leaves MPI to a waiter that polls for its
  // own result (receive_own), or is about to (submit_awaited); a waiter that
  // gives up, and any other submit, clears it and wakes the master thread.
  Clock::time_point waiter_until{};
  bool deferring = false;  // the master thread waits for waiter_until: a submit need not wake it
  bool waiter_gave_up = false;

  // Fails the outstanding work and all later submits with `error`.
  void break_pool(std::exception_ptr error) noexcept {
    try {
      std::vector<Delivery> deliveries;
      {
        std::lock_guard lock(mutex);
        if (!broken) broken = error;
        fail_everything(broken, deliveries);
        // Nothing more is expected from any rank: the master thread ends.
        for (WorkerRank& rank : ranks) rank.lost = true;
        outgoing.clear();
      }
      deliver(deliveries);
    } catch (...) {
      // Out of memory while failing the work: what was delivered stays so.
    }
  }

  // The master thread: receives results and stop acknowledgements, sends
  // stops, finds lost ranks. Ends once stopping and every rank has answered
  // the stop or is lost.
  void serve() {
    try {
      tighten_timer_slack();
    } catch (...) {
      // Only the first poll after idling is a little later.
    }
    std::string message;
    std::vector<Delivery> deliveries;
    Backoff backoff(options.idle_sleep_max);
    for (;;) {
      bool progressed = false;
      try {
        std::unique_lock lock(mutex);
        if (stops_to_send()) {
          for (std::size_t i = 0; i < ranks.size(); ++i) {
            if (ranks[i].stop_sent) continue;
            ranks[i].stop_sent = true;
            isend(std::make_shared<std::string>(), static_cast<int>(i + 1), tag_stop);
          }
        }
        reap_sends();
        if (options.recover_lost_workers) find_lost_ranks(deliveries);
        if (!deliveries.empty()) {
          lock.unlock();
          deliver(deliveries);
          continue;
        }
        // Before parking: between a waiter's result and its next apply the
        // master thread stays here, so that the next submit need not wake it.
        if (!stopping && Clock::now() < waiter_until) {
          deferring = true;
          wake.wait_until(lock, waiter_until,
                          [&] { return stopping || Clock::now() >= waiter_until; });
          deferring = false;
          // A waiter that gave up has spun for the master thread, which
          // backs off from there; otherwise its polls were the activity.
          if (std::exchange(waiter_gave_up, false))
            backoff.spun();
          else
            backoff.reset();
          continue;
        }
        if (!waiting_for_workers()) {
          if (stopping) return;
          wake.wait(lock, [&] { return stopping || waiting_for_workers(); });
          backoff.reset();
          continue;
        }
        progressed = receive_one(lock, message, deliveries);
      } catch (...) {
        break_pool(std::current_exception());
        continue;
      }
      if (progressed) {
        backoff.reset();
        continue;
      }
      auto pause = backoff.next();
      if (pause.count() == 0) {
        cpu_relax();
      } else {
        std::unique_lock lock(mutex);
        wake.wait_for(lock, pause, [&] { return stops_to_send(); });
      }
    }
  }
};

MpiCore::MpiCore(int& argc, char**& argv, const mpi::PoolOptions& options) {
  if (options.chunks_in_flight < 1)
    throw ValueError("mpi::Pool: PoolOptions::chunks_in_flight must be 1 or more, not " +
                     std::to_string(options.chunks_in_flight));
  if (options.silence_timeout.count() <= 0 || options.idle_sleep_max.count() <= 0)
    throw ValueError("mpi::Pool: PoolOptions::silence_timeout and idle_sleep_max must be positive");
  int initialized = 0;
  mpi_check(MPI_Initialized(&initialized), "MPI_Initialized");
  if (initialized)
    throw ValueError("mpi::Pool: MPI is already initialized; the Pool initializes and finalizes "
                     "it itself, once per run");
  // MPI_Finalize opens with a barrier of the whole job, and a rank lost in
  // recovery mode never enters it: Open MPI's runtime sometimes lets the
  // others through and sometimes leaves them waiting for ever (a third of
  // the runs of test_mpi's recovery case on a loaded host). The stop
  // handshake already ensures that no message is in flight between live
  // ranks when they finalize (see the invariants above), which is all that
  // barrier is for; so in recovery mode every rank asks Open MPI to skip it.
  // MCA variables are read by MPI_Init, and this one is read-only through
  // MPI_T: hence the environment. A value the user set is kept.
  if (options.recover_lost_workers) ::setenv("OMPI_MCA_async_mpi_finalize", "1", 0);
  int provided = 0;
  mpi_check(MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    throw ProcessError("mpi::Pool: this MPI does not support MPI_THREAD_SERIALIZED");
  }
  std::string mismatch;
  if (!same_build_everywhere(rank, size, mismatch)) {
    MPI_Finalize();
    // Quietly: a worker rank's non-zero status makes mpirun abort the job at
    // once, and rank 0's message (the one that says what is wrong) would be
    // lost with it. The job's status is rank 0's.
    if (rank != 0) std::exit(0);
    throw ProcessError(mismatch);
  }
  if (size < 2) {
    MPI_Finalize();
    throw ValueError("mpi::Pool: there is no worker rank: launch with mpirun -n 2 or more "
                     "(rank 0 is the master, the others run the tasks)");
  }
  code_address_codec = &module_offset_codec;
  if (rank != 0) serve_as_worker(rank, options);

  state_ = std::make_unique<State>(size, options);
  State& s = *state_;
  // Every worker reports once its initializer has run (or thrown).
  std::string message;
  for (int ready = 1; ready < size; ++ready) {
    MPI_Status status;
    mpi_check(MPI_Probe(MPI_ANY_SOURCE, tag_ready, MPI_COMM_WORLD, &status), "MPI_Probe");
    receive(message, status);
    ResultRecord record = decode_result(message);
    if (record.kind == ResultKind::initializer_failed && !s.broken)
      s.broken = remote_failure(record, "mpi::Pool: the worker initializer threw ");
  }
  s.master = std::thread([&s] { s.serve(); });
}

MpiCore::~MpiCore() { shutdown(); }

bool MpiCore::receive_own(std::uint64_t job, const Deadline& deadline) noexcept {
  State& s = *state_;
  // Its own buffer: the result is delivered from it after the lock is let go.
  thread_local std::string message;
  std::vector<Delivery> deliveries;
  // It polls as the master thread would after a message: for
  // spin_before_sleep, a probe that finds nothing yielding the core; a timed
  // get() ends it at its deadline.
  const auto until = std::min(Clock::now() + spin_before_sleep, deadline.time_point());
  try {
    do {
      std::unique_lock lock(s.mutex, std::try_to_lock);
      if (!lock) return false;
      // With no other job outstanding, whatever arrives is this job's
      // result or one to drop: no other job's callbacks run here.
      if (s.joined || s.jobs.size() != 1 || !s.jobs.contains(job)) return false;
      s.waiter_until = Clock::now() + waiter_grace;
      s.reap_sends();
      if (s.receive_one(lock, message, deliveries)) return true;
      if (Clock::now() >= until) {
        // Sleeping next: the master thread takes over at once.
        s.waiter_until = {};
        s.waiter_gave_up = s.deferring;
        s.wake.notify_one();
        return false;
      }
    } while (true);
  } catch (...) {
    s.break_pool(std::current_exception());
    return true;
  }
}

int MpiCore::processes() const noexcept { return static_cast<int>(state_->ranks.size()); }

std::uint64_t MpiCore::submit(std::shared_ptr<Job> job, std::vector<PoolTask> tasks, bool sealed,
                              const char* method) {
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  std::uint64_t id = s.enter_job(std::move(job), tasks, sealed, method);
  s.pump();
  s.waiter_until = {};  // a waiter that polls sees two jobs and stops
  s.wake.notify_one();
  return id;
}

std::uint64_t MpiCore::submit_awaited(std::shared_ptr<Job> job, PoolTask task, const char* method) {
  State& s = *state_;
  std::vector<PoolTask> tasks;
  tasks.push_back(std::move(task));
  std::lock_guard lock(s.mutex);
  std::uint64_t id = s.enter_job(std::move(job), tasks, true, method);
  s.pump();
  s.waiter_until = Clock::now() + waiter_grace;
  if (!s.deferring) s.wake.notify_one();  // parked: it must time the waiter
  return id;
}

void MpiCore::add_tasks(std::uint64_t job, std::vector<PoolTask> tasks, bool sealed,
                        const char* method) {
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  s.enter_tasks(job, tasks, sealed, method);
  s.pump();
  s.waiter_until = {};
  s.wake.notify_one();
}

void MpiCore::close() {
  std::lock_guard lock(state_->mutex);
  state_->JobBook::close();
}

void MpiCore::terminate() {
  State& s = *state_;
  std::vector<Delivery> deliveries;
  if (!cancel_everything(s, "mpi::Pool", deliveries)) return;
  s.deliver(deliveries);
}

void MpiCore::join() {
  State& s = *state_;
  if (std::this_thread::get_id() == s.master.get_id())
    throw ValueError("mpi::Pool.join: called from a callback, which runs in the pool's own thread");
  {
    std::unique_lock lock(s.mutex);
    if (!s.wait_for_jobs(lock, s.changed, "mpi::Pool.join")) return;
    s.stopping = true;
    s.joined = true;
    s.wake.notify_all();
  }
  s.master.join();
  // Sends that never completed (to a lost rank) are let go.
  for (Outgoing& out : s.outgoing) MPI_Request_free(&out.request);
  s.outgoing.clear();
  MPI_Finalize();
}

void MpiCore::shutdown() noexcept {
  if (!state_) return;
  try {
    close();
    join();
  } catch (...) {
    terminate();
  }
}

}  // namespace mp::detail

namespace mp::mpi {

Pool::Pool(int& argc, char**& argv, PoolOptions options)
    : MessagePoolMethods(std::make_shared<detail::MpiCore>(argc, argv, options)) {}

}  // namespace mp::mpi
