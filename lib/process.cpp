#include "mp/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <new>

#include "mp/detail/archive.hpp"
#include "mp/detail/fd.hpp"
#include "mp/detail/syscall.hpp"

namespace mp {
using detail::check;
namespace detail {

// A started child, shared between its Process and the registry of live
// children (active_children, exit-time joining).
struct Child {
  pid_t pid = -1;
  FileDescriptor sentinel;  // a pidfd, readable once the child has exited
  std::string name;
  bool daemon = false;

  std::optional<int> exitcode() const {
    std::lock_guard lock(mutex_);
    return exitcode_;
  }

  // Reaps the child if it has exited; with `block`, waits for it. Threads may
  // reap at once (join in one, active_children or is_alive in another): the
  // first waitpid wins and the others see its result, never ECHILD.
  bool reap(bool block) {
    if (block && sentinel.get() >= 0) {
      // Wait outside the lock, so that the others can still poll meanwhile.
      pollfd exited{sentinel.get(), POLLIN, 0};
      retry("poll", [&] { return ::poll(&exited, 1, -1); });
    }
    std::lock_guard lock(mutex_);
    if (exitcode_) return true;
    int status = 0;
    pid_t got = check("waitpid", [&] { return ::waitpid(pid, &status, block ? 0 : WNOHANG); },
                      "Process(" + name + ")");
    if (got == 0) return false;
    exitcode_ = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    return true;
  }

  void signal(int signal_number) {
    if (exitcode()) return;  // reaped: the pid may belong to someone else now
    // Through the pidfd, a signal can never reach a recycled pid.
    long rc = retry("pidfd_send_signal", [&] {
      return ::syscall(SYS_pidfd_send_signal, sentinel.get(), signal_number, nullptr, 0);
    });
    if (rc == -1 && errno != ESRCH) throw_os_error("pidfd_send_signal", errno, "Process(" + name + ")");
  }

 private:
  mutable std::mutex mutex_;
  std::optional<int> exitcode_;
};

}  // namespace detail

namespace {

// Who this process is, in Python's terms. Reset in every child.
struct Identity {
  std::string name = "MainProcess";
  bool daemon = false;
  std::optional<ProcessInfo> parent;
  std::string identity;  // "" in the main process, "1", "1:2", ...
  int next_child = 1;
};

Identity& identity() {
  static Identity value;
  return value;
}

// Live children of this process. Its mutex is never taken by a child after
// fork: the child rebuilds the registry instead (another thread of the parent
// may have held the lock at the moment of the fork).
struct Registry {
  std::mutex mutex;
  std::vector<std::shared_ptr<detail::Child>> children;
};

Registry* registry_storage = nullptr;
Registry& registry() {
  static Registry* instance = registry_storage = new Registry();
  return *instance;
}

void forget(const std::shared_ptr<detail::Child>& child) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::erase(r.children, child);
}

void flush_stdio() noexcept {
  try {
    std::cout.flush();
    std::cerr.flush();
    std::clog.flush();
  } catch (...) {
  }
  std::fflush(nullptr);
}

// Runs first among the child's exit handlers (it is registered last), so
// std::exit(n) in a child flushes and ends with n without running what the
// parent registered.
void child_exit_handler(int status, void*) { exit(status); }

// Python terminates daemonic children and joins the others at exit.
void join_children_at_exit() {
  std::vector<std::shared_ptr<detail::Child>> children;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    children = r.children;
  }
  for (auto& child : children)
    if (child->daemon) child->signal(SIGTERM);
  for (auto& child : children) child->reap(true);
}

int open_pidfd(pid_t pid, const std::string& name) {
  return static_cast<int>(check("pidfd_open", [&] { return ::syscall(SYS_pidfd_open, pid, 0); },
                                "Process(" + name + ")"));
}

}  // namespace

Process::Process() : Process(ProcessOptions{}) {}

Process::Process(ProcessOptions options)
    : daemon_(options.daemon.value_or(identity().daemon)) {
  Identity& me = identity();
  identity_ = (me.identity.empty() ? "" : me.identity + ":") + std::to_string(me.next_child++);
  name_ = options.name.empty() ? "Process-" + identity_ : std::move(options.name);
}

Process::~Process() { finish(); }

void Process::finish() noexcept {
  if (!child_ || child_->exitcode()) return;
  try {
    if (daemon_) {
      child_->signal(SIGTERM);
      join_until(detail::Deadline::after(std::chrono::seconds(2)));
      child_->signal(SIGKILL);
    }
    child_->reap(true);
    forget(child_);
  } catch (...) {
  }
}

Process::Process(Process&&) noexcept = default;

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    finish();
    identity_ = std::move(other.identity_);
    name_ = std::move(other.name_);
    daemon_ = other.daemon_;
    closed_ = other.closed_;
    target_ = std::move(other.target_);
    child_ = std::move(other.child_);
  }
  return *this;
}

void Process::run() {
  if (target_) target_();
}

void Process::require_open(const char* method) const {
  if (closed_) throw ValueError(std::string("Process.") + method + ": process object is closed (" + name_ + ")");
}

void Process::start() {
  require_open("start");
  if (child_) throw ProcessError("Process.start: cannot start a process twice (" + name_ + ")");
  if (identity().daemon)
    throw ProcessError("Process.start: daemonic processes are not allowed to have children (" + name_ + ")");
  static const bool joins_at_exit = (std::atexit(join_children_at_exit), true);
  (void)joins_at_exit;
  flush_stdio();  // or what the parent buffered would be printed twice
  const pid_t parent = ::getpid();
  pid_t pid = check("fork", [] { return ::fork(); }, "Process.start(" + name_ + ")");
  if (pid == 0) {
    Identity& me = identity();
    me.parent = ProcessInfo{me.name, parent, me.daemon};
    me.identity = identity_;
    me.name = name_;
    me.daemon = daemon_;
    me.next_child = 1;
    if (registry_storage) registry_storage = new (registry_storage) Registry();
    ::on_exit(child_exit_handler, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::close(devnull);
    }
    int code = 0;
    try {
      run();
    } catch (const std::exception& e) {
      flush_stdio();
      std::fprintf(stderr, "Process %s:\n%s: %s\n", name_.c_str(),
                   detail::demangle(typeid(e).name()).c_str(), e.what());
      code = 1;
    } catch (...) {
      flush_stdio();
      std::fprintf(stderr, "Process %s:\nan exception that is not a std::exception\n", name_.c_str());
      code = 1;
    }
    exit(code);
  }
  auto child = std::make_shared<detail::Child>();
  child->pid = pid;
  child->name = name_;
  child->daemon = daemon_;
  try {
    child->sentinel.reset(open_pidfd(pid, name_));
  } catch (...) {
    // Without a sentinel the child could not be watched: take it back.
    ::kill(pid, SIGKILL);
    child->reap(true);
    throw;
  }
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    r.children.push_back(child);
  }
  child_ = std::move(child);
  target_ = nullptr;  // as Python: the parent drops the target and its arguments
}

void Process::join() { join_until(detail::Deadline::never()); }

void Process::join_until(detail::Deadline deadline) {
  require_open("join");
  if (!child_) throw ProcessError("Process.join: can only join a started process (" + name_ + ")");
  if (child_->exitcode()) return;
  pollfd exited{child_->sentinel.get(), POLLIN, 0};
  int ready = check("poll", [&] { return ::poll(&exited, 1, deadline.poll_milliseconds()); },
                    "Process.join(" + name_ + ")");
  if (ready > 0 && child_->reap(true)) forget(child_);
}

bool Process::is_alive() {
  require_open("is_alive");
  if (!child_) return false;
  if (child_->reap(false)) {
    forget(child_);
    return false;
  }
  return true;
}

void Process::terminate() {
  require_open("terminate");
  if (child_) child_->signal(SIGTERM);
}

void Process::kill() {
  require_open("kill");
  if (child_) child_->signal(SIGKILL);
}

void Process::close() {
  if (closed_) return;
  if (child_ && !child_->exitcode() && !child_->reap(false))
    throw ValueError("Process.close: cannot close a process while it is still running; call join() or terminate() first (" + name_ + ")");
  if (child_) forget(child_);
  child_.reset();
  closed_ = true;
}

std::optional<int> Process::exitcode() {
  require_open("exitcode");
  if (!child_) return std::nullopt;
  if (child_->reap(false)) forget(child_);
  return child_->exitcode();
}

std::optional<int> Process::pid() const {
  require_open("pid");
  if (!child_) return std::nullopt;
  return child_->pid;
}

const std::string& Process::name() const { return name_; }

bool Process::daemon() const { return daemon_; }

int Process::sentinel() const {
  require_open("sentinel");
  if (!child_) throw ValueError("Process.sentinel: process not started (" + name_ + ")");
  return child_->sentinel.get();
}

ProcessInfo current_process() {
  const Identity& me = identity();
  return ProcessInfo{me.name, static_cast<int>(::getpid()), me.daemon};
}

std::optional<ProcessInfo> parent_process() { return identity().parent; }

std::vector<int> active_children() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<int> pids;
  std::erase_if(r.children, [&](const std::shared_ptr<detail::Child>& child) {
    if (child->reap(false)) return true;
    pids.push_back(child->pid);
    return false;
  });
  return pids;
}

int cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
}

void exit(int code) {
  // Flushing into a closed pipe must fail quietly, not end us by SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  flush_stdio();
  ::_exit(code);
}

}  // namespace mp
