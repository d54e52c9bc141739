// CPython's Doc/includes/mp_workers.py with mp: four workers started on
// temporaries, Process(target=worker, args=(task_queue, done_queue)).start(),
// that serve a task queue until each takes a "STOP".
//
// The Python original puts (function, args) tuples on the queue; a typed
// queue carries a Task (calculate.hpp). Nothing joins the workers: as in
// Python, their Process objects are gone at once, the workers go on, and the
// exit of main waits for them (they have taken their STOPs).
#include <mp/mp.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "calculate.hpp"

void worker(mp::Queue<Task>& input, mp::Queue<std::string>& output) {
  for (Task task = input.get(); task.func != "STOP"; task = input.get()) output.put(calculate(task));
}

int main() {
  const int number_of_processes = 4;
  std::vector<Task> tasks1, tasks2;
  for (int i = 0; i < 20; ++i) tasks1.push_back({"mul", i, 7});
  for (int i = 0; i < 10; ++i) tasks2.push_back({"plus", i, 8});

  // Create queues
  mp::Queue<Task> task_queue;
  mp::Queue<std::string> done_queue;

  // Submit tasks
  for (const Task& task : tasks1) task_queue.put(task);

  // Start worker processes
  for (int i = 0; i < number_of_processes; ++i) mp::Process(worker, task_queue, done_queue).start();

  // Get and print results (Python's print('\t', x) puts a space after the tab)
  std::printf("Unordered results:\n");
  for (std::size_t i = 0; i < tasks1.size(); ++i) std::printf("\t %s\n", done_queue.get().c_str());

  // Add more tasks using put()
  for (const Task& task : tasks2) task_queue.put(task);

  // Get and print some more results
  for (std::size_t i = 0; i < tasks2.size(); ++i) std::printf("\t %s\n", done_queue.get().c_str());

  // Tell child processes to stop
  for (int i = 0; i < number_of_processes; ++i) task_queue.put(Task{"STOP"});
}
