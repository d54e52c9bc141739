// mp/process.hpp: Process, current_process, parent_process, active_children,
// cpu_count, exit (Python: multiprocessing.Process and friends).
#pragma once

#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mp/detail/deadline.hpp"
#include "mp/detail/repr.hpp"
#include "mp/errors.hpp"

namespace mp {

struct ProcessOptions {
  std::string name;            // empty: Process-N, as Python
  std::optional<bool> daemon;  // empty: inherit the creating process's flag
};

struct ProcessInfo {
  std::string name;
  int pid;
  bool daemon;
};

namespace detail {
struct Child;
}

// Process (Python: multiprocessing.Process with the fork start method)
//
// start() forks; the child runs run() (by default the target with its
// arguments, a capturing lambda included: the child inherits everything as it
// is at start()) and exits: 0 on return, n for std::exit(n) or mp::exit(n), 1
// after printing "Process <name>:" and the exception for an uncaught
// exception, -N when killed by signal N.
//
// Lifetime, as Python: destroying a started Process whose child still runs
// neither waits nor kills. The child goes on, stays in active_children(), and
// mp reaps it as soon as it ends (one reaper thread per process, started at
// the first such destruction; see lib/process.cpp), so
// `mp::Process(worker, queue).start();` on a temporary works. At the normal
// exit of the creating process (return from main, std::exit) mp does what
// Python's exit handler does: it terminates the remaining daemonic children
// and joins the others; an mp child does the same for its own children when
// it ends, except through mp::exit (Python's os._exit).
//
// Differs from Python: the child never runs the parent's atexit handlers or
// static destructors registered before its first start(), even through
// std::exit (mp's own handler, registered once in the parent then, ends the
// child first; nothing is registered in the child, which takes no lock after
// fork); a daemonic child still running 2 s after the exit-time SIGTERM gets
// SIGKILL; reaping is deterministic (join, is_alive, exitcode,
// active_children, and the reaper thread for destroyed Processes; Python
// leaves zombies until its next start()); the sentinel is a pidfd.
// A child reaped by someone else (SIGCHLD ignored, waitpid(-1) elsewhere)
// counts as ended with an unknown code: join returns, exitcode() stays
// nullopt (Python: None), is_alive() is false (Python would say True).
// In a process forked otherwise than by start() (a raw fork(), a pool
// worker), an inherited Process is not its child: join() and is_alive()
// throw ProcessError as Python's assertions do, exitcode() is nullopt,
// active_children() and the exit-time joining leave it to its starter.
// Blocking: join() waits for the child, join(timeout) at most timeout on the
// monotonic clock; signals never interrupt them.
// Peer death: the child's death is seen through sentinel(), join and
// is_alive; a child whose parent dies goes on (use ProcessOptions elsewhere,
// or parent_process() to check).
// repr() (and operator<<) is Python's: <Process name='Process-1' pid=1234
// parent=1200 started>, then "stopped exitcode=0" (or exitcode=-SIGTERM),
// "initial" before start(), "closed" after close(), "unknown" in another
// process than the starting one, " daemon" at the end for a daemon; a
// subclass shows its own class name. Like Python's, it reaps an ended child
// (as is_alive() does). A child reaped by someone else shows "stopped" and no
// exit code (Python: "started").
class Process {
 public:
  Process();
  template <class F, class... Args>
    requires(!std::same_as<std::decay_t<F>, ProcessOptions>)
  explicit Process(F&& target, Args&&... args)
      : Process(ProcessOptions{}, std::forward<F>(target), std::forward<Args>(args)...) {}
  template <class F, class... Args>
  Process(ProcessOptions options, F&& target, Args&&... args)
      : Process(std::move(options)) {
    target_ = [target = std::forward<F>(target),
               arguments = std::make_tuple(std::forward<Args>(args)...)]() mutable {
      std::apply(target, arguments);
    };
  }
  explicit Process(ProcessOptions options);
  virtual ~Process();
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;

  virtual void run();
  void start();
  void join();
  template <class Rep, class Per>
  void join(std::chrono::duration<Rep, Per> timeout) {
    join_until(detail::Deadline::after(timeout));
  }
  bool is_alive();
  void terminate();
  void kill();
  void close();
  std::optional<int> exitcode();
  std::optional<int> pid() const;
  const std::string& name() const;
  bool daemon() const;
  int sentinel() const;
  std::string repr() const;

 private:
  void join_until(detail::Deadline deadline);
  void require_open(const char* method) const;
  void require_ours(const char* method, const char* verb) const;
  void release() noexcept;

  std::string identity_;  // Python's _identity: "1", then "1:1" for its children, ...
  std::string name_;
  bool daemon_;
  bool closed_ = false;
  std::function<void()> target_;
  std::shared_ptr<detail::Child> child_;
};

ProcessInfo current_process();
std::optional<ProcessInfo> parent_process();
std::vector<int> active_children();
int cpu_count();
[[noreturn]] void exit(int code);

}  // namespace mp
