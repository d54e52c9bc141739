// Child program for test_process: behaviours that only show at a process's
// own exit or in its stdio, selected by argv[1].
//   stdio        : buffered output before start() must appear once
//   atexit       : the parent's atexit handler and static destructors must not
//                  run in a child that calls std::exit(3)
//   leak         : leaked Process objects; at exit the daemon child is
//                  terminated and the non-daemon child joined
//   scoped       : Process objects destroyed in main while their children
//                  run; main returns before the non-daemon worker's output,
//                  the exit joins it (its output complete) and terminates
//                  the daemon child
//   ignoring-daemon: a daemon child, its Process destroyed, ignores SIGTERM;
//                  the exit-time join must SIGKILL it after the grace period
//   closed-stdout: a child writing into a closed stdout pipe exits with 5
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "mp/process.hpp"

// Never destroyed, like handles a program forgets; reachable from these
// globals (external linkage, so the stores are kept), so that LeakSanitizer
// in the ASan build does not count them as leaks.
mp::Process* leaked_daemon = nullptr;
mp::Process* leaked_worker = nullptr;

namespace {

struct StaticWitness {
  ~StaticWitness() { std::printf("static destructor in %d\n", static_cast<int>(::getpid())); }
} static_witness;

void parent_atexit() { std::printf("atexit in %d\n", static_cast<int>(::getpid())); }

int stdio() {
  std::printf("before start\n");  // buffered: stdout is a pipe
  mp::Process child([] { std::printf("in child\n"); });
  child.start();
  child.join(std::chrono::seconds(30));
  std::printf("child exit %d\n", child.exitcode().value_or(-100));
  return 0;
}

int atexit_not_inherited() {
  std::atexit(parent_atexit);
  std::printf("main is %d\n", static_cast<int>(::getpid()));
  mp::Process child([] { std::exit(3); });
  child.start();
  child.join(std::chrono::seconds(30));
  std::printf("child exit %d\n", child.exitcode().value_or(-100));
  return 0;
}

int leak() {
  auto* daemon = leaked_daemon = new mp::Process(mp::ProcessOptions{.name = "", .daemon = true}, [] {
    std::this_thread::sleep_for(std::chrono::seconds(60));
  });
  auto* worker = leaked_worker = new mp::Process([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::printf("worker done\n");
  });
  daemon->start();
  worker->start();
  std::printf("pids %d %d\n", *daemon->pid(), *worker->pid());
  std::fflush(stdout);
  return 0;
}

int scoped() {
  {
    mp::Process daemon(mp::ProcessOptions{.name = "", .daemon = true},
                       [] { std::this_thread::sleep_for(std::chrono::seconds(60)); });
    mp::Process worker([] {
      for (int line = 1; line <= 3; ++line) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::printf("worker %d\n", line);
        std::fflush(stdout);
      }
      std::printf("worker done\n");
    });
    daemon.start();
    worker.start();
    std::printf("pids %d %d\n", *daemon.pid(), *worker.pid());
  }
  std::printf("main returns\n");
  std::fflush(stdout);
  return 0;
}

int ignoring_daemon() {
  mp::Process daemon(mp::ProcessOptions{.name = "", .daemon = true}, [] {
    ::signal(SIGTERM, SIG_IGN);
    std::this_thread::sleep_for(std::chrono::seconds(100));
  });
  daemon.start();
  std::printf("pid %d\n", *daemon.pid());
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // SIGTERM is ignored by then
  return 0;
}

int closed_stdout() {
  int fds[2];
  if (::pipe(fds) != 0) return 90;
  int saved_stdout = ::dup(1);
  ::close(fds[0]);
  ::dup2(fds[1], 1);
  ::close(fds[1]);
  mp::Process child([] {
    std::printf("into a closed pipe\n");
    std::exit(5);
  });
  child.start();
  child.join(std::chrono::seconds(30));
  std::fprintf(stderr, "child exit %d\n", child.exitcode().value_or(-100));
  // Our own exit prints (the static witness): not into the closed pipe.
  ::dup2(saved_stdout, 1);
  ::close(saved_stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string mode = argv[1];
  if (mode == "stdio") return stdio();
  if (mode == "atexit") return atexit_not_inherited();
  if (mode == "leak") return leak();
  if (mode == "scoped") return scoped();
  if (mode == "ignoring-daemon") return ignoring_daemon();
  if (mode == "closed-stdout") return closed_stdout();
  return 2;
}
