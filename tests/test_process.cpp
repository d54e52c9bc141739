// mp::Process against real forked children: Python's _TestProcess and
// _TestSubclassingProcess, plus the contract of the Process section of
// API.md (exit codes, misuse errors, names, daemons, sentinels, stdio).
// Children report through plain pipes; every wait has a deadline.
#include <doctest/doctest.h>
#include <cxxabi.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mp/detail/fd.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/process.hpp"
#include "mp/queues.hpp"
#include "python_versions.hpp"
#include "reprs.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using test_support::error_text;
using test_support::process_gone;
using test_support::seconds_since;

namespace {

constexpr auto kGenerous = 30s;  // every blocking call in this suite is bounded

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool has(const std::vector<int>& pids, int pid) {
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

// A pipe; the child writes what it saw, the parent reads it with a deadline.
struct Pipe {
  int read_end = -1;
  int write_end = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    read_end = fds[0];
    write_end = fds[1];
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  void close_read() {
    if (read_end >= 0) ::close(read_end);
    read_end = -1;
  }
  void close_write() {
    if (write_end >= 0) ::close(write_end);
    write_end = -1;
  }
};

// For use in children: writes all of `text` (short writes retried).
void put(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

// Reads from fd until EOF or the deadline.
std::string read_all(int fd, std::chrono::milliseconds timeout = kGenerous) {
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) return text;
    pollfd ready{fd, POLLIN, 0};
    int rc = ::poll(&ready, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return text;
    char buffer[4096];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

// Reads one '\n'-terminated line (without the newline); nullopt at the
// deadline or EOF. Reads a byte at a time so nothing after the line is lost.
std::optional<std::string> read_line(int fd, std::chrono::milliseconds timeout = kGenerous) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) return std::nullopt;
    pollfd ready{fd, POLLIN, 0};
    int rc = ::poll(&ready, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return std::nullopt;
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (c == '\n') return line;
    line.push_back(c);
  }
}

// For use in children: waits (at most kGenerous) for the parent's go.
void wait_for_go(int fd) {
  pollfd ready{fd, POLLIN, 0};
  ::poll(&ready, 1, static_cast<int>(std::chrono::milliseconds(kGenerous).count()));
}

// Bounded join that reports whether the child ended.
bool joined(mp::Process& p, std::chrono::milliseconds timeout = kGenerous) {
  p.join(timeout);
  return !p.is_alive();
}

// Redirects this process's fd 2 into a pipe while alive (around start(), so
// that the child inherits it); text() collects what was written to it.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    saved_ = ::dup(2);
    ::dup2(pipe_.write_end, 2);
  }
  ~StderrCapture() { restore(); }
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
    pipe_.close_write();
  }
  // Everything the children wrote, once they have all exited.
  std::string text() {
    restore();
    return read_all(pipe_.read_end, 10s);
  }

 private:
  Pipe pipe_;
  int saved_ = -1;
};

// Starts `p` with its stderr captured and returns what it wrote, once it has
// exited with 1, as a child whose target throws must.
std::string stderr_of_failed(mp::Process& p) {
  StderrCapture capture;
  p.start();
  capture.restore();
  REQUIRE(joined(p));
  CHECK(p.exitcode() == 1);
  return capture.text();
}

int open_fd_count() {
  int count = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (dirent* entry = ::readdir(dir))
      if (entry->d_name[0] != '.') ++count;
    ::closedir(dir);
  }
  return count - 1;  // the directory stream itself
}

// Reaped by someone (mp): no longer our child, where a zombie still is.
// WNOWAIT: looking does not reap it.
bool reaped(int pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// Exit code of a child running `body`, joined with a deadline.
template <class F>
std::optional<int> exit_code_of(F body) {
  mp::Process p(mp::ProcessOptions{.name = "", .daemon = true}, body);
  p.start();
  p.join(kGenerous);
  return p.exitcode();
}

struct CustomError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// test_subclassing: Python's _UpperCaser, with two pipes for its connection.
class UpperCaser : public mp::Process {
 public:
  UpperCaser() : mp::Process(mp::ProcessOptions{.name = "UpperCaser", .daemon = true}) {}

  void run() override {
    requests_.close_write();
    replies_.close_read();
    while (auto line = read_line(requests_.read_end)) {
      for (char& c : *line) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      put(replies_.write_end, *line + "\n");
    }
  }

  // The parent's side, after start().
  void opened() {
    requests_.close_read();
    replies_.close_write();
  }
  std::optional<std::string> submit(const std::string& text) {
    put(requests_.write_end, text + "\n");
    return read_line(replies_.read_end);
  }
  void stop() { requests_.close_write(); }

 private:
  Pipe requests_;
  Pipe replies_;
};

// A subclass whose run() throws: test_stderr_flush.
class Thrower : public mp::Process {
 public:
  Thrower() : mp::Process(mp::ProcessOptions{.name = "Thrower", .daemon = false}) {}
  void run() override { throw CustomError("1/0 # MARKER"); }
};

// A subclass whose run() leaves through std::exit: test_sys_exit.
class Exiter : public mp::Process {
 public:
  explicit Exiter(int code) : code_(code) {}
  void run() override { std::exit(code_); }

 private:
  int code_;
};

// test_recursion: every process reports its id, then starts two children
// down to depth 2, joining each before the next.
void recurse(int fd, std::string id) {
  put(fd, "[" + id + "]\n");
  if (id.size() < 2) {
    for (char i : {'0', '1'}) {
      mp::Process child(recurse, fd, id + i);
      child.start();
      child.join(kGenerous);
    }
  }
}

// Owns a descriptor; test_lose_target_ref watches the parent's copy go away.
struct FdOwner {
  explicit FdOwner(int fd) : fd(fd) {}
  FdOwner(FdOwner&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  FdOwner& operator=(FdOwner&&) = delete;
  ~FdOwner() {
    if (fd >= 0) ::close(fd);
  }
  int fd;
};

volatile sig_atomic_t alarms = 0;
void on_alarm(int) { alarms = alarms + 1; }

// Runs tests/helpers/process_exit in `mode`, which starts a daemon child that
// sleeps 60 s and a worker, prints "pids <daemon> <worker>" and ends; its
// exit must terminate the daemon (so it ends well within 20 s).
struct ExitRun {
  std::string out;
  int helper_pid = 0;
  int daemon_pid = 0;
  int worker_pid = 0;
};
ExitRun run_exit_helper(const char* mode) {
  const auto start = std::chrono::steady_clock::now();
  test_support::Program helper({MP_TEST_HELPERS "/process_exit", mode});
  CHECK(helper.wait() == 0);
  CHECK(test_support::seconds_since(start) < 20.0);
  ExitRun run{helper.out(), helper.pid()};
  REQUIRE(std::sscanf(run.out.c_str(), "pids %d %d", &run.daemon_pid, &run.worker_pid) == 2);
  return run;
}

}  // namespace

TEST_SUITE("process") {
  // ---- Python _TestProcess ----

  TEST_CASE("test_current: the main process") {
    mp::ProcessInfo current = mp::current_process();
    CHECK(current.name == "MainProcess");
    CHECK(current.pid == ::getpid());
    CHECK_FALSE(current.daemon);
    CHECK_FALSE(mp::parent_process().has_value());
  }

  TEST_CASE("current_process in a child names the child") {
    Pipe report;
    mp::Process p(mp::ProcessOptions{.name = "Reporter", .daemon = true}, [&] {
      mp::ProcessInfo me = mp::current_process();
      put(report.write_end, me.name + " " + std::to_string(me.pid) + " " + (me.daemon ? "daemon" : "not-daemon") + "\n");
    });
    p.start();
    auto line = read_line(report.read_end);
    REQUIRE(joined(p));
    REQUIRE(line.has_value());
    CHECK(*line == "Reporter " + std::to_string(*p.pid()) + " daemon");
    CHECK(p.exitcode() == 0);
  }

  TEST_CASE("test_daemon_argument: the daemon flag defaults to the creator's") {
    mp::Process inherited([] {});
    CHECK(inherited.daemon() == mp::current_process().daemon);
    CHECK_FALSE(inherited.daemon());
    mp::Process daemonic(mp::ProcessOptions{.name = "", .daemon = true}, [] {});
    CHECK(daemonic.daemon());
    mp::Process not_daemonic(mp::ProcessOptions{.name = "", .daemon = false}, [] {});
    CHECK_FALSE(not_daemonic.daemon());

    // In a daemonic child, a new Process inherits daemon = true, and may not start.
    Pipe report;
    mp::Process p(mp::ProcessOptions{.name = "Daemonic", .daemon = true}, [&] {
      mp::Process grandchild([] {});
      std::string line = grandchild.daemon() ? "daemon" : "not-daemon";
      line += " " + error_text<mp::ProcessError>([&] { grandchild.start(); });
      put(report.write_end, line + "\n");
    });
    p.start();
    auto line = read_line(report.read_end);
    REQUIRE(joined(p));
    REQUIRE(line.has_value());
    CHECK(contains(*line, "daemon "));
    CHECK_FALSE(contains(*line, "not-daemon"));
    CHECK(contains(*line, "daemonic processes are not allowed to have children"));
    CHECK(p.exitcode() == 0);
  }

  TEST_CASE("test_parent_process_attributes: the child sees its parent") {
    Pipe report;
    mp::Process p([&] {
      auto parent = mp::parent_process();
      if (!parent) {
        put(report.write_end, "none\n");
        return;
      }
      put(report.write_end, std::to_string(parent->pid) + " " + parent->name + "\n");
    });
    p.start();
    auto line = read_line(report.read_end);
    REQUIRE(joined(p));
    REQUIRE(line.has_value());
    CHECK(*line == std::to_string(::getpid()) + " MainProcess");
    CHECK_FALSE(mp::parent_process().has_value());
  }

  TEST_CASE("test_parent_process: a grandchild notices its parent's death") {
    Pipe report;
    mp::Process p(mp::ProcessOptions{.name = "Middle", .daemon = false}, [&] {
      mp::Process grandchild([&] {
        auto parent = mp::parent_process();
        if (!parent) return put(report.write_end, "none\nnone\n");
        put(report.write_end, std::string(process_gone(parent->pid) ? "not alive" : "alive") + " " +
                                  parent->name + " " + std::to_string(parent->pid) + "\n");
        auto until = std::chrono::steady_clock::now() + kGenerous;
        while (!process_gone(parent->pid) && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(10ms);
        put(report.write_end, process_gone(parent->pid) ? "not alive\n" : "alive\n");
      });
      grandchild.start();
      std::this_thread::sleep_for(300s);  // until terminated
    });
    p.start();
    report.close_write();
    auto first = read_line(report.read_end);
    REQUIRE(first.has_value());
    CHECK(*first == "alive Middle " + std::to_string(*p.pid()));
    p.terminate();
    REQUIRE(joined(p));
    CHECK(p.exitcode() == -SIGTERM);
    auto second = read_line(report.read_end);
    REQUIRE(second.has_value());
    CHECK(*second == "not alive");
  }

  TEST_CASE("test_process: is_alive and exitcode and active_children over a life cycle") {
    Pipe report;
    Pipe go;
    mp::Process p(mp::ProcessOptions{.name = "SomeProcess", .daemon = true},
                  [&](int a, const std::string& b, double c) {
                    wait_for_go(go.read_end);
                    mp::ProcessInfo me = mp::current_process();
                    put(report.write_end, std::to_string(a) + " " + b + " " + std::to_string(c) + "\n");
                    put(report.write_end, me.name + "\n" + std::to_string(me.pid) + "\n");
                  },
                  1, std::string("two"), 2.5);
    CHECK_FALSE(p.is_alive());
    CHECK(p.daemon());
    CHECK(p.name() == "SomeProcess");
    CHECK_FALSE(p.exitcode().has_value());
    CHECK_FALSE(p.pid().has_value());

    p.start();
    REQUIRE(p.pid().has_value());
    int pid = *p.pid();
    CHECK(pid > 0);
    CHECK(pid != ::getpid());
    CHECK_FALSE(p.exitcode().has_value());
    CHECK(p.is_alive());
    CHECK(has(mp::active_children(), pid));

    put(go.write_end, "g");
    CHECK(read_line(report.read_end) == std::optional<std::string>("1 two " + std::to_string(2.5)));
    CHECK(read_line(report.read_end) == std::optional<std::string>("SomeProcess"));
    CHECK(read_line(report.read_end) == std::optional<std::string>(std::to_string(pid)));

    p.join(kGenerous);
    CHECK(p.exitcode() == 0);
    CHECK_FALSE(p.is_alive());
    CHECK_FALSE(has(mp::active_children(), pid));
    CHECK(p.pid() == pid);  // still known after the end
  }

  TEST_CASE("test_terminate and test_kill: death by signal gives -N") {
    for (int signal_number : {SIGTERM, SIGKILL}) {
      CAPTURE(signal_number);
      mp::Process p(mp::ProcessOptions{.name = "", .daemon = true}, [] { std::this_thread::sleep_for(100s); });
      p.start();
      int pid = *p.pid();
      CHECK(p.is_alive());
      CHECK(has(mp::active_children(), pid));
      CHECK_FALSE(p.exitcode().has_value());

      auto start = std::chrono::steady_clock::now();
      p.join(0s);
      CHECK(seconds_since(start) < 5.0);
      CHECK(p.is_alive());
      start = std::chrono::steady_clock::now();
      p.join(-1s);
      CHECK(seconds_since(start) < 5.0);
      CHECK(p.is_alive());

      if (signal_number == SIGTERM)
        p.terminate();
      else
        p.kill();
      start = std::chrono::steady_clock::now();
      p.join(kGenerous);
      CHECK(seconds_since(start) < 10.0);
      CHECK_FALSE(p.is_alive());
      CHECK_FALSE(has(mp::active_children(), pid));
      p.join(kGenerous);  // joining again is fine
      CHECK(p.exitcode() == -signal_number);
      // Signalling an ended process is harmless.
      CHECK_NOTHROW(p.terminate());
      CHECK_NOTHROW(p.kill());
      CHECK(p.exitcode() == -signal_number);
    }
  }

  TEST_CASE("join(timeout) returns at the deadline while the child runs") {
    mp::Process p(mp::ProcessOptions{.name = "", .daemon = true}, [] { std::this_thread::sleep_for(100s); });
    p.start();
    auto start = std::chrono::steady_clock::now();
    p.join(300ms);
    double waited = seconds_since(start);
    CHECK(waited >= 0.29);
    CHECK(waited < 10.0);
    CHECK(p.is_alive());
    CHECK_FALSE(p.exitcode().has_value());
    p.kill();
    REQUIRE(joined(p));
    CHECK(p.exitcode() == -SIGKILL);
  }

  TEST_CASE("test_cpu_count") {
    int cpus = mp::cpu_count();
    CHECK(cpus >= 1);
    CHECK(cpus <= static_cast<int>(::sysconf(_SC_NPROCESSORS_CONF)));
  }

  TEST_CASE("test_active_children") {
    Pipe go;
    mp::Process p(mp::ProcessOptions{.name = "", .daemon = true}, [&] { wait_for_go(go.read_end); });
    std::vector<int> before = mp::active_children();
    p.start();
    int pid = *p.pid();
    CHECK_FALSE(has(before, pid));
    CHECK(has(mp::active_children(), pid));
    put(go.write_end, "g");
    REQUIRE(joined(p));
    CHECK_FALSE(has(mp::active_children(), pid));
  }

  TEST_CASE("active_children reaps a finished child nobody joined") {
    mp::Process p([] {});
    p.start();
    int pid = *p.pid();
    auto until = std::chrono::steady_clock::now() + kGenerous;
    while (has(mp::active_children(), pid) && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(5ms);
    CHECK_FALSE(has(mp::active_children(), pid));
    // Reaped by active_children: the pid is gone, not a zombie, and the exit code is kept.
    CHECK(process_gone(pid));
    CHECK(p.exitcode() == 0);
    CHECK_FALSE(p.is_alive());
  }

  TEST_CASE("test_recursion: children of children") {
    Pipe report;
    recurse(report.write_end, "");
    report.close_write();
    std::string text = read_all(report.read_end);
    CHECK(text == "[]\n[0]\n[00]\n[01]\n[1]\n[10]\n[11]\n");
  }

  TEST_CASE("names of grandchildren follow Python's identity (Process-N:M)") {
    Pipe report;
    mp::Process p([&] {
      mp::Process first([] {});
      mp::Process second(mp::ProcessOptions{.name = "Named", .daemon = {}}, [] {});
      mp::Process third([] {});
      put(report.write_end, first.name() + " " + second.name() + " " + third.name() + "\n");
    });
    std::string name = p.name();
    REQUIRE(name.rfind("Process-", 0) == 0);
    p.start();
    auto line = read_line(report.read_end);
    REQUIRE(joined(p));
    REQUIRE(line.has_value());
    CHECK(*line == name + ":1 Named " + name + ":3");
  }

  TEST_CASE("test_sentinel: readable once the child has ended") {
    Pipe go;
    mp::Process p(mp::ProcessOptions{.name = "Sentinel", .daemon = true}, [&] { wait_for_go(go.read_end); });
    std::string message = error_text<mp::ValueError>([&] { (void)p.sentinel(); });
    CHECK(contains(message, "not started"));
    CHECK(contains(message, "Sentinel"));
    p.start();
    int sentinel = p.sentinel();
    CHECK(sentinel >= 0);
    pollfd ready{sentinel, POLLIN, 0};
    CHECK(::poll(&ready, 1, 0) == 0);
    CHECK(::poll(&ready, 1, 100) == 0);
    CHECK(p.is_alive());

    put(go.write_end, "g");
    // The sentinel signals the end by itself, before anyone joins.
    ready.revents = 0;
    CHECK(::poll(&ready, 1, 30000) == 1);
    CHECK((ready.revents & POLLIN) != 0);
    p.join(kGenerous);
    CHECK(p.exitcode() == 0);
    // It stays valid, and readable, after join until close().
    CHECK(p.sentinel() == sentinel);
    ready.revents = 0;
    CHECK(::poll(&ready, 1, 1000) == 1);
    p.close();
    CHECK_FALSE(fd_is_open(sentinel));
    CHECK_THROWS_AS((void)p.sentinel(), mp::ValueError);
  }

  TEST_CASE("test_close: not while running; afterwards every use is a ValueError") {
    Pipe go;
    mp::Process p(mp::ProcessOptions{.name = "Closer", .daemon = true}, [&] {
      wait_for_go(go.read_end);
      std::exit(0);
    });
    p.start();
    CHECK(p.is_alive());
    std::string message = error_text<mp::ValueError>([&] { p.close(); });
    CHECK(contains(message, "still running"));
    CHECK(contains(message, "Closer"));
    CHECK(p.is_alive());  // close() failed: still usable

    put(go.write_end, "g");
    p.join(kGenerous);
    CHECK_FALSE(p.is_alive());
    CHECK(p.exitcode() == 0);
    p.close();
    CHECK_THROWS_AS(p.is_alive(), mp::ValueError);
    CHECK_THROWS_AS(p.join(), mp::ValueError);
    CHECK_THROWS_AS(p.join(1s), mp::ValueError);
    CHECK_THROWS_AS(p.terminate(), mp::ValueError);
    CHECK_THROWS_AS(p.kill(), mp::ValueError);
    CHECK_THROWS_AS(p.start(), mp::ValueError);
    CHECK_THROWS_AS((void)p.exitcode(), mp::ValueError);
    CHECK_THROWS_AS((void)p.pid(), mp::ValueError);
    CHECK(contains(error_text<mp::ValueError>([&] { p.is_alive(); }), "Closer"));
    CHECK(p.name() == "Closer");  // name and daemon stay readable, as in Python
    CHECK_NOTHROW(p.close());     // closing twice is fine
  }

  TEST_CASE("close() on a process that ended without join reaps it") {
    mp::Process p([] {});
    p.start();
    int pid = *p.pid();
    int sentinel = p.sentinel();
    pollfd ready{sentinel, POLLIN, 0};
    REQUIRE(::poll(&ready, 1, 30000) == 1);
    CHECK_NOTHROW(p.close());
    CHECK(process_gone(pid));
    CHECK_FALSE(has(mp::active_children(), pid));
  }

  TEST_CASE("close() before start") {
    mp::Process p([] {});
    CHECK_NOTHROW(p.close());
    CHECK_THROWS_AS(p.start(), mp::ValueError);
  }

  TEST_CASE("test_many_processes: 50 children started and joined then 50 terminated") {
    constexpr int kN = 50;
    std::vector<mp::Process> procs;
    for (int i = 0; i < kN; ++i) procs.emplace_back([] { std::this_thread::sleep_for(10ms); });
    for (auto& p : procs) p.start();
    for (auto& p : procs) p.join(kGenerous);
    for (auto& p : procs) CHECK(p.exitcode() == 0);

    std::vector<mp::Process> sleepers;
    std::vector<int> pids;
    for (int i = 0; i < kN; ++i)
      sleepers.emplace_back(mp::ProcessOptions{.name = "", .daemon = true}, [] { std::this_thread::sleep_for(100s); });
    for (auto& p : sleepers) {
      p.start();
      pids.push_back(*p.pid());
    }
    std::this_thread::sleep_for(1ms);
    for (auto& p : sleepers) p.terminate();
    for (auto& p : sleepers) p.join(kGenerous);
    for (auto& p : sleepers) CHECK(p.exitcode() == -SIGTERM);
    for (int pid : pids) CHECK_FALSE(has(mp::active_children(), pid));
    CHECK(test_support::all_gone_within(pids, 1s));
  }

  TEST_CASE("test_lose_target_ref: the parent drops the target and its arguments at start") {
    auto witness = std::make_shared<int>(5);
    std::weak_ptr<int> watch = witness;
    Pipe report;
    Pipe held;  // the write end is owned by the target: closed in the parent at start()
    auto owner = std::make_shared<FdOwner>(std::exchange(held.write_end, -1));
    mp::Process p(
        [&report](const std::shared_ptr<int>& value, const std::shared_ptr<FdOwner>& kept) {
          put(report.write_end, std::to_string(*value) + "\n");
          put(kept->fd, "x");
        },
        std::move(witness), std::move(owner));
    CHECK_FALSE(watch.expired());  // the Process holds it until start
    p.start();
    CHECK(watch.expired());
    auto line = read_line(report.read_end);
    REQUIRE(joined(p));
    CHECK(line == std::optional<std::string>("5"));
    // Only the child held the write end: EOF after its "x".
    CHECK(read_all(held.read_end, 10s) == "x");
  }

  TEST_CASE("child_fd_inflation-like: starting and closing children leaks no descriptor") {
    // Python skips test_child_fd_inflation for fork (children inherit the
    // parent's fds); here the parent's own descriptor count must not grow.
    auto once = [] {
      std::vector<mp::Process> procs;
      for (int i = 0; i < 10; ++i) procs.emplace_back([] {});
      for (auto& p : procs) p.start();
      for (auto& p : procs) p.join(kGenerous);
      for (auto& p : procs) REQUIRE(p.exitcode() == 0);
      for (auto& p : procs) p.close();
    };
    once();  // warm up (lazily opened descriptors, if any)
    int before = open_fd_count();
    once();
    CHECK(open_fd_count() == before);
    {
      std::vector<mp::Process> procs;
      for (int i = 0; i < 10; ++i) procs.emplace_back([] {});
      for (auto& p : procs) p.start();
      CHECK(open_fd_count() == before + 10);  // one sentinel each
      for (auto& p : procs) p.join(kGenerous);
    }  // destroyed without close()
    CHECK(open_fd_count() == before);
  }

  TEST_CASE("test_wait_for_threads-like: a child's threads finish before it exits") {
    Pipe report;
    mp::Process p([&] {
      std::jthread worker([&] {
        std::this_thread::sleep_for(300ms);
        put(report.write_end, "thread done\n");
      });
    });
    p.start();
    REQUIRE(joined(p));
    CHECK(p.exitcode() == 0);
    report.close_write();
    CHECK(read_all(report.read_end, 10s) == "thread done\n");
  }

  TEST_CASE("join in one thread while another thread calls active_children") {
    // Both reap: the first waitpid wins and the other must see its result
    // (this raised OSError ECHILD "waitpid failed: No child processes").
    std::atomic<int> poller_errors{0};
    std::string first_error;
    std::jthread poller([&](std::stop_token stop) {
      while (!stop.stop_requested()) {
        try {
          (void)mp::active_children();
        } catch (const std::exception& e) {
          if (poller_errors++ == 0) first_error = e.what();
        }
      }
    });
    std::vector<std::string> errors;
    int wrong_codes = 0;
    for (int i = 0; i < 200; ++i) {
      try {
        mp::Process p([i] { std::exit(i % 50); });
        p.start();
        p.join(kGenerous);
        if (p.exitcode() != i % 50) ++wrong_codes;
        if (p.is_alive()) p.kill();
      } catch (const std::exception& e) {
        errors.push_back(e.what());
      }
    }
    poller.request_stop();
    poller.join();
    CHECK(errors.empty());
    if (!errors.empty()) CHECK(errors.front() == "");
    CHECK(poller_errors == 0);
    CHECK(first_error == "");
    CHECK(wrong_codes == 0);
  }

  TEST_CASE("start from another thread while the main thread uses the registry") {
    std::string poller_error;
    std::jthread poller([&poller_error](std::stop_token stop) {
      while (!stop.stop_requested() && poller_error.empty()) {
        try {
          (void)mp::active_children();
        } catch (const std::exception& e) {
          poller_error = e.what();
        }
      }
    });
    std::vector<int> codes;
    for (int i = 0; i < 20; ++i) {
      // The child uses the registry too, which must not be locked after fork.
      mp::Process p([] {
        (void)mp::active_children();
        mp::Process grandchild([] {});
        grandchild.start();
        grandchild.join(kGenerous);
        std::exit(grandchild.exitcode().value_or(99) + 7);
      });
      p.start();
      p.join(kGenerous);
      codes.push_back(p.exitcode().value_or(-1000));
      if (p.is_alive()) p.kill();
    }
    std::string starter_error;
    std::jthread starter([&] {
      try {
        mp::Process p([] { std::exit(4); });
        p.start();
        p.join(kGenerous);
        codes.push_back(p.exitcode().value_or(-1000));
      } catch (const std::exception& e) {
        starter_error = e.what();
      }
    });
    starter.join();
    poller.request_stop();
    poller.join();
    CHECK(poller_error == "");
    CHECK(starter_error == "");
    std::vector<int> expected(20, 7);
    expected.push_back(4);
    CHECK(codes == expected);
  }

  TEST_CASE("a child forked while another thread holds glibc's exit-handler lock still runs and exits") {
    // The other thread registers and unregisters an exit handler (what the
    // first use of a function-local static does), so glibc's exit-function
    // lock is held at many forks. A child must take no lock it inherits held.
    static char handle;
    std::atomic<bool> stop{false};
    std::thread registrar([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        abi::__cxa_atexit([](void*) {}, nullptr, &handle);
        abi::__cxa_finalize(&handle);
      }
    });
    int stuck = 0, wrong = 0;
    for (int i = 0; i < 200 && stuck == 0; ++i) {
      mp::Process p([] {});
      p.start();
      p.join(5s);
      if (p.is_alive()) {
        ++stuck;
        p.kill();
        p.join(kGenerous);
      } else if (p.exitcode() != 0) {
        ++wrong;
      }
    }
    stop = true;
    registrar.join();
    CHECK(stuck == 0);
    CHECK(wrong == 0);
  }

  TEST_CASE("default names stay unique when Processes are created from 4 threads at once") {
    std::vector<std::vector<std::string>> names(4);
    {
      std::vector<std::jthread> threads;
      for (auto& mine : names)
        threads.emplace_back([&mine] {
          for (int i = 0; i < 20000; ++i) mine.push_back(mp::Process().name());
        });
    }
    std::vector<std::string> all;
    for (auto& mine : names) all.insert(all.end(), mine.begin(), mine.end());
    std::sort(all.begin(), all.end());
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  }

  TEST_CASE("join of a child reaped by someone else: returns, exitcode unknown (as Python's None)") {
    auto check_gone = [](mp::Process& p) {
      int pid = *p.pid();
      CHECK_NOTHROW(p.join(kGenerous));
      CHECK(p.exitcode() == std::nullopt);
      CHECK_FALSE(p.is_alive());
      CHECK_FALSE(has(mp::active_children(), pid));
      CHECK_NOTHROW(p.close());
    };
    SUBCASE("SIGCHLD ignored: the kernel reaps") {
      struct sigaction ignore {}, previous{};
      ignore.sa_handler = SIG_IGN;
      ::sigaction(SIGCHLD, &ignore, &previous);
      mp::Process p([] {
        std::this_thread::sleep_for(100ms);
        std::exit(3);
      });
      p.start();
      check_gone(p);
      ::sigaction(SIGCHLD, &previous, nullptr);
    }
    SUBCASE("another thread reaps with waitpid(-1)") {
      mp::Process p([] { std::exit(3); });
      p.start();
      int pid = *p.pid();
      std::thread reaper([pid] {
        // Children other tests left behind may come first; ours ends the loop.
        for (int status = 0;;) {
          pid_t got = ::waitpid(-1, &status, 0);
          if (got == pid || (got == -1 && errno != EINTR)) break;
        }
      });
      reaper.join();
      check_gone(p);
    }
    SUBCASE("reaped before start() could open its sentinel: start succeeds, the pid is never signalled") {
      // pidfd_open says ESRCH only once the child is reaped, when its pid may
      // already be another process's: killing that pid would be the bug.
      struct sigaction ignore {}, previous{};
      ignore.sa_handler = SIG_IGN;
      ::sigaction(SIGCHLD, &ignore, &previous);
      int ends[2];
      REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
      mp::Process p([write_end = ends[1]] {
        std::this_thread::sleep_for(300ms);
        mp::detail::write_all(write_end, "alive", 5, "test");
      });
      mp::detail::inject_fault("pidfd_open", ESRCH);
      CHECK_NOTHROW(p.start());
      ::close(ends[1]);
      check_gone(p);
      pollfd readable{ends[0], POLLIN, 0};
      REQUIRE(::poll(&readable, 1, 5000) == 1);
      char got[5] = {};
      CHECK(::read(ends[0], got, sizeof got) == 5);
      CHECK(std::string(got, 5) == "alive");
      ::close(ends[0]);
      for (int i = 0; i < 100; ++i) {  // the real race, for what it is worth
        mp::Process quick([] {});
        CHECK_NOTHROW(quick.start());
        CHECK_NOTHROW(quick.join(kGenerous));
      }
      ::sigaction(SIGCHLD, &previous, nullptr);
    }
  }

  TEST_CASE("a daemon child that ignores SIGTERM is SIGKILLed after the grace period") {
    SUBCASE("at the parent's exit") {
      auto start = std::chrono::steady_clock::now();
      test_support::Program helper({MP_TEST_HELPERS "/process_exit", "ignoring-daemon"});
      CHECK(helper.wait() == 0);
      double took = seconds_since(start);
      CHECK(took > 2.0);  // SIGTERM was ignored: the 2 s grace ran out
      CHECK(took < 5.0);  // not the daemon's 100 s
      int daemon_pid = 0;
      REQUIRE(std::sscanf(helper.out().c_str(), "pid %d", &daemon_pid) == 1);
      CHECK(test_support::all_gone_within({daemon_pid}, 1s));
    }
  }

  TEST_CASE("test_error_on_stdio_flush: broken stdout or stderr in the child") {
    // The child closes its standard streams with output still buffered.
    for (int fd : {1, 2}) {
      CAPTURE(fd);
      auto code = exit_code_of([fd] {
        int devnull = ::open("/dev/null", O_WRONLY);
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
        std::printf("buffered");
        std::fprintf(stderr, "unbuffered");
        ::close(fd);
      });
      CHECK(code == 0);
    }
    // stdout is a pipe whose reader is gone: never SIGPIPE, the own code.
    auto code = exit_code_of([] {
      int fds[2];
      if (::pipe(fds) != 0) std::exit(90);
      ::close(fds[0]);
      ::dup2(fds[1], 1);
      ::close(fds[1]);
      std::printf("into a closed pipe\n");
      mp::exit(6);
    });
    CHECK(code == 6);
    test_support::Program helper({MP_TEST_HELPERS "/process_exit", "closed-stdout"});
    CHECK(helper.wait() == 0);
    CHECK(contains(helper.err(), "child exit 5"));
  }

  TEST_CASE("buffered output before start appears exactly once") {
    test_support::Program helper({MP_TEST_HELPERS "/process_exit", "stdio"});
    CHECK(helper.wait() == 0);
    // The last line is the helper's own static destructor, in the parent only.
    CHECK(helper.out() == "before start\nin child\nchild exit 0\nstatic destructor in " +
                              std::to_string(helper.pid()) + "\n");
  }

  TEST_CASE("the child runs neither the parent's atexit handlers nor static destructors") {
    test_support::Program helper({MP_TEST_HELPERS "/process_exit", "atexit"});
    CHECK(helper.wait() == 0);
    std::string main_pid = std::to_string(helper.pid());
    CHECK(helper.out() == "main is " + main_pid + "\nchild exit 3\natexit in " + main_pid +
                              "\nstatic destructor in " + main_pid + "\n");
  }

  TEST_CASE("at exit a daemon child is terminated and a non-daemon child joined") {
    const ExitRun run = run_exit_helper("leak");
    CHECK(contains(run.out, "worker done\n"));  // joined, not abandoned
    CHECK(test_support::all_gone_within({run.daemon_pid, run.worker_pid}, 10s));
  }

  // ---- exit codes ----

  TEST_CASE("exit codes: return or std::exit or mp::exit") {
    CHECK(exit_code_of([] {}) == 0);
    CHECK(exit_code_of([] { std::exit(0); }) == 0);
    CHECK(exit_code_of([] { std::exit(8); }) == 8);
    CHECK(exit_code_of([] { std::exit(1); }) == 1);
    CHECK(exit_code_of([] { mp::exit(3); }) == 3);
    CHECK(exit_code_of([] { mp::exit(0); }) == 0);
    CHECK(exit_code_of([] { std::quick_exit(9); }) == 9);
    CHECK(exit_code_of([] { ::_exit(11); }) == 11);
  }

  TEST_CASE("exit codes: death by a signal gives -N") {
    CHECK(exit_code_of([] { ::raise(SIGSEGV); }) == -SIGSEGV);
    CHECK(exit_code_of([] { std::abort(); }) == -SIGABRT);
    CHECK(exit_code_of([] { ::raise(SIGKILL); }) == -SIGKILL);
    CHECK(exit_code_of([] { ::raise(SIGUSR1); }) == -SIGUSR1);
  }

  TEST_CASE("mp::exit flushes buffered output exactly once") {
    Pipe out;
    mp::Process p([&] {
      ::dup2(out.write_end, 1);
      std::printf("line one\n");
      std::fputs("line two\n", stdout);
      mp::exit(4);
    });
    p.start();
    out.close_write();
    REQUIRE(joined(p));
    CHECK(p.exitcode() == 4);
    CHECK(read_all(out.read_end, 10s) == "line one\nline two\n");
  }

  TEST_CASE("an uncaught exception prints Process <name>: with its type and what() and gives 1") {
    mp::Process p(mp::ProcessOptions{.name = "Raiser", .daemon = false},
                  [] { throw CustomError("something broke"); });
    std::string err = stderr_of_failed(p);
    CHECK(contains(err, "Process Raiser:"));
    CHECK(contains(err, "CustomError"));
    CHECK(contains(err, "something broke"));
    CHECK(err.find("Process Raiser:") < err.find("something broke"));
  }

  TEST_CASE("an uncaught standard exception names its type demangled") {
    mp::Process p(mp::ProcessOptions{.name = "Std", .daemon = false}, [] { throw std::out_of_range("index 7"); });
    std::string err = stderr_of_failed(p);
    CHECK(contains(err, "Process Std:"));
    CHECK(contains(err, "std::out_of_range"));
    CHECK(contains(err, "index 7"));
  }

  TEST_CASE("an uncaught non-std exception also gives 1") {
    mp::Process p(mp::ProcessOptions{.name = "Odd", .daemon = false}, [] { throw 42; });
    CHECK(contains(stderr_of_failed(p), "Process Odd:"));
  }

  TEST_CASE("a child's output written before an exception comes before the report") {
    Pipe out;
    mp::Process p(mp::ProcessOptions{.name = "Ordered", .daemon = false}, [&] {
      ::dup2(2, 1);  // stdout and stderr into the same pipe
      std::printf("buffered first\n");
      throw std::runtime_error("then this");
    });
    std::string err = stderr_of_failed(p);
    REQUIRE(contains(err, "buffered first"));
    CHECK(err.find("buffered first") < err.find("Process Ordered:"));
    CHECK(err.find("buffered first\n") == err.rfind("buffered first\n"));
  }

  // ---- misuse ----

  TEST_CASE("misuse: start twice") {
    mp::Process p(mp::ProcessOptions{.name = "Twice", .daemon = false}, [] {});
    p.start();
    std::string message = error_text<mp::ProcessError>([&] { p.start(); });
    CHECK(contains(message, "twice"));
    CHECK(contains(message, "Twice"));
    REQUIRE(joined(p));
    CHECK(p.exitcode() == 0);
    CHECK(contains(error_text<mp::ProcessError>([&] { p.start(); }), "Twice"));
  }

  TEST_CASE("misuse: join before start") {
    mp::Process p(mp::ProcessOptions{.name = "Unstarted", .daemon = false}, [] {});
    std::string message = error_text<mp::ProcessError>([&] { p.join(); });
    CHECK(contains(message, "started"));
    CHECK(contains(message, "Unstarted"));
    CHECK(contains(error_text<mp::ProcessError>([&] { p.join(1s); }), "Unstarted"));
    // Other queries before start are fine.
    CHECK_FALSE(p.is_alive());
    CHECK_FALSE(p.exitcode().has_value());
    CHECK_FALSE(p.pid().has_value());
  }

  TEST_CASE("misuse: close while running and sentinel before start") {
    mp::Process p(mp::ProcessOptions{.name = "Busy", .daemon = true}, [] { std::this_thread::sleep_for(100s); });
    CHECK(contains(error_text<mp::ValueError>([&] { (void)p.sentinel(); }), "Busy"));
    p.start();
    std::string message = error_text<mp::ValueError>([&] { p.close(); });
    CHECK(contains(message, "Busy"));
    CHECK(contains(message, "running"));
    p.kill();
    REQUIRE(joined(p));
    CHECK(p.exitcode() == -SIGKILL);
    CHECK_NOTHROW(p.close());
  }

  // ---- construction, names, objects ----

  TEST_CASE("construction with any callable and arguments") {
    Pipe report;
    int fd = report.write_end;
    struct Functor {
      int fd;
      void operator()(const std::string& word) const { put(fd, "functor " + word + "\n"); }
    };
    std::string captured = "captured";
    std::vector<mp::Process> procs;
    procs.emplace_back([fd](int n) { put(fd, "lambda " + std::to_string(n) + "\n"); }, 1);
    procs.emplace_back([fd, captured] { put(fd, "lambda " + captured + "\n"); });
    procs.emplace_back(Functor{fd}, std::string("two"));
    procs.emplace_back(&put, fd, std::string("function pointer\n"));
    procs.emplace_back(std::function<void(int)>([fd](int n) { put(fd, "std::function " + std::to_string(n) + "\n"); }), 3);
    auto shared = std::make_shared<int>(4);
    procs.emplace_back([fd, shared = std::move(shared)] { put(fd, "shared " + std::to_string(*shared) + "\n"); });
    std::string lines;
    for (auto& p : procs) {
      p.start();
      p.join(kGenerous);
      CHECK(p.exitcode() == 0);
      auto line = read_line(report.read_end, 10s);
      lines += line.value_or("<none>") + ";";
    }
    CHECK(lines ==
          "lambda 1;lambda captured;functor two;function pointer;std::function 3;shared 4;");
  }

  TEST_CASE("a capturing lambda sees the state as it is at start()") {
    Pipe report;
    int value = 1;
    std::vector<std::string> words{"a"};
    mp::Process p([&] { put(report.write_end, std::to_string(value) + " " + std::to_string(words.size()) + "\n"); });
    value = 2;  // changed after construction, before start: the child sees it
    words.push_back("b");
    p.start();
    value = 3;  // changed after start: the child does not
    auto line = read_line(report.read_end);
    REQUIRE(joined(p));
    CHECK(line == std::optional<std::string>("2 2"));
  }

  TEST_CASE("default names are Process-N counting up and an empty name means the default") {
    mp::Process a([] {});
    mp::Process b(mp::ProcessOptions{.name = "", .daemon = {}}, [] {});
    mp::Process c(mp::ProcessOptions{.name = "Custom", .daemon = {}}, [] {});
    mp::Process d;
    REQUIRE(a.name().rfind("Process-", 0) == 0);
    int n = std::stoi(a.name().substr(8));
    CHECK(b.name() == "Process-" + std::to_string(n + 1));
    CHECK(c.name() == "Custom");
    CHECK(d.name() == "Process-" + std::to_string(n + 3));
  }

  TEST_CASE("a default-constructed Process runs nothing and exits 0") {
    mp::Process p;
    p.start();
    REQUIRE(joined(p));
    CHECK(p.exitcode() == 0);
  }

  TEST_CASE("a started Process can be moved") {
    Pipe go;
    mp::Process p(mp::ProcessOptions{.name = "Moved", .daemon = false}, [&] {
      wait_for_go(go.read_end);
      std::exit(12);
    });
    p.start();
    int pid = *p.pid();
    mp::Process q(std::move(p));
    CHECK(q.name() == "Moved");
    CHECK(q.pid() == pid);
    CHECK(q.is_alive());
    mp::Process r;
    r = std::move(q);
    CHECK(r.pid() == pid);
    put(go.write_end, "g");
    REQUIRE(joined(r));
    CHECK(r.exitcode() == 12);
  }

  TEST_CASE("destroying a running process neither waits nor kills; it is reaped when it ends") {
    for (bool daemon : {true, false}) {
      CAPTURE(daemon);
      Pipe go;
      Pipe report;
      int pid = 0;
      int pidfd = -1;  // our own watch on the child, to time its reaping
      auto start = std::chrono::steady_clock::now();
      {
        mp::Process p(mp::ProcessOptions{.name = "", .daemon = daemon}, [&] {
          wait_for_go(go.read_end);
          put(report.write_end, "finished\n");
        });
        p.start();
        pid = *p.pid();
        pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
        REQUIRE(pidfd >= 0);
      }
      CHECK(seconds_since(start) < 1.0);  // the child waits for go: we did not wait for it
      CHECK_FALSE(process_gone(pid));     // nor killed it
      CHECK(has(mp::active_children(), pid));
      std::this_thread::sleep_for(100ms);
      CHECK_FALSE(process_gone(pid));

      put(go.write_end, "g");
      CHECK(read_line(report.read_end) == std::optional<std::string>("finished"));
      pollfd exited{pidfd, POLLIN, 0};
      REQUIRE(::poll(&exited, 1, static_cast<int>(std::chrono::milliseconds(kGenerous).count())) == 1);
      auto ended = std::chrono::steady_clock::now();
      // Reaped by mp without any call of ours: waitid cannot see it any more.
      // The reaper thread wakes on the child's pidfd at once; 300 ms is margin.
      while (!reaped(pid) && seconds_since(ended) < 5.0) std::this_thread::sleep_for(1ms);
      CHECK(reaped(pid));
      CHECK(seconds_since(ended) < 0.3);
      CHECK_FALSE(has(mp::active_children(), pid));
      ::close(pidfd);
    }
  }

  TEST_CASE("without an eventfd for the reaper, a destroyed Process's child is reaped by active_children") {
    // In a child: its reaper is not started yet, and the fault stays there.
    mp::Process p([] {
      Pipe go;
      int pid = 0;
      mp::detail::inject_fault("eventfd", EMFILE);
      {
        mp::Process grandchild([&] { wait_for_go(go.read_end); });
        grandchild.start();
        pid = *grandchild.pid();
      }
      put(go.write_end, "g");
      std::this_thread::sleep_for(300ms);
      if (reaped(pid)) mp::exit(10);  // no reaper thread could have done it
      if (has(mp::active_children(), pid)) mp::exit(11);  // it has ended: active_children reaps it
      mp::exit(reaped(pid) ? 0 : 12);
    });
    p.start();
    REQUIRE(joined(p));
    CHECK(p.exitcode() == 0);
  }

  TEST_CASE("the temporary idiom: mp::Process(worker, queue).start() then queue.put(stop)") {
    // CPython's mp_workers.py: Process(target=worker, args=(...)).start().
    mp::Queue<int> tasks;
    mp::Queue<int> done;
    auto worker = [](mp::Queue<int>& in, mp::Queue<int>& out) {
      for (int n = in.get(kGenerous); n >= 0; n = in.get(kGenerous)) out.put(n * n);
    };
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 2; ++i) mp::Process(worker, tasks, done).start();  // copies share the queues
    CHECK(seconds_since(start) < 5.0);  // the destructors did not wait for the workers
    for (int n = 1; n <= 10; ++n) tasks.put(n);
    int sum = 0;
    for (int n = 1; n <= 10; ++n) sum += done.get(kGenerous);
    CHECK(sum == 385);
    std::vector<int> workers = mp::active_children();
    for (int i = 0; i < 2; ++i) tasks.put(-1);  // the stop items
    auto until = std::chrono::steady_clock::now() + kGenerous;
    while (std::any_of(workers.begin(), workers.end(), [](int pid) { return !reaped(pid); }) &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(5ms);
    for (int pid : workers) CHECK(reaped(pid));
    CHECK(mp::active_children().empty());
  }

  TEST_CASE("a child joins its own children when it ends, as Python's _bootstrap") {
    for (bool through_std_exit : {false, true}) {
      CAPTURE(through_std_exit);
      Pipe report;
      mp::Process p([&] {
        mp::Process([&] {
          std::this_thread::sleep_for(300ms);
          put(report.write_end, "grandchild done\n");
        }).start();
        std::vector<int> mine = mp::active_children();
        put(report.write_end, "grandchild " + std::to_string(mine.empty() ? 0 : mine[0]) + "\n");
        if (through_std_exit) std::exit(4);
      });
      p.start();
      auto line = read_line(report.read_end);
      REQUIRE(joined(p));
      CHECK(p.exitcode() == (through_std_exit ? 4 : 0));
      int grandchild = 0;
      REQUIRE(line.has_value());
      REQUIRE(std::sscanf(line->c_str(), "grandchild %d", &grandchild) == 1);
      CHECK(grandchild > 0);
      CHECK(process_gone(grandchild));  // the child waited for it before ending
      report.close_write();
      CHECK(read_all(report.read_end, 1s) == "grandchild done\n");
    }
  }

  TEST_CASE("at exit a non-daemon child whose Process was destroyed is joined, a daemon one terminated") {
    const ExitRun run = run_exit_helper("scoped");
    // main returned before the worker's output; the exit waited for all of it.
    std::string out = run.out;
    out.erase(0, out.find('\n') + 1);
    CHECK(out == "main returns\nworker 1\nworker 2\nworker 3\nworker done\nstatic destructor in " +
                     std::to_string(run.helper_pid) + "\n");
    CHECK(test_support::all_gone_within({run.daemon_pid, run.worker_pid}, 10s));
  }

  TEST_CASE("join is not interrupted by signals") {
    struct sigaction action {};
    struct sigaction old {};
    action.sa_handler = on_alarm;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: poll sees EINTR
    REQUIRE(::sigaction(SIGALRM, &action, &old) == 0);
    itimerval timer{{0, 20000}, {0, 20000}};
    alarms = 0;
    REQUIRE(::setitimer(ITIMER_REAL, &timer, nullptr) == 0);

    mp::Process p([] {
      ::signal(SIGALRM, SIG_IGN);
      std::this_thread::sleep_for(500ms);
      std::exit(2);
    });
    p.start();
    p.join(kGenerous);
    auto code = p.exitcode();

    mp::Process q(mp::ProcessOptions{.name = "", .daemon = true}, [] {
      ::signal(SIGALRM, SIG_IGN);
      std::this_thread::sleep_for(100s);
    });
    q.start();
    auto start = std::chrono::steady_clock::now();
    q.join(500ms);
    double waited = seconds_since(start);

    itimerval off{};
    ::setitimer(ITIMER_REAL, &off, nullptr);
    ::sigaction(SIGALRM, &old, nullptr);
    CHECK(alarms > 5);
    CHECK(code == 2);
    CHECK(waited >= 0.49);
    CHECK(q.is_alive());
    q.kill();
    REQUIRE(joined(q));
  }

  // ---- Python _TestSubclassingProcess ----

  TEST_CASE("test_subclassing: a subclass overriding run()") {
    UpperCaser uppercaser;
    CHECK(uppercaser.daemon());
    CHECK(uppercaser.name() == "UpperCaser");
    uppercaser.start();
    uppercaser.opened();
    CHECK(uppercaser.submit("hello") == std::optional<std::string>("HELLO"));
    CHECK(uppercaser.submit("world") == std::optional<std::string>("WORLD"));
    uppercaser.stop();
    REQUIRE(joined(uppercaser));
    CHECK(uppercaser.exitcode() == 0);
  }

  TEST_CASE("test_stderr_flush: a subclass raising reports on stderr and exits 1") {
    Thrower thrower;
    std::string err = stderr_of_failed(thrower);
    CHECK(contains(err, "Process Thrower:"));
    CHECK(contains(err, "CustomError"));
    CHECK(contains(err, "1/0 # MARKER"));
  }

  TEST_CASE("test_sys_exit: a subclass leaving through std::exit") {
    for (int code : {0, 1, 8}) {
      CAPTURE(code);
      Exiter exiter(code);
      exiter.start();
      REQUIRE(joined(exiter));
      CHECK(exiter.exitcode() == code);
    }
  }

  TEST_CASE("repr and operator<< are Python's Process repr, state by state, every version") {
    struct Worker : mp::Process {
      Worker() : mp::Process(mp::ProcessOptions{"w", std::nullopt}) {}
      void run() override {}
    };
    std::vector<std::string> ours;
    auto show = [&](const mp::Process& process) {
      std::ostringstream printed;
      printed << process;
      CHECK(printed.str() == process.repr());
      ours.push_back(test_support::normalized_repr(process.repr()));
    };
    mp::Process exits(mp::ProcessOptions{"it's", std::nullopt}, [] { mp::exit(3); });
    show(exits);
    exits.start();
    exits.join(kGenerous);
    show(exits);
    exits.close();
    show(exits);
    mp::Process sleeper(mp::ProcessOptions{"tab\t\"quoted\"\\", true}, [] { std::this_thread::sleep_for(30s); });
    sleeper.start();
    show(sleeper);
    sleeper.terminate();
    sleeper.join(kGenerous);
    show(sleeper);
    Worker worker;
    worker.start();
    worker.join(kGenerous);
    show(worker);

    const std::string me = std::to_string(::getpid());
    CHECK(exits.repr() == "<Process name=\"it's\" parent=" + me + " closed>");
    CHECK(sleeper.repr() == "<Process name='tab\\t\"quoted\"\\\\' pid=" + std::to_string(*sleeper.pid()) +
                                " parent=" + me + " stopped exitcode=-SIGTERM daemon>");
    for (const auto& python : test_support::python_interpreters()) {
      CAPTURE(python.version);
      CHECK(test_support::python_reprs(python.path, "process") == ours);
    }
  }

  TEST_CASE("repr: running, another signal, a name to escape, and unknown in a process that did not start it") {
    mp::Process runner(mp::ProcessOptions{"bell\a", std::nullopt}, [] { std::this_thread::sleep_for(30s); });
    CHECK(runner.repr() == "<Process name='bell\\x07' parent=" + std::to_string(::getpid()) + " initial>");
    runner.start();
    const std::string pid = std::to_string(*runner.pid());
    CHECK(runner.repr() == "<Process name='bell\\x07' pid=" + pid + " parent=" + std::to_string(::getpid()) +
                               " started>");
    mp::Process sibling([&] {
      // Python: a Process object seen from a process other than its starter.
      mp::exit(runner.repr() == "<Process name='bell\\x07' pid=" + pid + " parent=" +
                                    std::to_string(mp::parent_process()->pid) + " unknown>"
                   ? 0
                   : 1);
    });
    sibling.start();
    sibling.join(kGenerous);
    CHECK(sibling.exitcode() == 0);
    CHECK(runner.is_alive());  // the sibling's repr reaped nothing
    runner.kill();
    runner.join(kGenerous);
    CHECK(test_support::normalized_repr(runner.repr()) ==
          "<Process name='bell\\x07' pid=N parent=N stopped exitcode=-SIGKILL>");
    mp::Process rt([] { ::raise(SIGRTMIN + 1); });
    rt.start();
    rt.join(kGenerous);
    CHECK(rt.repr().ends_with(" exitcode=" + std::to_string(-(SIGRTMIN + 1)) + ">"));  // Python has no name for it
  }

  // ---- a process forked otherwise than by start() ----

  TEST_CASE("a sibling or a raw fork()ed child cannot join or test a Process it did not start") {
    mp::Process runner([] { std::this_thread::sleep_for(30s); });
    runner.start();
    auto from_another_process = [&] {
      int failures = 0;
      for (auto call : {+[](mp::Process& p) { p.join(1s); }, +[](mp::Process& p) { (void)p.is_alive(); }}) {
        try {
          call(runner);
          ++failures;
        } catch (const mp::ProcessError& e) {
          if (!contains(e.what(), "can only") || !contains(e.what(), "a child process")) ++failures;
        }
      }
      if (runner.exitcode().has_value() || !mp::active_children().empty()) ++failures;
      return failures;
    };
    mp::Process sibling([&] { mp::exit(from_another_process()); });
    sibling.start();
    REQUIRE(joined(sibling));
    CHECK(sibling.exitcode() == 0);
    std::fflush(nullptr);
    pid_t raw = ::fork();
    REQUIRE(raw >= 0);
    if (raw == 0) ::_exit(from_another_process());
    int status = 0;
    REQUIRE(::waitpid(raw, &status, 0) == raw);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    CHECK(runner.is_alive());  // nobody else reaped it
    runner.kill();
    REQUIRE(joined(runner));
    CHECK(runner.exitcode() == -SIGKILL);
  }

  TEST_CASE("a raw fork()ed child's exit neither stops its parent's daemons nor waits for its children") {
    mp::Process daemon(mp::ProcessOptions{"", true}, [] { std::this_thread::sleep_for(30s); });
    daemon.start();  // before the pipe, which it would otherwise hold open
    Pipe release;
    mp::Process worker([&] {
      release.close_write();
      wait_for_go(release.read_end);
    });
    worker.start();
    release.close_read();
    std::fflush(nullptr);
    auto forked_at = std::chrono::steady_clock::now();
    pid_t raw = ::fork();
    REQUIRE(raw >= 0);
    if (raw == 0) std::exit(0);  // runs the exit handlers mp registered in the parent
    int status = 0;
    pid_t got = 0;
    while ((got = ::waitpid(raw, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() - forked_at < 10s)
      std::this_thread::sleep_for(5ms);
    if (got == 0) ::kill(raw, SIGKILL), ::waitpid(raw, &status, 0);
    CHECK(got == raw);
    CHECK(std::chrono::steady_clock::now() - forked_at < 5s);  // it did not wait for `worker`
    CHECK(daemon.is_alive());  // it did not SIGTERM the daemon
    CHECK(worker.is_alive());
    release.close_write();
    CHECK(joined(worker));
    daemon.kill();
    CHECK(joined(daemon));
  }
}
