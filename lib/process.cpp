// lib/process.cpp: Process, current_process, parent_process,
// active_children, cpu_count, exit.
// Invariants:
//  - every started child is in its creator's registry until it is reaped;
//    a pid is waited for only through Child::reap, under the Child's mutex,
//    and signalled only through its pidfd, so a recycled pid is never touched;
//  - destroying a Process neither waits nor kills (Python): a running child is
//    handed to the process's reaper thread, started at the first such
//    destruction, and stays registered until it ends;
//  - at the normal exit of a process (the main one through atexit, an mp
//    child after run() or through std::exit) the daemonic children still
//    registered get SIGTERM, SIGKILL after 2 s, and all are joined;
//  - a child takes no lock another thread of the parent may have held at
//    fork: its State (identity, registry, reaper) is built before fork.
#include "mp/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <mutex>
#include <string_view>
#include <thread>
#include <typeinfo>

#if __has_include(<ext/stdio_sync_filebuf.h>)
#include <ext/stdio_sync_filebuf.h>
#endif

#include "mp/detail/archive.hpp"
#include "mp/detail/fd.hpp"
#include "mp/detail/identity.hpp"
#include "mp/detail/syscall.hpp"

namespace mp {
namespace detail {

// A started child, shared between its Process and the registry of live
// children (active_children, exit-time joining).
struct Child {
  pid_t pid = -1;
  pid_t parent_pid = -1;    // the process that started it
  FileDescriptor sentinel;  // a pidfd, readable once the child has exited
  std::string name;
  bool daemon = false;

  // Whether this process started the child. A process forked some other way
  // (a raw fork(), a pool worker) inherits its parent's Process objects and
  // registry, pidfds included: it may signal the child, as Python allows, but
  // only the starter can wait for it, and only the starter's exit may stop or
  // join it.
  bool ours() const { return parent_pid == current_pid(); }

  std::optional<int> exitcode() const {
    std::lock_guard lock(mutex_);
    return exitcode_;
  }

  // Reaped, by us or (exit code unknown) by someone else.
  bool reaped() const {
    std::lock_guard lock(mutex_);
    return exitcode_ || reaped_elsewhere_;
  }

  // Whether the child has exited by `deadline` (it may still need reaping).
  bool exited_by(Deadline deadline) const {
    pollfd exited{sentinel.get(), POLLIN, 0};
    return check_described("poll", [&] { return ::poll(&exited, 1, deadline.poll_milliseconds()); },
                           [&] { return "Process(" + name + ")"; }) > 0;
  }

  enum class Wait {
    no,      // reap only if the child has exited
    yes,     // wait for the child to exit
    polled,  // the caller saw the sentinel readable: the child has exited
  };

  // Reaps the child if it has exited; unless Wait::no, waits for it. Threads
  // may reap at once (join in one, active_children or is_alive in another):
  // the first waitpid wins and the others see its result, never ECHILD.
  //
  // ECHILD means someone else reaped it (SIGCHLD set to SIG_IGN, a
  // waitpid(-1) elsewhere): as Python's Popen.poll, which returns None then,
  // the child counts as gone with an unknown exit code.
  bool reap(Wait wait) {
    // Wait outside the lock, so that the others can still poll meanwhile.
    if (wait == Wait::yes && sentinel.get() >= 0) exited_by(Deadline::never());
    std::lock_guard lock(mutex_);
    if (exitcode_ || reaped_elsewhere_) return true;
    int status = 0;
    // Blocking even after a readable sentinel: under a tracer (strace -f) the
    // exited child becomes waitable for us only once the tracer has seen it.
    pid_t got = retry("waitpid", [&] { return ::waitpid(pid, &status, wait == Wait::no ? WNOHANG : 0); });
    if (got == -1) {
      if (errno != ECHILD) throw_os_error("waitpid", errno, "Process(" + name + ")");
      reaped_elsewhere_ = true;
      return true;
    }
    if (got == 0) return false;
    exitcode_ = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    return true;
  }

  // Opens the sentinel; false (errno set) if that failed while the child was
  // still ours, mp::OSError if it failed once the child was gone. Opened after fork, not by clone3(CLONE_PIDFD): a raw clone3
  // would skip glibc's fork (atfork handlers, the child's reset of malloc and
  // stdio locks, the cached thread id that raise() and recursive mutexes
  // use). The gap is safe: until we reap the child, its pid stays a zombie's
  // and cannot be reused. Only a reaper other than mp (SIGCHLD ignored, a
  // foreign waitpid(-1)) can free it in between; pidfd_open then fails with
  // ESRCH, the child is gone with its exit code unknown, as after ECHILD, and
  // its pid is never signalled: it may be someone else's by now. Its
  // sentinel is then a pipe at end of file, readable at once.
  bool watch() {
    long pidfd = retry("pidfd_open", [&] { return ::syscall(SYS_pidfd_open, pid, 0); });
    if (pidfd >= 0) {
      sentinel.reset(static_cast<int>(pidfd));
      return true;
    }
    if (errno != ESRCH) return false;
    int ends[2];
    check_described("pipe2", [&] { return ::pipe2(ends, O_CLOEXEC); }, [&] { return "Process(" + name + ")"; });
    ::close(ends[1]);
    sentinel.reset(ends[0]);
    std::lock_guard lock(mutex_);
    reaped_elsewhere_ = true;
    return true;
  }

  void signal(int signal_number) {
    if (reaped()) return;  // the pid may belong to someone else now
    // Through the pidfd, a signal can never reach a recycled pid.
    long rc = retry("pidfd_send_signal", [&] {
      return ::syscall(SYS_pidfd_send_signal, sentinel.get(), signal_number, nullptr, 0);
    });
    if (rc == -1 && errno != ESRCH) throw_os_error("pidfd_send_signal", errno, "Process(" + name + ")");
  }

 private:
  mutable std::mutex mutex_;
  std::optional<int> exitcode_;
  bool reaped_elsewhere_ = false;
};

}  // namespace detail

namespace {

using Wait = detail::Child::Wait;

// Who this process is, in Python's terms.
struct Identity {
  std::string name = "MainProcess";
  bool daemon = false;
  std::optional<ProcessInfo> parent;
  std::string identity;  // "" in the main process, "1", "1:2", ...
  // Counted up by every thread that creates a Process (the pool's result
  // thread included); only uniqueness matters, hence relaxed.
  std::atomic<int> next_child{1};
};

// Live children of this process.
struct Registry {
  std::mutex mutex;
  std::vector<std::shared_ptr<detail::Child>> children;
  // Set by start() after its push; lets a child that started
  // nothing end without taking the mutex, a write to a page it still shares
  // copy-on-write with its parent. The vector itself is read under the mutex.
  std::atomic<bool> ever_started{false};
};

// Children whose Process was destroyed while they ran (Python keeps them in
// active_children). One thread per process, started at the first adoption,
// polls their sentinels (and an eventfd that announces newcomers) and reaps
// each as it ends, through Child::reap, so that its pid is never waited for
// twice. A program that joins its Processes never starts it.
//
// Fork safety: the thread takes only this mutex and the Child's and the
// registry's, all of this process's State; a forked child gets a fresh State
// (its own Orphanage, no thread until it orphans a child of its own), so no
// lock the thread held at fork is ever taken in the child. It stays apart
// from the Popen reaper in subprocess.cpp, which only needs waitpid, because
// these children must keep their exit code and their place in the registry.
struct Orphanage {
  std::mutex mutex;
  detail::FileDescriptor wake;  // the thread runs once this is open
  std::vector<std::shared_ptr<detail::Child>> children;
};

// Everything a process knows of itself, fresh in every child. The parent
// builds the child's State before fork; the child only points `current` at
// it. Resetting the fields in the child instead would write to pages it
// shares copy-on-write with the parent (a page fault each) and allocate there,
// and the registry's mutex could be held by another thread of the parent at
// the moment of fork.
struct State {
  Identity identity;
  Registry registry;
  Orphanage orphans;
};

State* current = nullptr;  // a child's State; null in the main process

State& state() {
  if (current) return *current;
  // Never destroyed: exit-time joining and static Process objects' destructors
  // still use it.
  static State* const main_process = new State();
  return *main_process;
}

Identity& identity() { return state().identity; }
Registry& registry() { return state().registry; }

void forget(const std::shared_ptr<detail::Child>& child) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::erase(r.children, child);
}

// The reaper thread of `self`'s Orphanage; runs until the process ends.
void reap_orphans(State& self) noexcept {
  Orphanage& orphans = self.orphans;
  std::vector<pollfd> watched;
  for (;;) {
    try {
      {
        std::lock_guard lock(orphans.mutex);
        watched.assign(1, pollfd{orphans.wake.get(), POLLIN, 0});
        for (const auto& child : orphans.children) watched.push_back({child->sentinel.get(), POLLIN, 0});
      }
      if (detail::retry("poll", [&] { return ::poll(watched.data(), watched.size(), -1); }) < 0) {
        // ENOMEM, or more children than RLIMIT_NOFILE allows to poll: do not spin.
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      std::uint64_t newcomers;
      detail::retry("read", [&] { return ::read(orphans.wake.get(), &newcomers, sizeof newcomers); });
      // Only this thread removes orphans; adopt() appends. So watched[i + 1]
      // is still orphans.children[i], and the poll above says who ended.
      std::vector<std::shared_ptr<detail::Child>> ended;
      {
        std::lock_guard lock(orphans.mutex);
        for (std::size_t i = watched.size() - 1; i >= 1; --i) {
          if (watched[i].revents == 0) continue;
          ended.push_back(orphans.children[i - 1]);
          orphans.children.erase(orphans.children.begin() + static_cast<std::ptrdiff_t>(i - 1));
        }
      }
      for (const auto& child : ended) {
        // Dropped from the registry even if waitpid failed: poll() would
        // report it again and again. Exit-time joining then skips it.
        try {
          child->reap(Wait::polled);
        } catch (...) {
        }
        Registry& r = self.registry;
        std::lock_guard lock(r.mutex);
        std::erase(r.children, child);
      }
    } catch (...) {
      // poll or read failing on our own descriptors: try again.
    }
  }
}

// Hands a running child over to the reaper thread. Without an eventfd or a
// thread it stays in the registry only, reaped by active_children() or at exit.
void adopt(std::shared_ptr<detail::Child> child) noexcept {
  State& self = state();
  Orphanage& orphans = self.orphans;
  try {
    std::lock_guard lock(orphans.mutex);
    if (orphans.wake.get() < 0) {
      detail::FileDescriptor wake(detail::check_described(
          "eventfd", [] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }, [] { return std::string("Process reaper"); }));
      std::thread([&self] { reap_orphans(self); }).detach();
      orphans.wake = std::move(wake);
    }
    orphans.children.push_back(std::move(child));
    std::uint64_t one = 1;
    detail::retry("write", [&] { return ::write(orphans.wake.get(), &one, sizeof one); });
  } catch (...) {
  }
}

// Whether `stream` may buffer output that std::fflush(nullptr) does not
// flush. Synced with stdio (the default), libstdc++'s standard streams hand
// every character to the C stream at once through a stdio_sync_filebuf;
// flushing them too would only run more code, and in a child every page of it
// not yet run there is a page fault.
bool buffers_apart_from_stdio(const std::ostream& stream) {
  const std::streambuf* buffer = stream.rdbuf();
  if (!buffer) return false;
#if __has_include(<ext/stdio_sync_filebuf.h>)
  if (typeid(*buffer) == typeid(__gnu_cxx::stdio_sync_filebuf<char>)) return false;
#endif
  return true;
}

void flush_stdio() noexcept {
  try {
    for (std::ostream* stream : {&std::cout, &std::cerr, &std::clog})
      if (buffers_apart_from_stdio(*stream)) stream->flush();
  } catch (...) {
  }
  std::fflush(nullptr);
}

// mp::exit. The child calls it here rather than through the exported symbol,
// a call the dynamic linker would bind lazily in every child anew.
[[noreturn]] void exit_process(int code) {
  // Flushing into a closed pipe must fail quietly, not end us by SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  flush_stdio();
  ::_exit(code);
}

// How long a daemonic child has between SIGTERM and SIGKILL.
constexpr auto kDaemonGrace = std::chrono::seconds(2);

// SIGTERM to each daemonic child, then SIGKILL to those still running after
// one shared grace period (a child may ignore SIGTERM); does not reap.
void stop_daemons(const std::vector<std::shared_ptr<detail::Child>>& children) {
  for (auto& child : children)
    if (child->daemon) child->signal(SIGTERM);
  auto deadline = detail::Deadline::after(kDaemonGrace);
  for (auto& child : children)
    if (child->daemon && !child->exited_by(deadline)) child->signal(SIGKILL);
}

// Python's exit function (util._exit_function): terminates the daemonic
// children and joins the others, the ones whose Process was destroyed while
// they ran included. Runs at the main process's normal exit (an atexit
// handler) and at every mp child's end (after run() or std::exit), for that
// child's own children; mp::exit, as os._exit, skips it.
void join_children_at_exit() noexcept {
  Registry& r = registry();
  if (!r.ever_started.load(std::memory_order_acquire)) return;
  std::vector<std::shared_ptr<detail::Child>> children;
  {
    std::lock_guard lock(r.mutex);
    std::ranges::copy_if(r.children, std::back_inserter(children),
                         [](const std::shared_ptr<detail::Child>& child) { return child->ours(); });
  }
  if (children.empty()) return;
  try {
    stop_daemons(children);
    for (auto& child : children) child->reap(Wait::yes);
  } catch (...) {
    // An exit handler must not throw; what is left is reaped by init.
  }
}

// Registered once, in the parent, at its first start(), after the parent's
// own earlier handlers: in a child it runs before them, so std::exit(n) there
// joins the child's own children, flushes and ends with n without running
// them. In the parent it does nothing. Registering it in the child instead
// would take glibc's exit-function lock, which another thread of the parent
// may have held at fork (atexit, the first use of a function-local static,
// exit): the child would hang for ever.
void child_exit_handler(int status, void*) {
  if (!current) return;
  join_children_at_exit();
  exit_process(status);
}

bool is_null_device(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

// /dev/null for the children's stdin, opened once: a child then only dup2()s
// it, where opening the path would cost every child a path walk and a new open
// file. The program may since have closed the descriptor or reused its number
// (daemons close them all), so every use checks it and opens /dev/null again
// if need be; the old number is no longer ours then. -1 if /dev/null cannot be
// opened: the child keeps the parent's stdin.
int dev_null() {
  static std::atomic<int> kept{-1};
  int fd = kept.load(std::memory_order_relaxed);
  if (fd >= 0 && is_null_device(fd)) return fd;
  int fresh = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fresh >= 0 && fresh <= 2) {
    // Not in place of a standard stream the program has closed: dup2() onto
    // itself would leave the child's stdin close-on-exec.
    int high = ::fcntl(fresh, F_DUPFD_CLOEXEC, 3);
    ::close(fresh);
    fresh = high;
  }
  if (fresh < 0) return -1;
  if (!is_null_device(fresh)) {
    ::close(fresh);
    return -1;
  }
  // Another thread may have opened one meanwhile: keep the first.
  if (!kept.compare_exchange_strong(fd, fresh, std::memory_order_relaxed)) {
    ::close(fresh);
    return fd;
  }
  return fresh;
}

}  // namespace

Process::Process() : Process(ProcessOptions{}) {}

Process::Process(ProcessOptions options)
    : daemon_(options.daemon.value_or(identity().daemon)) {
  Identity& me = identity();
  identity_ = (me.identity.empty() ? "" : me.identity + ":") + std::to_string(me.next_child++);
  name_ = options.name.empty() ? "Process-" + identity_ : std::move(options.name);
}

Process::~Process() { release(); }

// As Python, neither waits nor kills: a child still running goes on, in
// active_children(), and the reaper thread reaps it when it ends.
void Process::release() noexcept {
  if (!child_) return;
  if (!child_->ours()) {  // the starter reaps it
    child_.reset();
    return;
  }
  try {
    if (child_->reap(Wait::no)) {
      forget(child_);
      return;
    }
  } catch (...) {
  }
  adopt(std::move(child_));
}

Process::Process(Process&&) noexcept = default;

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    release();
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

// Python's assertions in join() and is_alive(): "can only join a child
// process", "can only test a child process".
void Process::require_ours(const char* method, const char* verb) const {
  if (!child_->ours())
    throw ProcessError(std::string("Process.") + method + ": can only " + verb + " a child process, and " +
                       name_ + " was started by process " + std::to_string(child_->parent_pid) + ", not by this one (" +
                       std::to_string(detail::current_pid()) + ")");
}

void Process::start() {
  require_open("start");
  if (child_) throw ProcessError("Process.start: cannot start a process twice (" + name_ + ")");
  if (identity().daemon)
    throw ProcessError("Process.start: daemonic processes are not allowed to have children (" + name_ + ")");
  static const bool exit_handlers_registered =
      (std::atexit(join_children_at_exit), ::on_exit(child_exit_handler, nullptr), true);
  (void)exit_handlers_registered;
  // Both sides are prepared before fork: afterwards, every page the parent
  // writes while the child still shares it is copied first.
  const Identity& me = identity();
  std::unique_ptr<State> child_state(new State{
      .identity = {.name = name_,
                   .daemon = daemon_,
                   .parent = ProcessInfo{me.name, detail::current_pid(), me.daemon},
                   .identity = identity_},
      .registry = {},
      .orphans = {}});
  auto child = std::make_shared<detail::Child>();
  child->name = name_;
  child->daemon = daemon_;
  const int stdin_replacement = dev_null();
  flush_stdio();  // or what the parent buffered would be printed twice
  pid_t pid = detail::check_described("fork", [] { return ::fork(); },
                                      [&] { return "Process.start(" + name_ + ")"; });
  if (pid == 0) {
    // Nothing here may take a lock another thread of the parent could have
    // held at fork: glibc resets malloc's and stdio's locks in the child, not
    // the exit-function lock (see child_exit_handler).
    current = child_state.release();  // for good, as the main process's
    if (stdin_replacement >= 0) ::dup2(stdin_replacement, 0);  // as Python
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
    join_children_at_exit();
    exit_process(code);
  }
  child->pid = pid;
  child->parent_pid = detail::current_pid();
  if (!child->watch()) {
    // Without a sentinel the child could not be watched: take it back.
    ::kill(pid, SIGKILL);
    child->reap(Wait::yes);
    detail::throw_os_error("pidfd_open", errno, "Process(" + name_ + ")");
  }
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    r.children.push_back(child);
    r.ever_started.store(true, std::memory_order_release);
  }
  child_ = std::move(child);
  target_ = nullptr;  // as Python: the parent drops the target and its arguments
}

void Process::join() { join_until(detail::Deadline::never()); }

void Process::join_until(detail::Deadline deadline) {
  require_open("join");
  if (!child_) throw ProcessError("Process.join: can only join a started process (" + name_ + ")");
  require_ours("join", "join");
  if (child_->reaped()) return;
  if (child_->exited_by(deadline) && child_->reap(Wait::polled)) forget(child_);
}

bool Process::is_alive() {
  require_open("is_alive");
  if (!child_) return false;
  require_ours("is_alive", "test");
  if (child_->reap(Wait::no)) {
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
  if (child_ && !child_->reap(Wait::no))
    throw ValueError("Process.close: cannot close a process while it is still running; call join() or terminate() first (" + name_ + ")");
  if (child_) forget(child_);
  child_.reset();
  closed_ = true;
}

std::optional<int> Process::exitcode() {
  require_open("exitcode");
  if (!child_ || !child_->ours()) return std::nullopt;
  if (child_->reap(Wait::no)) forget(child_);
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

namespace {

// Python's multiprocessing.process._exitcode_to_name: -SIGTERM for a death by
// SIGTERM, the number for a signal Python's signal module does not name.
std::string exitcode_name(int code) {
  if (code >= 0) return std::to_string(code);
  int signal_number = -code;
  if (signal_number == SIGRTMIN) return "-SIGRTMIN";
  if (signal_number == SIGRTMAX) return "-SIGRTMAX";
  const char* abbreviation = ::sigabbrev_np(signal_number);
  return abbreviation ? std::string("-SIG") + abbreviation : std::to_string(code);
}

// "Worker" for "(anonymous namespace)::Worker" or "app::Worker": Python
// shows type(self).__name__.
std::string unqualified(std::string name) {
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i + 1 < name.size(); ++i) {
    if (name[i] == '<') ++depth;
    if (name[i] == '>') --depth;
    if (depth == 0 && name[i] == ':' && name[i + 1] == ':') start = i + 2;
  }
  return name.substr(start);
}

}  // namespace

std::string Process::repr() const {
  std::string text = "<" + unqualified(detail::demangle(typeid(*this).name())) + " name=";
  detail::append_str_repr(text, name_);
  auto parent_and_status = [&](pid_t parent, const std::string& status) {
    text += " parent=" + std::to_string(parent) + " " + status;
  };
  if (closed_ || !child_) {
    parent_and_status(detail::current_pid(), closed_ ? "closed" : "initial");
  } else {
    text += " pid=" + std::to_string(child_->pid);
    if (!child_->ours()) {
      parent_and_status(child_->parent_pid, "unknown");  // not ours to reap
    } else if (!child_->reap(Wait::no)) {
      parent_and_status(child_->parent_pid, "started");
    } else {
      forget(child_);
      parent_and_status(child_->parent_pid, "stopped");
      if (auto code = child_->exitcode()) text += " exitcode=" + exitcode_name(*code);
    }
  }
  if (daemon_) text += " daemon";
  return text + ">";
}

ProcessInfo current_process() {
  const Identity& me = identity();
  return ProcessInfo{me.name, detail::current_pid(), me.daemon};
}

std::optional<ProcessInfo> parent_process() { return identity().parent; }

std::vector<int> active_children() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<int> pids;
  std::erase_if(r.children, [&](const std::shared_ptr<detail::Child>& child) {
    if (!child->ours() || child->reap(Wait::no)) return true;
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

void exit(int code) { exit_process(code); }

}  // namespace mp
