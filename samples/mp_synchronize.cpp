// CPython's Doc/includes/mp_synchronize.py (3.11, the last version that has
// it) with mp: Value and Lock, a Queue with timeouts, Condition, Semaphore,
// join with a timeout, Event, and shared values and arrays, each between
// processes. Python reference: python/mp_synchronize.py; tests/test_samples.cpp
// runs both and compares their outputs.
//
// Where the port differs, and why:
//  - The queue carries Python's mixed items (ints, then the str 'STOP') as
//    mp::Object; print(o) is str(o), the text itself for a str.
//  - str(current_process()) in a child, <Process name='Process-3'
//    parent=1234 started>, is written out from current_process() and
//    parent_process(): mp's ProcessInfo has no repr of its own.
//  - stdout is line-buffered, as on a terminal, so that the lines of the
//    parent and of its children interleave in the order they happen (the
//    test runs Python with -u for the same reason).
//  - Only the "processes" mode: the "manager" and "threads" modes of the
//    original use a Manager namespace and multiprocessing.dummy.
#include <mp/mp.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

void sleep_seconds(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

// random.random() after random.seed(): each process its own generator.
double random_fraction() {
  thread_local std::mt19937 random(static_cast<unsigned>(::getpid()));
  return std::uniform_real_distribution<double>(0.0, 1.0)(random);
}

// str(multiprocessing.current_process()) in a child.
std::string current_process_repr() {
  return "<Process name='" + mp::current_process().name + "' parent=" + std::to_string(mp::parent_process()->pid) +
         " started>";
}

void start_all(std::vector<mp::Process>& processes) {
  for (mp::Process& p : processes) p.start();
}

void join_all(std::vector<mp::Process>& processes) {
  for (mp::Process& p : processes) p.join();
}

//// TEST_VALUE

void value_func(mp::Value<int>& running, mp::Lock& mutex) {
  sleep_seconds(random_fraction() * 4);

  std::lock_guard guard(mutex);
  std::printf("\n\t\t\t%s has finished\n", current_process_repr().c_str());
  running.value() -= 1;
}

void test_value() {
  const int tasks = 10;
  mp::Value<int> running(tasks);
  mp::Lock mutex;

  for (int i = 0; i < tasks; ++i) mp::Process(value_func, running, mutex).start();

  while (running.load() > 0) {
    sleep_seconds(0.08);
    std::lock_guard guard(mutex);
    std::printf("%d ", running.value());
    std::fflush(stdout);
  }

  std::printf("\nNo more running processes\n");
}

//// TEST_QUEUE

void queue_func(mp::Queue<mp::Object>& queue) {
  for (int i = 0; i < 30; ++i) {
    sleep_seconds(0.5 * random_fraction());
    queue.put(i * i);
  }
  queue.put("STOP");
}

void test_queue() {
  mp::Queue<mp::Object> q;

  mp::Process p(queue_func, q);
  p.start();

  mp::Object o;
  while (o != mp::Object("STOP")) {
    try {
      o = q.get(std::chrono::milliseconds(300));
      std::printf("%s ", o.type_name() == "str" ? o.as<std::string>().c_str() : o.repr().c_str());
      std::fflush(stdout);
    } catch (const mp::Empty&) {
      std::printf("TIMEOUT\n");
    }
  }

  std::printf("\n");
}

//// TEST_CONDITION

void condition_func(mp::Condition& cond) {
  cond.acquire();
  std::printf("\t%s\n", cond.repr().c_str());
  sleep_seconds(2);
  std::printf("\tchild is notifying\n");
  std::printf("\t%s\n", cond.repr().c_str());
  cond.notify();
  cond.release();
}

void test_condition() {
  mp::Condition cond;

  mp::Process p(condition_func, cond);
  std::printf("%s\n", cond.repr().c_str());

  cond.acquire();
  std::printf("%s\n", cond.repr().c_str());
  cond.acquire();
  std::printf("%s\n", cond.repr().c_str());

  p.start();

  std::printf("main is waiting\n");
  cond.wait();
  std::printf("main has woken up\n");

  std::printf("%s\n", cond.repr().c_str());
  cond.release();
  std::printf("%s\n", cond.repr().c_str());
  cond.release();

  p.join();
  std::printf("%s\n", cond.repr().c_str());
}

//// TEST_SEMAPHORE

void semaphore_func(mp::Semaphore& sema, mp::RLock& mutex, mp::Value<int>& running) {
  sema.acquire();

  mutex.acquire();
  running.value() += 1;
  std::printf("%d tasks are running\n", running.value());
  mutex.release();

  sleep_seconds(random_fraction() * 2);

  mutex.acquire();
  running.value() -= 1;
  std::printf("%s has finished\n", current_process_repr().c_str());
  mutex.release();

  sema.release();
}

void test_semaphore() {
  mp::Semaphore sema(3);
  mp::RLock mutex;
  mp::Value<int> running(0);

  std::vector<mp::Process> processes;
  for (int i = 0; i < 10; ++i) processes.emplace_back(semaphore_func, sema, mutex, running);

  start_all(processes);
  join_all(processes);
}

//// TEST_JOIN_TIMEOUT

void join_timeout_func() {
  std::printf("\tchild sleeping\n");
  sleep_seconds(5.5);
  std::printf("\n\tchild terminating\n");
}

void test_join_timeout() {
  mp::Process p(join_timeout_func);
  p.start();

  std::printf("waiting for process to finish\n");

  for (;;) {
    p.join(std::chrono::seconds(1));
    if (!p.is_alive()) break;
    std::printf(". ");
    std::fflush(stdout);
  }
}

//// TEST_EVENT

void event_func(mp::Event& event) {
  std::printf("\t%s is waiting\n", current_process_repr().c_str());
  event.wait();
  std::printf("\t%s has woken up\n", current_process_repr().c_str());
}

void test_event() {
  mp::Event event;

  std::vector<mp::Process> processes;
  for (int i = 0; i < 5; ++i) processes.emplace_back(event_func, event);

  start_all(processes);

  std::printf("main is sleeping\n");
  sleep_seconds(2);

  std::printf("main is setting event\n");
  event.set();

  join_all(processes);
}

//// TEST_SHAREDVALUES

struct Plain {
  int i = 10;
  short h = -2;
  double d = 1.25;
  std::vector<int> ints;
  std::vector<double> doubles;
  std::vector<unsigned short> shorts;
};

struct Shared {
  mp::Value<int> i;
  mp::Value<short> h;
  mp::Value<double> d;
  mp::Array<int> ints;
  mp::Array<double> doubles;
  mp::Array<unsigned short> shorts;
};

template <class T>
bool same(const std::vector<T>& plain, mp::Array<T>& shared) {
  return std::vector<T>(shared.span().begin(), shared.span().end()) == plain;
}

void sharedvalues_func(const Plain& plain, Shared& shared) {
  if (shared.i.load() != plain.i || shared.h.load() != plain.h || shared.d.load() != plain.d) std::exit(1);
  if (!same(plain.ints, shared.ints) || !same(plain.doubles, shared.doubles) || !same(plain.shorts, shared.shorts))
    std::exit(1);

  std::printf("Tests passed\n");
}

void test_sharedvalues() {
  Plain plain;
  for (int i = 0; i < 100; ++i) plain.ints.push_back(i);
  for (int i = 0; i < 100; ++i) plain.doubles.push_back(0.25 * i);
  for (int i = 0; i < 1000; ++i) plain.shorts.push_back(static_cast<unsigned short>(i));

  Shared shared{mp::Value<int>(plain.i),          mp::Value<short>(plain.h),
                mp::Value<double>(plain.d),       mp::Array<int>(plain.ints),
                mp::Array<double>(plain.doubles), mp::Array<unsigned short>(plain.shorts)};

  mp::Process p(sharedvalues_func, plain, shared);
  p.start();
  p.join();

  if (p.exitcode() != 0) std::exit(1);
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("------------------------------- Using processes -------------------------------\n");

  const std::pair<const char*, void (*)()> tests[] = {
      {"test_value", test_value},         {"test_queue", test_queue}, {"test_condition", test_condition},
      {"test_semaphore", test_semaphore}, {"test_join_timeout", test_join_timeout},
      {"test_event", test_event},         {"test_sharedvalues", test_sharedvalues}};
  for (const auto& [name, test] : tests) {
    std::printf("\n\t######## %s\n\n", name);
    test();
  }

  mp::active_children();  // clean up any old processes
}
