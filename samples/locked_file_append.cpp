// The seed article's "Lock around file appends": a Pool of 10 workers runs
// 100 apply_async tasks, each appending "<pid> - <random 1..100>" to one file
// under an mp::Lock. Afterwards the file must hold exactly 100 whole lines.
//
// Two traps of the Python form are avoided here. Leaving a `with Pool()` block
// right after apply_async loses tasks, because Python's __exit__ calls
// terminate(); this program waits for every result (and mp::Pool's destructor
// would close() and join() anyway). And a random generator seeded before the
// fork gives every worker the same "random" numbers; each task seeds its own.
#include <mp/mp.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Workers are forked when the Pool is created, so what they share must exist
// before it: the lock and the file name.
mp::Lock* file_lock = nullptr;
std::string file_path;

int append_line(int) {
  std::random_device seed;
  std::mt19937 rng(seed());
  int value = std::uniform_int_distribution<int>(1, 100)(rng);
  std::string line = std::to_string(::getpid()) + " - " + std::to_string(value) + "\n";
  std::lock_guard guard(*file_lock);
  std::ofstream out(file_path, std::ios::app);
  // Written in pieces on purpose: without the lock, other workers' pieces
  // could land in between.
  for (char c : line) out.put(c).flush();
  return value;
}

// "<pid> - <1..100>" and nothing else: an interleaved append breaks the shape.
bool is_whole_line(const std::string& line) {
  std::istringstream fields(line);
  long pid = 0;
  std::string dash;
  int value = 0;
  char extra;
  return fields >> pid >> dash >> value && !(fields >> extra) && pid > 0 && dash == "-" &&
         value >= 1 && value <= 100 && line == std::to_string(pid) + " - " + std::to_string(value);
}

}  // namespace

int main() {
  mp::Lock lock;
  file_lock = &lock;
  file_path = "/tmp/mp-locked-append-" + std::to_string(::getpid()) + ".txt";
  std::remove(file_path.c_str());

  {
    mp::Pool pool(10);
    std::vector<mp::AsyncResult<int>> results;
    for (int i = 0; i < 100; ++i) results.push_back(pool.apply_async(append_line, i));
    for (auto& result : results) result.get(60s);
    pool.close();
    pool.join();
  }

  std::ifstream in(file_path);
  int lines = 0, whole = 0;
  for (std::string line; std::getline(in, line); ++lines)
    if (is_whole_line(line)) ++whole;
  std::remove(file_path.c_str());
  std::cout << "the file holds " << lines << " lines, " << whole << " of them whole\n";
  bool ok = lines == 100 && whole == 100;
  std::cout << (ok ? "OK: exactly 100 whole lines, none interleaved\n" : "FAILED\n");
  return ok ? 0 : 1;
}
