// Runs a Pool.map of slow tasks for the SIGINT test: prints its worker pids on
// the first line, then "completed N" if the map finishes, then the worker
// pids again.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "mp/pool.hpp"

int slow(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  return x;
}

void print_worker_pids(const mp::Pool& pool) {
  for (int pid : pool.worker_pids()) std::printf("%d ", pid);
  std::printf("\n");
  std::fflush(stdout);
}

int main() {
  mp::Pool pool(2);
  print_worker_pids(pool);
  auto values = pool.map(slow, std::vector<int>(40, 1), 1);
  std::printf("completed %zu\n", values.size());
  print_worker_pids(pool);
}
