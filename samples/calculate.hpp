// The tasks of CPython's mp_workers.py and mp_pool.py, shared by their ports
// (workers.cpp, mp_pool.cpp): mul and plus after a random sleep of up to half
// a second, and calculate(), which says which process computed what.
//
// The Python programs put (function, args) tuples on a queue or in a pool; a
// Task carries the function's name and its two arguments instead.
#pragma once

#include <mp/mp.hpp>

#include <unistd.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>

struct Task {
  std::string func;  // "mul", "plus", or (workers.cpp) "STOP"
  int a = 0;
  int b = 0;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(func, a, b);
  }
};

// time.sleep(0.5 * random.random()): each process its own generator.
inline void sleep_a_little() {
  thread_local std::mt19937 random(static_cast<unsigned>(::getpid()));
  std::uniform_real_distribution<double> up_to_half_a_second(0.0, 0.5);
  std::this_thread::sleep_for(std::chrono::duration<double>(up_to_half_a_second(random)));
}

inline int mul(int a, int b) {
  sleep_a_little();
  return a * b;
}

inline int plus(int a, int b) {
  sleep_a_little();
  return a + b;
}

// Python's '%s says that %s%s = %s' % (current_process().name, func.__name__, args, result).
inline std::string calculate(const Task& task) {
  const int result = task.func == "mul" ? mul(task.a, task.b) : plus(task.a, task.b);
  return mp::current_process().name + " says that " + task.func + "(" + std::to_string(task.a) + ", " +
         std::to_string(task.b) + ") = " + std::to_string(result);
}
