// Lock and Value costs beside their peers, alternating in one run: a robust
// process-shared pthread mutex (the raw limit for an owner-recovering lock)
// here, Python's multiprocessing.Lock and Value in bench/peers/sync_peer.py.
#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <mutex>

#include "bench_support.hpp"
#include "mp/detail/shared_mapping.hpp"
#include "mp/process.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/synchronize.hpp"

namespace {

using bench::ns_per_op;
using bench::report;

constexpr int rounds = 5;
constexpr long lock_operations = 2'000'000;
constexpr long increments_per_process = 100'000;

// A robust, process-shared pthread mutex and a counter beside it, in shared memory.
struct RobustCounter {
  RobustCounter() {
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&mutex, &attributes);
    pthread_mutexattr_destroy(&attributes);
  }
  void lock() {
    if (pthread_mutex_lock(&mutex) == EOWNERDEAD) pthread_mutex_consistent(&mutex);
  }
  void unlock() { pthread_mutex_unlock(&mutex); }
  pthread_mutex_t mutex;
  long value = 0;
};

// Two processes, each adding increments_per_process under the lock.
template <class Increment>
double two_process_increments(Increment increment) {
  return ns_per_op(2 * increments_per_process, [&] {
    mp::Process first([&] { for (long i = 0; i < increments_per_process; ++i) increment(); });
    mp::Process second([&] { for (long i = 0; i < increments_per_process; ++i) increment(); });
    first.start();
    second.start();
    first.join();
    second.join();
  });
}

}  // namespace

int main() {
  mp::Lock lock;
  auto robust = mp::detail::make_shared_object<RobustCounter>("bench");
  mp::Value<long> value(0);
  for (int round = 0; round < rounds; ++round) {
    report("lock_uncontended", "mp", ns_per_op(lock_operations, [&] {
             for (long i = 0; i < lock_operations; ++i) {
               lock.acquire();
               lock.release();
             }
           }));
    report("lock_uncontended", "raw", ns_per_op(lock_operations, [&] {
             for (long i = 0; i < lock_operations; ++i) {
               robust->lock();
               robust->unlock();
             }
           }));
    report("value_increment_2proc", "mp", two_process_increments([&] {
             std::lock_guard guard(value.get_lock());
             ++value.value();
           }));
    report("value_increment_2proc", "raw", two_process_increments([&] {
             std::lock_guard guard(*robust);
             ++robust->value;
           }));
  }
  if (value.load() != rounds * 2 * increments_per_process) {
    std::fprintf(stderr, "bench_sync: lost updates: %ld\n", value.load());
    return 1;
  }
}
