// Helpers shared by the test suites: run another program with its output
// captured, and ask whether a process is gone. Every wait has a deadline.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "mp/process.hpp"

namespace test_support {

using namespace std::chrono_literals;

// ThreadSanitizer instruments every memory access, so copies run about ten
// times slower: timing bounds are scaled by this in that build only, and
// checked as promised in every other.
#if defined(__SANITIZE_THREAD__)
constexpr int sanitizer_slowdown = 10;
#else
constexpr int sanitizer_slowdown = 1;
#endif

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Lower-case hex of bytes, the form the Python peers exchange them in.
inline std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// The message of the Error that `call` throws, or "no exception".
template <class Error>
std::string error_text(auto&& call) {
  try {
    call();
  } catch (const Error& error) {
    return error.what();
  }
  return "no exception";
}

// The fields of /proc/<pid>/stat after the command name, from the state
// (field 3) on; empty once the process is reaped.
inline std::vector<std::string> stat_fields(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  std::vector<std::string> fields;
  auto close_paren = line.rfind(')');
  if (close_paren == std::string::npos) return fields;
  std::istringstream rest(line.substr(close_paren + 1));
  for (std::string field; rest >> field;) fields.push_back(field);
  return fields;
}

// CPU time (user + system, in clock ticks) a process has used so far.
inline long cpu_ticks(int pid) {
  std::vector<std::string> fields = stat_fields(pid);
  return fields.size() < 13 ? 0 : std::stol(fields[11]) + std::stol(fields[12]);  // fields 14, 15
}

// CPU time the calling thread has used so far.
inline std::chrono::nanoseconds thread_cpu_time() {
  timespec now{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

// True when `pid` no longer runs: reaped, or a zombie nobody reaped yet.
inline bool process_gone(int pid) {
  std::vector<std::string> fields = stat_fields(pid);
  return fields.empty() || fields[0] == "Z";
}

// Polls `condition` until it holds (true) or `limit` passes (false).
template <class Condition>
bool within(std::chrono::milliseconds limit, Condition condition) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

inline bool all_gone_within(const std::vector<int>& pids, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (std::all_of(pids.begin(), pids.end(), process_gone)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

// Another program, started through mp::Process + execv, stdout and stderr
// captured (stdin from /dev/null), optionally in a process group of its own.
class Program {
 public:
  explicit Program(std::vector<std::string> argv, bool own_process_group = false)
      : process_([argv, own_process_group, this] {
          if (own_process_group) ::setpgid(0, 0);
          ::dup2(out_[1], 1);
          ::dup2(err_[1], 2);
          std::vector<char*> args;
          for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
          args.push_back(nullptr);
          ::execvp(args[0], args.data());
          ::_exit(127);
        }) {
    if (::pipe2(out_, O_CLOEXEC) != 0 || ::pipe2(err_, O_CLOEXEC) != 0)
      throw std::runtime_error("Program: pipe2 failed");
    process_.start();
    ::close(out_[1]);
    ::close(err_[1]);
  }
  ~Program() {
    if (process_.is_alive()) process_.kill();
    process_.join(10s);
    ::close(out_[0]);
    ::close(err_[0]);
  }

  int pid() const { return *process_.pid(); }

  // The next line of stdout, or nullopt at the deadline or at end of output.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 30s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto newline = out_buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = out_buffer_.substr(0, newline);
        out_buffer_.erase(0, newline + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms || !read_some(out_[0], out_buffer_, left)) return std::nullopt;
    }
  }

  // Waits for the exit (killing the program at the deadline) and collects
  // the rest of its output. Returns the exit code (negative: signal).
  int wait(std::chrono::milliseconds timeout = 60s) {
    process_.join(timeout);
    if (process_.is_alive()) {
      process_.kill();
      process_.join(10s);
    }
    while (read_some(out_[0], out_buffer_, 1000ms)) {
    }
    while (read_some(err_[0], err_buffer_, 1000ms)) {
    }
    return process_.exitcode().value_or(-SIGKILL);
  }

  const std::string& out() const { return out_buffer_; }
  const std::string& err() const { return err_buffer_; }

 private:
  static bool read_some(int fd, std::string& into, std::chrono::milliseconds timeout) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char buffer[4096];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return false;
    into.append(buffer, static_cast<std::size_t>(n));
    return true;
  }

  int out_[2] = {-1, -1};
  int err_[2] = {-1, -1};
  mp::Process process_;
  std::string out_buffer_;
  std::string err_buffer_;
};

}  // namespace test_support
