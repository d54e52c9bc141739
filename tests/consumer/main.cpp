// Touches every module of mp through the umbrella header, so that a missing
// installed header or an unlinked library part fails here.
#include <mp/mp.hpp>

#include <cstdio>
#include <string>

int main() {
  auto [parent_end, child_end] = mp::Pipe();
  mp::Queue<int> queue;
  mp::Lock lock;
  mp::Process child([&, child_end = child_end]() mutable {
    std::lock_guard guard(lock);
    child_end.send(std::string("hello from ") + mp::current_process().name);
    queue.put(6 * 7);
  });
  child.start();
  std::string greeting = parent_end.recv<std::string>();
  int answer = queue.get(std::chrono::seconds(30));
  child.join(std::chrono::seconds(30));
  mp::Pool pool(2);
  auto squares = pool.map([](int x) { return x * x; }, std::vector<int>{1, 2, 3});
  auto echoed = mp::subprocess::check_output({"echo", "ok"});
  std::printf("%s %d %d %s", greeting.c_str(), answer, squares[2], echoed.c_str());
  return child.exitcode() == 0 ? 0 : 1;
}
