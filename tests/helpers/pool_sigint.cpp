// Runs a Pool.map of slow tasks for the SIGINT test: prints its worker pids on
// the first line, then "completed" if the map finishes.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "mp/pool.hpp"

int slow(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  return x;
}

int main() {
  mp::Pool pool(2);
  for (int pid : pool.worker_pids()) std::printf("%d ", pid);
  std::printf("\n");
  std::fflush(stdout);
  auto values = pool.map(slow, std::vector<int>(40, 1), 1);
  std::printf("completed %zu\n", values.size());
}
