// mp/detail/mpi_core.hpp: the untyped engine behind mp::mpi::Pool. Rank 0
// keeps the jobs and a master thread that receives the results (submitting
// threads send their own tasks, an apply's waiter may receive its result);
// ranks >= 1 serve tasks inside the constructor and exit. The task and
// result records are the fork Pool's (detail/pool_messages.hpp), code
// addresses travel as (module, offset) (lib/mpi_identity.cpp). Nothing here
// includes mpi.h: a program that includes mp/mpi.hpp needs MPI only to link.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mp/detail/pool_core.hpp"
#include "mp/detail/pool_job.hpp"

namespace mp::mpi {
struct PoolOptions;
}

namespace mp::detail {

// lib/mpi_identity.cpp: code addresses as (module, offset), and what makes
// two ranks' builds the same.
extern const CodeAddressCodec module_offset_codec;
// The build-ids of the executable, libmp and libmp_mpi (NT_GNU_BUILD_ID),
// each padded to build_id_bytes; a module without one counts as zeros.
inline constexpr std::size_t build_id_bytes = 32;
inline constexpr std::size_t fingerprint_bytes = 3 * build_id_bytes;
std::string build_fingerprint();
// "executable <hex>, libmp <hex>, libmp_mpi <hex>"
std::string describe_fingerprint(std::string_view fingerprint);

class MpiCore {
 public:
  using Task = PoolTask;
  // Initializes MPI and checks that every rank runs the same build. On ranks
  // >= 1 it serves tasks until the master stops it, then finalizes MPI and
  // exits the process: it never returns there.
  MpiCore(int& argc, char**& argv, const mpi::PoolOptions& options);
  ~MpiCore();
  MpiCore(const MpiCore&) = delete;
  MpiCore& operator=(const MpiCore&) = delete;

  int processes() const noexcept;  // the worker ranks

  // As PoolCore's (detail/pool_core.hpp).
  std::uint64_t submit(std::shared_ptr<Job> job, std::vector<PoolTask> tasks, bool sealed,
                       const char* method);
  void add_tasks(std::uint64_t job, std::vector<PoolTask> tasks, bool sealed, const char* method);

  // An apply without callbacks, whose waiter will call receive_own: as
  // submit, but the master thread is left asleep for a while (the waiter
  // polls instead); if no waiter comes, it polls after that while.
  std::uint64_t submit_awaited(std::shared_ptr<Job> job, PoolTask task, const char* method);
  // For the waiter of a submit_awaited job, while it spins: if `job` is the
  // only job outstanding and no other thread is calling MPI, polls for a
  // message for up to a millisecond (as the master thread would), never
  // past `deadline`, and
  // handles one as the master thread would, so its own result is delivered
  // in this thread; true if one arrived. The round trip then skips the
  // master thread, whose wake-up and whose share of an oversubscribed host
  // were most of a short task's round trip.
  bool receive_own(std::uint64_t job, const Deadline& deadline) noexcept;

  void close();
  void terminate();
  // Waits for the work, stops the workers and finalizes MPI.
  void join();
  void shutdown() noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace mp::detail
