// mp/mpi.hpp: mp::mpi::Pool, the Pool across machines, on Open MPI (Python:
// mpi4py.futures.MPIPoolExecutor, with multiprocessing.Pool's methods).
// Present only when mp was built with MPI (meson option 'mpi'); link with
// mp_mpi (pkg-config/meson dependency) and launch with mpirun.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <type_traits>

#include "mp/detail/mpi_core.hpp"
#include "mp/pool.hpp"

namespace mp::mpi {

// The worker initializer: a function (or captureless lambda) that every
// worker rank runs once before its first task. A std::function or a
// capturing lambda cannot be one: the worker ranks are other processes,
// possibly on other machines, and never see this object.
struct Initializer {
  void (*function)() = nullptr;

  Initializer() = default;
  Initializer(std::nullptr_t) {}
  Initializer(void (*f)()) : function(f) {}
  // A captureless lambda converts here, since copy-initialization would not
  // take it through its conversion to a pointer; anything else is refused.
  template <class F>
    requires(!std::is_null_pointer_v<F>)
  Initializer(F f) {
    if constexpr (std::is_convertible_v<F, void (*)()>)
      function = f;
    else
      static_assert(!sizeof(F*),
                  "mp::mpi::PoolOptions::initializer must be a function pointer (a function or a "
                  "captureless lambda): a std::function or a capturing lambda cannot reach the "
                  "worker ranks, which are other processes, possibly on other machines. Move its "
                  "state into globals that the function sets up.");
  }
  explicit operator bool() const { return function != nullptr; }
};

struct PoolOptions {
  Initializer initializer;  // runs once on every worker rank; if it throws, the pool is broken
  // Chunks sent ahead to each worker, so that it never waits for the next one
  // (1 is Python's way; 4 measured best on one host).
  int chunks_in_flight = 4;
  // With mpirun --enable-recovery: a worker silent for silence_timeout while
  // it owes chunks is taken as lost and its chunks run elsewhere (at least
  // once: a chunk may run twice, a late result is ignored). The timeout must
  // exceed the longest chunk. Every rank then skips MPI_Finalize's opening
  // barrier, which a dead rank would hold up (Open MPI's async_mpi_finalize:
  // docs/cluster.md). Off: Open MPI ends the job when a rank dies.
  bool recover_lost_workers = false;
  std::chrono::milliseconds silence_timeout{30000};
  // The longest sleep of an idle worker between two polls (MPI's own waits
  // would spin a core at 100 %). A poller spins for 1 ms after its last
  // message, then sleeps 1 us, 2 us, ... up to this. Longer costs less CPU
  // when idle and more latency on the first task after idling (the measured
  // trade-off: docs/cluster.md, "Idle CPU against wake-up latency"). The
  // master thread sleeps on a condition variable when nothing is outstanding.
  std::chrono::microseconds idle_sleep_max{1000};
};

// Pool (Python: multiprocessing.pool.Pool's methods; mpi4py.futures for the launch)
//
//   int main(int argc, char** argv) {
//     mp::mpi::Pool pool(argc, argv);  // ranks >= 1 serve and exit here
//     auto squares = pool.map(square, inputs);
//   }
//
// Launched with `mpirun -n N ./program`: rank 0 is the master (it runs no
// tasks), ranks 1..N-1 are the N-1 workers. The methods are mp::Pool's
// (apply, apply_async, map, map_async, starmap, starmap_async, imap,
// imap_unordered, Callbacks, close/terminate/join), with the same callables,
// argument and result types, result order and task exceptions. Callables and
// runners travel as (module, offset), so every rank must run the same build:
// the constructor compares the build-ids of the executable, libmp and
// libmp_mpi on all ranks and, on a mismatch, throws mp::ProcessError on rank
// 0 naming the ranks (the others end quietly, status 0, so that mpirun
// keeps rank 0 alive to report it).
//
// Differs from mp::Pool: the constructor takes argc/argv (MPI_Init) and
// the pool owns MPI: join() (or the destructor) finalizes it, so one Pool per
// run; a worker is not replaced. A lost worker: without recovery, Open MPI
// ends the whole job within about a second (mpirun names the rank); with
// PoolOptions::recover_lost_workers, see above. terminate() fails the
// outstanding results with mp::CancelledError and drops the chunks not
// begun, but a task running on a worker rank runs to its end (no signal
// crosses machines); join() then waits for it.
// Blocking: as mp::Pool, except that a thread waiting for an apply without
// callbacks, while no other work is outstanding, polls MPI for its result
// for up to 1 ms, never past its timeout (a core busy meanwhile), before it
// sleeps (docs/cluster.md, "Idle CPU against wake-up latency").
// Thread-safe: several threads may submit.
class Pool : public mp::detail::MessagePoolMethods<Pool, mp::detail::MpiCore> {
 public:
  Pool(int& argc, char**& argv, PoolOptions options = {});
  // close(), terminate(), join() (ValueError unless closed or terminated; it
  // finalizes MPI), processes() (the worker ranks: MPI_COMM_WORLD's size less
  // one), as mp::Pool's.

 private:
  friend class mp::detail::PoolMethods<Pool>;
  friend class mp::detail::MessagePoolMethods<Pool, mp::detail::MpiCore>;
  static constexpr mp::detail::PoolMethodNames method_names{
      "mpi::Pool.apply_async", "mpi::Pool.map", "mpi::Pool.starmap", "mpi::Pool.imap",
      "mpi::Pool.imap_unordered"};
};

}  // namespace mp::mpi
