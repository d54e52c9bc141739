// mp/subprocess.hpp: running external commands (Python: subprocess; Go:
// os/exec and syscall.ForkExec/Wait4).
//
// Processes are started with posix_spawn (glibc's CLONE_VM|CLONE_VFORK
// child), which is safe from a multi-threaded parent and reports a failed exec
// synchronously. Only stdin, stdout and stderr are inherited (close_fds).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mp/errors.hpp"

namespace mp::subprocess {

using Environment = std::map<std::string, std::string>;

// subprocess.CompletedProcess. out/err are empty unless captured; returncode
// is negative for death by signal.
struct CompletedProcess {
  std::vector<std::string> args;
  int returncode;
  std::string out;
  std::string err;
};

// subprocess.CalledProcessError: run(check=true) or check_output saw a non-zero
// returncode. Carries what was captured.
struct CalledProcessError : mp::Error {
  CalledProcessError(const std::string& what, int returncode, std::string out, std::string err)
      : mp::Error(what), returncode_(returncode), out_(std::move(out)), err_(std::move(err)) {}
  int returncode() const noexcept { return returncode_; }
  const std::string& out() const noexcept { return out_; }
  const std::string& err() const noexcept { return err_; }

 private:
  int returncode_;
  std::string out_;
  std::string err_;
};

// subprocess.TimeoutExpired. out()/err() hold what was read before the
// deadline (Python's exc.output / exc.stderr).
struct TimeoutExpired : mp::Error {
  explicit TimeoutExpired(const std::string& what, std::string out = {}, std::string err = {})
      : mp::Error(what), out_(std::move(out)), err_(std::move(err)) {}
  const std::string& out() const noexcept { return out_; }
  const std::string& err() const noexcept { return err_; }

 private:
  std::string out_;
  std::string err_;
};

// What one of the child's standard streams is connected to, as Python's
// stdin=/stdout=/stderr= arguments: INHERIT (None), PIPE, DEVNULL, STDOUT
// (stderr only), or a file descriptor of the parent, which the child gets a
// copy of (the parent keeps and still owns its descriptor).
struct Stream {
  enum class Kind { inherit, pipe, devnull, stdout_, fd };
  constexpr explicit Stream(Kind stream_kind) noexcept : kind(stream_kind) {}
  constexpr Stream(int parent_fd) noexcept : kind(Kind::fd), fd(parent_fd) {}  // NOLINT: implicit, as in Python
  Kind kind;
  int fd = -1;
};
inline constexpr Stream INHERIT{Stream::Kind::inherit};
inline constexpr Stream PIPE{Stream::Kind::pipe};
inline constexpr Stream DEVNULL{Stream::Kind::devnull};
inline constexpr Stream STDOUT{Stream::Kind::stdout_};

struct PopenOptions {
  // Members all have initializers, so designated initializers such as
  // {.out = PIPE} compile cleanly under -Wextra.
  Stream in = INHERIT, out = INHERIT, err = INHERIT;
  std::optional<std::string> cwd = std::nullopt;
  // Replaces the whole environment (Python's env=). PATH lookup of args[0] then
  // uses this PATH, as Python does.
  std::optional<Environment> env = std::nullopt;
  // Added to (and overriding) the inherited environment, or to env when given:
  // Python's env={**os.environ, **extra}.
  Environment env_add = {};
  // Close every descriptor but 0, 1 and 2 in the child (Python's default).
  bool close_fds = true;
};

struct RunOptions {
  bool capture_output = false;                      // fill out/err
  bool stderr_to_stdout = false;                    // Go's CombinedOutput
  bool check = false;                               // CalledProcessError on non-zero exit
  std::optional<std::string> input = std::nullopt;  // written to stdin
  std::optional<std::chrono::nanoseconds> timeout = std::nullopt;  // TimeoutExpired; child killed
  std::optional<std::string> cwd = std::nullopt;
  std::optional<Environment> env = std::nullopt;
  Environment env_add = {};  // see PopenOptions::env_add
};

// subprocess.Popen: one child process.
//
// Differs from Python: args is always a vector (no shell=True; pass
// {"/bin/sh", "-c", "..."}), streams are raw bytes (no text mode), and the
// object is move-only and not for concurrent use by several threads.
// Blocking: wait() and communicate() block until the child exits (communicate
// also until every pipe reaches end of file); their timeout forms throw
// TimeoutExpired and leave the child running, so the call can be repeated
// (communicate keeps what it had read and written). poll() never blocks.
// The child dying by a signal gives a negative returncode; a child that stops
// reading stdin only ends the input early (never SIGPIPE in the parent).
// Destruction closes the parent's pipe ends and reaps an exited child; a child
// still running is left running (as in Python) and one background thread,
// shared by all such children of the process, reaps it when it ends, so no
// zombie is left behind.
class Popen final {
 public:
  // Starts args[0], searched in PATH unless it contains '/'. A command that
  // cannot be started throws mp::OSError (FileNotFoundError for ENOENT) naming
  // the command and the reason; bad arguments throw mp::ValueError.
  explicit Popen(const std::vector<std::string>& args, const PopenOptions& options = {});
  ~Popen();
  Popen(Popen&& other) noexcept;
  Popen& operator=(Popen&& other) noexcept;
  Popen(const Popen&) = delete;
  Popen& operator=(const Popen&) = delete;

  int pid() const noexcept { return pid_; }
  const std::vector<std::string>& args() const noexcept { return args_; }
  std::optional<int> poll();  // returncode once ended
  int wait();
  template <class Rep, class Per>
  int wait(std::chrono::duration<Rep, Per> timeout) {
    return wait_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }
  // Feeds input to stdin (then closes it) while reading stdout and stderr,
  // all together, so no full pipe can deadlock; then waits for the child.
  // Returns what was read from the streams that are PIPEs.
  std::pair<std::string, std::string> communicate(
      std::optional<std::string> input = {}, std::optional<std::chrono::nanoseconds> timeout = {});
  // No-ops once the child has been reaped, so a reused pid is never signalled.
  void send_signal(int sig);
  void terminate();  // SIGTERM
  void kill();       // SIGKILL
  std::optional<int> returncode() const noexcept { return returncode_; }

  // The parent's ends of the pipes (-1 when that stream is not a PIPE), for
  // callers that stream by hand instead of using communicate().
  int stdin_fd() const noexcept { return stdin_; }
  int stdout_fd() const noexcept { return stdout_; }
  int stderr_fd() const noexcept { return stderr_; }
  // Closes the parent's end of stdin, so the child sees end of file.
  void close_stdin() noexcept;

 private:
  int wait_for(std::chrono::nanoseconds timeout);
  bool reap(bool block);
  void close_pipes() noexcept;
  std::string name() const;

  std::vector<std::string> args_;
  int pid_ = -1;
  int pidfd_ = -1;  // readable once the child exits: wait(timeout) sleeps in poll(2)
  int stdin_ = -1, stdout_ = -1, stderr_ = -1;
  std::optional<int> returncode_;
  // communicate() state that survives a TimeoutExpired, as in Python.
  bool communication_started_ = false;
  std::string input_;
  std::size_t input_offset_ = 0;
  std::string out_, err_;
};

// subprocess.run: starts args, feeds input, collects output, waits (killing and
// reaping the child if the timeout expires, then throwing TimeoutExpired).
CompletedProcess run(const std::vector<std::string>& args, const RunOptions& options = {});

// subprocess.check_output: run with stdout captured and check=true; returns stdout.
std::string check_output(const std::vector<std::string>& args, const RunOptions& options = {});

}  // namespace mp::subprocess
