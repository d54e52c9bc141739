// The seed article's process creation: ten Process objects started and
// joined, each printing its name, and a Pool of four workers beside them.
#include <mp/mp.hpp>

#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

namespace {

std::string worker_name(int task) {
  return "task " + std::to_string(task) + " ran in " + mp::current_process().name;
}

}  // namespace

int main() {
  std::cout << "main process: " << mp::current_process().name << ", " << mp::cpu_count()
            << " CPUs\n" << std::flush;

  mp::Pool pool(4);  // forked now, before the processes below, and busy beside them
  auto pool_results = pool.map_async(worker_name, std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});

  std::vector<mp::Process> processes;
  for (int i = 0; i < 10; ++i) {
    processes.emplace_back([i] {
      auto me = mp::current_process();
      std::cout << "worker " << i << " is " << me.name << " (pid " << me.pid << ", parent "
                << mp::parent_process()->name << ")\n" << std::flush;
    });
  }
  for (auto& p : processes) p.start();
  int failures = 0;
  for (auto& p : processes) {
    p.join();
    failures += p.exitcode() != 0;
  }
  for (const auto& line : pool_results.get()) std::cout << "pool: " << line << "\n";
  std::cout << processes.size() << " processes joined, " << failures << " failed\n";
  return failures == 0 ? 0 : 1;
}
