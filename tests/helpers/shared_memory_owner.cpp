// Child program for test_shared_memory: creates two segments, gives up
// ownership of the second, forks a child that lives 3 s, prints "ready" and
// waits to be killed. A program of its own, so that it starts its own name
// reaper instead of sharing the test process's.
// usage: shared_memory_owner <owned name> <released name>
#include <chrono>
#include <cstdio>
#include <thread>

#include "mp/process.hpp"
#include "mp/shared_memory.hpp"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  mp::SharedMemory owned(argv[1], true, 4096);
  mp::SharedMemory released(argv[2], true, 4096);
  released.release_ownership();
  mp::Process child([] { std::this_thread::sleep_for(std::chrono::seconds(3)); });
  child.start();
  std::printf("ready\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(60));
}
