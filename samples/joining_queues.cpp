// "Joining processes that use queues" from Python's multiprocessing docs
// (programming guidelines): a child puts a big item on a queue and the parent
// joins it. Python reference: python/joining_queues.py.
//
// In Python, join() before get() deadlocks: the child's feeder thread cannot
// flush the 1 MB item into the full pipe, and a process does not exit before
// its feeder has flushed. The docs' fix is to get() first. mp's put() has no
// feeder thread: it returns once the item is in the queue's shared memory, so
// the child ends at once and either order works.
//   joining_queues             get, then join: the docs' correct order
//   joining_queues join-first  join (timeout 3 s), then get: the order that
//                              deadlocks in Python; mp's child has ended
#include <mp/mp.hpp>

#include <chrono>
#include <cstdio>
#include <string>

void f(mp::Queue<std::string>& queue) { queue.put(std::string(1000000, 'X')); }

int main(int argc, char** argv) {
  const bool join_first = argc > 1 && std::string(argv[1]) == "join-first";
  mp::Queue<std::string> queue;
  mp::Process p(f, queue);
  p.start();
  if (join_first) {
    p.join(std::chrono::seconds(3));
    std::printf("alive after join(timeout=3): %s\n", p.is_alive() ? "True" : "False");
  }
  const std::string obj = queue.get();
  p.join();
  std::printf("got %zu bytes: '%s...'; exitcode %d\n", obj.size(), obj.substr(0, 3).c_str(), *p.exitcode());
}
