#include "mp/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "mp/detail/deadline.hpp"
#include "mp/detail/fd.hpp"
#include "mp/detail/identity.hpp"
#include "mp/detail/syscall.hpp"

namespace mp::subprocess {
namespace {

using detail::check;
using detail::Deadline;
using detail::FileDescriptor;
using detail::retry;

std::string quoted_list(const std::vector<std::string>& args) {
  std::string text = "[";
  for (const std::string& arg : args) {
    if (text.size() > 1) text += ", ";
    text += "'" + arg + "'";
  }
  return text + "]";
}

std::string seconds_text(std::chrono::nanoseconds timeout) {
  std::string text = std::to_string(std::chrono::duration<double>(timeout).count());
  text.erase(text.find_last_not_of('0') + 1);
  if (text.back() == '.') text.pop_back();
  return text;
}

// posix_spawn and its helpers return the error instead of setting errno.
template <class F>
int spawn_call(const char* call, F&& fn) {
  return retry(call, [&] {
    int code = fn();
    if (code == 0) return 0;
    errno = code;
    return -1;
  });
}

int returncode_from_status(int status) {
  return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

void validate(const std::vector<std::string>& args, const PopenOptions& options) {
  if (args.empty()) throw ValueError("Popen: args is empty");
  for (std::size_t i = 0; i < args.size(); ++i)
    if (args[i].find('\0') != std::string::npos)
      throw ValueError("Popen: embedded null byte in args[" + std::to_string(i) + "]");
  auto check_variables = [&](const Environment& variables) {
    for (const auto& [key, value] : variables)
      if (key.empty() || key.find_first_of(std::string("=\0", 2)) != std::string::npos ||
          value.find('\0') != std::string::npos)
        throw ValueError("Popen(" + quoted_list(args) + "): illegal environment variable '" + key +
                         "'");
  };
  if (options.env) check_variables(*options.env);
  check_variables(options.env_add);
  auto check_stream = [&](const Stream& stream, const char* which) {
    if (stream.kind == Stream::Kind::fd && stream.fd < 0)
      throw ValueError("Popen(" + quoted_list(args) + "): " + which +
                       " is a negative descriptor (" + std::to_string(stream.fd) + ")");
    if (stream.kind == Stream::Kind::stdout_ && std::strcmp(which, "err") != 0)
      throw ValueError("Popen(" + quoted_list(args) + "): STDOUT is only valid for err, not " +
                       which);
  };
  check_stream(options.in, "in");
  check_stream(options.out, "out");
  check_stream(options.err, "err");
}

// "KEY=VALUE" strings: env (or the inherited environment), then env_add over it.
std::vector<std::string> child_environment(const PopenOptions& options) {
  std::vector<std::string> entries;
  auto overridden = [&](std::string_view entry) {
    return options.env_add.count(std::string(entry.substr(0, entry.find('=')))) != 0;
  };
  if (options.env) {
    for (const auto& [key, value] : *options.env)
      if (!options.env_add.count(key)) entries.push_back(key + "=" + value);
  } else {
    for (char** entry = environ; entry && *entry; ++entry)
      if (!overridden(*entry)) entries.emplace_back(*entry);
  }
  for (const auto& [key, value] : options.env_add) entries.push_back(key + "=" + value);
  return entries;
}

// The PATH the child will see, as Python's os.get_exec_path(env).
std::string search_path(const PopenOptions& options) {
  if (auto added = options.env_add.find("PATH"); added != options.env_add.end())
    return added->second;
  if (options.env) {
    auto path = options.env->find("PATH");
    if (path != options.env->end()) return path->second;
  } else if (const char* path = std::getenv("PATH")) {
    return path;
  }
  return "/bin:/usr/bin";
}

// Where execvp would look for `program`, in order.
std::vector<std::string> candidates(const std::string& program, const PopenOptions& options) {
  if (program.find('/') != std::string::npos) return {program};
  std::vector<std::string> paths;
  std::string path = search_path(options);
  for (std::size_t start = 0;;) {
    std::size_t end = path.find(':', start);
    std::string dir = path.substr(start, end - start);
    paths.push_back((dir.empty() ? "." : dir) + "/" + program);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return paths;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> result;
  result.reserve(strings.size() + 1);
  for (std::string& text : strings) result.push_back(text.data());
  result.push_back(nullptr);
  return result;
}

class SpawnFileActions {
 public:
  explicit SpawnFileActions(const std::string& object) : object_(object) {
    add("posix_spawn_file_actions_init", posix_spawn_file_actions_init(&actions_));
  }
  ~SpawnFileActions() { posix_spawn_file_actions_destroy(&actions_); }
  SpawnFileActions(const SpawnFileActions&) = delete;
  SpawnFileActions& operator=(const SpawnFileActions&) = delete;

  void dup2(int from, int to) {
    add("posix_spawn_file_actions_adddup2", posix_spawn_file_actions_adddup2(&actions_, from, to));
  }
  void open_devnull(int to) {
    add("posix_spawn_file_actions_addopen",
        posix_spawn_file_actions_addopen(&actions_, to, "/dev/null", to == 0 ? O_RDONLY : O_WRONLY,
                                         0));
  }
  void chdir(const std::string& dir) {
    add("posix_spawn_file_actions_addchdir_np",
        posix_spawn_file_actions_addchdir_np(&actions_, dir.c_str()));
  }
  void close_from(int lowest) {
    add("posix_spawn_file_actions_addclosefrom_np",
        posix_spawn_file_actions_addclosefrom_np(&actions_, lowest));
  }
  const posix_spawn_file_actions_t* get() const noexcept { return &actions_; }

 private:
  void add(const char* call, int code) {
    if (code != 0) detail::throw_os_error(call, code, object_);
  }
  posix_spawn_file_actions_t actions_;
  const std::string& object_;
};

// Python's restore_signals: a child must not inherit the SIGPIPE/SIGXFSZ
// dispositions an embedding program (or a Python parent) set to SIG_IGN.
class SpawnAttributes {
 public:
  explicit SpawnAttributes(const std::string& object) {
    int code = posix_spawnattr_init(&attributes_);
    if (code != 0) detail::throw_os_error("posix_spawnattr_init", code, object);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGXFSZ);
    posix_spawnattr_setsigdefault(&attributes_, &defaults);
    posix_spawnattr_setflags(&attributes_, POSIX_SPAWN_SETSIGDEF);
  }
  ~SpawnAttributes() { posix_spawnattr_destroy(&attributes_); }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  const posix_spawnattr_t* get() const noexcept { return &attributes_; }

 private:
  posix_spawnattr_t attributes_;
};

struct PipePair {
  FileDescriptor read, write;
};

// A descriptor numbered 0..2 would be overwritten by an earlier dup2 onto the
// child's 0..2 (out=2, err=1; or a daemon parent whose own 0..2 are closed, so
// pipe2 hands those numbers out): such a source is copied above 2 first.
int copy_above_stdio(int fd, const std::string& object) {
  return check(
      "fcntl", [&] { return ::fcntl(fd, F_DUPFD_CLOEXEC, 3); }, object);
}

PipePair make_pipe(const std::string& object) {
  int ends[2];
  check(
      "pipe2", [&] { return ::pipe2(ends, O_CLOEXEC); }, object);
  PipePair pipe{FileDescriptor(ends[0]), FileDescriptor(ends[1])};
  for (FileDescriptor* end : {&pipe.read, &pipe.write})
    if (end->get() < 3) end->reset(copy_above_stdio(end->get(), object));
  return pipe;
}

// The descriptors one child will see as 0, 1 and 2, and the parent's ends of
// its pipes. Everything is close-on-exec in the parent, so a process another
// thread spawns meanwhile inherits none of it.
class ChildStreams {
 public:
  ChildStreams(const PopenOptions& options, const std::string& object)
      : object_(object), actions_(object) {
    connect(options.in, 0, stdin_);
    connect(options.out, 1, stdout_);
    connect(options.err, 2, stderr_);
    if (options.cwd) actions_.chdir(*options.cwd);
    if (options.close_fds) actions_.close_from(3);
  }
  const posix_spawn_file_actions_t* actions() const noexcept { return actions_.get(); }
  FileDescriptor stdin_, stdout_, stderr_;

 private:
  void connect(const Stream& stream, int target, FileDescriptor& parent_end) {
    switch (stream.kind) {
      case Stream::Kind::inherit:
        return;
      case Stream::Kind::devnull:
        return actions_.open_devnull(target);
      case Stream::Kind::stdout_:
        return actions_.dup2(1, target);
      case Stream::Kind::pipe: {
        PipePair pipe = make_pipe(object_);
        FileDescriptor& child_end = target == 0 ? pipe.read : pipe.write;
        parent_end = std::move(target == 0 ? pipe.write : pipe.read);
        actions_.dup2(child_end.get(), target);
        keep_.push_back(std::move(child_end));
        return;
      }
      case Stream::Kind::fd: {
        if (stream.fd == target) return;
        int source = stream.fd;
        if (source < 3) {
          source = copy_above_stdio(source, object_);
          keep_.emplace_back(source);
        }
        return actions_.dup2(source, target);
      }
    }
  }
  const std::string& object_;
  SpawnFileActions actions_;
  std::vector<FileDescriptor> keep_;  // child ends, closed in the parent after the spawn
};

// Spawns the first candidate that exists and can be executed, as execvp does:
// EACCES moves on to the next PATH entry and is reported if nothing better is
// found. A failed exec comes back synchronously from glibc's CLONE_VFORK child.
pid_t spawn(const std::vector<std::string>& args, const PopenOptions& options,
            const ChildStreams& streams, const std::string& object) {
  std::vector<std::string> argv_strings = args;
  std::vector<std::string> env_strings = child_environment(options);
  std::vector<char*> argv = pointers(argv_strings);
  std::vector<char*> envp = pointers(env_strings);
  SpawnAttributes attributes(object);
  int failure = ENOENT;
  for (const std::string& candidate : candidates(args[0], options)) {
    bool searched = candidate != args[0];
    if (searched && retry("access", [&] { return ::access(candidate.c_str(), X_OK); }) == -1) {
      if (errno == EACCES) failure = EACCES;
      continue;
    }
    pid_t pid = -1;
    if (spawn_call("posix_spawn", [&] {
          return ::posix_spawn(&pid, candidate.c_str(), streams.actions(), attributes.get(),
                               argv.data(), envp.data());
        }) == 0)
      return pid;
    failure = errno;
    if (!searched || (failure != EACCES && failure != ENOENT && failure != ENOTDIR)) break;
  }
  detail::throw_os_error("exec", failure, object);
}

int open_pidfd(pid_t pid) {
  // Without pidfd_open (kernels before 5.3) wait(timeout) polls instead.
  return static_cast<int>(retry("pidfd_open", [&] { return ::syscall(SYS_pidfd_open, pid, 0); }));
}

void set_nonblocking(int fd, const std::string& object) {
  int flags = check(
      "fcntl", [&] { return ::fcntl(fd, F_GETFL); }, object);
  if (flags & O_NONBLOCK) return;
  check(
      "fcntl", [&] { return ::fcntl(fd, F_SETFL, flags | O_NONBLOCK); }, object);
}

void close_fd(int& fd) noexcept { FileDescriptor(std::exchange(fd, -1)); }

// Children whose Popen was destroyed while they ran. One thread per process,
// started at the first adoption, polls all their pidfds (and an eventfd that
// announces newcomers) and reaps each child as it ends: however many Popens
// are dropped, one thread, and no zombie outlives its child for long.
class Orphanage {
 public:
  explicit Orphanage(pid_t owner) : owner(owner) {}
  const pid_t owner;  // a forked child starts its own; the parent's thread is not in it

  // Takes the pidfd over. Throws if no eventfd or thread can be had.
  void adopt(pid_t pid, int pidfd) {
    std::lock_guard lock(mutex_);
    if (!wake_) {
      wake_.reset(check("eventfd", [] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }, "Popen reaper"));
      std::thread([this] { reap_forever(); }).detach();
    }
    orphans_.push_back({pid, FileDescriptor(pidfd)});
    std::uint64_t one = 1;
    retry("write", [&] { return ::write(wake_.get(), &one, sizeof one); });
  }

 private:
  struct Orphan {
    pid_t pid;
    FileDescriptor pidfd;
  };

  void reap_forever() {
    std::vector<pollfd> watched;
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        watched.assign(1, pollfd{wake_.get(), POLLIN, 0});
        for (const Orphan& orphan : orphans_) watched.push_back({orphan.pidfd.get(), POLLIN, 0});
      }
      if (retry("poll", [&] { return ::poll(watched.data(), watched.size(), -1); }) < 0) continue;
      std::uint64_t count;
      retry("read", [&] { return ::read(wake_.get(), &count, sizeof count); });
      std::lock_guard lock(mutex_);
      std::erase_if(orphans_, [](const Orphan& orphan) {
        pollfd exited{orphan.pidfd.get(), POLLIN, 0};
        return retry("poll", [&] { return ::poll(&exited, 1, 0); }) > 0 &&
               retry("waitpid", [&] { return ::waitpid(orphan.pid, nullptr, WNOHANG); }) != 0;
      });
    }
  }

  std::mutex mutex_;
  FileDescriptor wake_;
  std::vector<Orphan> orphans_;
};

Orphanage& orphanage() {
  static std::atomic<Orphanage*> current{nullptr};
  Orphanage* known = current.load(std::memory_order_acquire);
  const pid_t me = detail::current_pid();
  if (known && known->owner == me) return *known;
  // First use, or the parent's copy after fork (left as it is: its thread and
  // children are the parent's).
  auto* fresh = new Orphanage(me);
  if (current.compare_exchange_strong(known, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;  // another thread of this process was first
  return *known;
}

}  // namespace

Popen::Popen(const std::vector<std::string>& args, const PopenOptions& options) : args_(args) {
  validate(args, options);
  std::string object = name();
  if (options.cwd) {
    // posix_spawn reports a failed chdir and a failed exec alike: check the
    // directory first so the error says which one it was.
    FileDescriptor dir(check(
        "chdir", [&] { return ::open(options.cwd->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC); },
        object + " cwd='" + *options.cwd + "'"));
  }
  ChildStreams streams(options, object);
  pid_ = spawn(args, options, streams, object);
  pidfd_ = open_pidfd(pid_);
  stdin_ = streams.stdin_.release();
  stdout_ = streams.stdout_.release();
  stderr_ = streams.stderr_.release();
}

Popen::~Popen() {
  close_pipes();
  if (pid_ > 0 && !returncode_ && pidfd_ >= 0) {
    try {
      if (!reap(false)) orphanage().adopt(pid_, std::exchange(pidfd_, -1));
    } catch (...) {
      // No thread or eventfd to spare: the child becomes a zombie until this
      // process exits. So does it on kernels without pidfd_open.
    }
  }
  close_fd(pidfd_);
}

Popen::Popen(Popen&& other) noexcept
    : args_(std::move(other.args_)),
      pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::exchange(other.pidfd_, -1)),
      stdin_(std::exchange(other.stdin_, -1)),
      stdout_(std::exchange(other.stdout_, -1)),
      stderr_(std::exchange(other.stderr_, -1)),
      returncode_(other.returncode_),
      communication_started_(other.communication_started_),
      input_(std::move(other.input_)),
      input_offset_(other.input_offset_),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)) {}

Popen& Popen::operator=(Popen&& other) noexcept {
  if (this != &other) {
    this->~Popen();
    new (this) Popen(std::move(other));
  }
  return *this;
}

std::string Popen::name() const { return "Popen(" + quoted_list(args_) + ")"; }

void Popen::close_stdin() noexcept { close_fd(stdin_); }

void Popen::close_pipes() noexcept {
  close_fd(stdin_);
  close_fd(stdout_);
  close_fd(stderr_);
}

bool Popen::reap(bool block) {
  if (returncode_) return true;
  int status = 0;
  pid_t result = retry("waitpid", [&] { return ::waitpid(pid_, &status, block ? 0 : WNOHANG); });
  if (result == 0) return false;
  if (result == -1) {
    // Someone else reaped it (SIGCHLD ignored, waitpid(-1)): Python says 0 too.
    if (errno != ECHILD) detail::throw_os_error("waitpid", errno, name());
    status = 0;
  }
  returncode_ = returncode_from_status(status);
  close_fd(pidfd_);
  return true;
}

std::optional<int> Popen::poll() {
  reap(false);
  return returncode_;
}

int Popen::wait() {
  reap(true);
  return *returncode_;
}

int Popen::wait_for(std::chrono::nanoseconds timeout) {
  Deadline deadline = Deadline::after(timeout);
  auto pause = std::chrono::microseconds(500);
  while (!reap(false)) {
    if (deadline.expired())
      throw TimeoutExpired(name() + ".wait: timed out after " + seconds_text(timeout) + " seconds",
                           out_, err_);
    if (pidfd_ >= 0) {
      pollfd exited{pidfd_, POLLIN, 0};
      check(
          "poll", [&] { return ::poll(&exited, 1, deadline.poll_milliseconds()); }, name());
    } else {
      pause = std::min(pause * 2, std::chrono::microseconds(50'000));
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(pause, *deadline.remaining()));
    }
  }
  return *returncode_;
}

std::pair<std::string, std::string> Popen::communicate(
    std::optional<std::string> input, std::optional<std::chrono::nanoseconds> timeout) {
  const std::string object = name() + ".communicate";
  if (input && stdin_ < 0 && !communication_started_)
    throw ValueError(object + ": input given but stdin is not a PIPE");
  if (input && communication_started_)
    throw ValueError(object + ": cannot send input after starting communication");
  Deadline deadline = timeout ? Deadline::after(*timeout) : Deadline::never();
  if (!communication_started_) {
    communication_started_ = true;
    input_ = input.value_or(std::string());
    for (int fd : {stdin_, stdout_, stderr_})
      if (fd >= 0) set_nonblocking(fd, object);
    if (input_.empty()) close_stdin();
  }
  detail::SigpipeSuppressed no_sigpipe;
  constexpr std::size_t chunk = 64 * 1024;
  auto read_some = [&](int& fd, std::string& into) {
    std::size_t used = into.size();
    into.resize(used + chunk);
    auto got = retry("read", [&] { return ::read(fd, into.data() + used, chunk); });
    into.resize(used + static_cast<std::size_t>(std::max<ssize_t>(got, 0)));
    if (got == 0) return close_fd(fd);
    if (got == -1 && errno != EAGAIN) detail::throw_os_error("read", errno, object);
  };
  while (stdin_ >= 0 || stdout_ >= 0 || stderr_ >= 0) {
    pollfd fds[3] = {{stdin_, POLLOUT, 0}, {stdout_, POLLIN, 0}, {stderr_, POLLIN, 0}};
    int ready = check(
        "poll", [&] { return ::poll(fds, 3, deadline.poll_milliseconds()); }, object);
    if (ready == 0 && deadline.expired())
      throw TimeoutExpired(object + ": timed out after " + seconds_text(*timeout) + " seconds",
                           out_, err_);
    if (fds[0].revents) {
      auto wrote = retry("write", [&] {
        return ::write(stdin_, input_.data() + input_offset_, input_.size() - input_offset_);
      });
      if (wrote > 0) input_offset_ += static_cast<std::size_t>(wrote);
      // EPIPE: the child stopped reading; the rest of the input is dropped, as in Python.
      if (wrote == -1 && errno != EAGAIN && errno != EPIPE)
        detail::throw_os_error("write", errno, object);
      if (input_offset_ == input_.size() || (wrote == -1 && errno == EPIPE)) close_stdin();
    }
    if (fds[1].revents) read_some(stdout_, out_);
    if (fds[2].revents) read_some(stderr_, err_);
  }
  if (timeout) {
    try {
      wait_for(deadline.remaining().value_or(std::chrono::nanoseconds::zero()));
    } catch (const TimeoutExpired&) {
      throw TimeoutExpired(object + ": timed out after " + seconds_text(*timeout) + " seconds",
                           out_, err_);
    }
  } else {
    wait();
  }
  input_.clear();
  return {std::exchange(out_, {}), std::exchange(err_, {})};
}

void Popen::send_signal(int sig) {
  if (poll()) return;
  // pidfd_send_signal cannot hit a recycled pid; kill is safe too while the
  // child is unreaped, which poll() just confirmed.
  int sent = pidfd_ >= 0
                 ? static_cast<int>(retry(
                       "pidfd_send_signal",
                       [&] { return ::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0); }))
                 : retry("kill", [&] { return ::kill(pid_, sig); });
  if (sent == -1 && errno != ESRCH) detail::throw_os_error("send_signal", errno, name());
}

void Popen::terminate() { send_signal(SIGTERM); }
void Popen::kill() { send_signal(SIGKILL); }

namespace {

// run and check_output: they differ only in which streams are captured.
CompletedProcess run_with(const std::vector<std::string>& args, const RunOptions& options,
                          Stream out, Stream err) {
  Popen process(args, {.in = options.input ? PIPE : INHERIT,
                       .out = out,
                       .err = options.stderr_to_stdout ? STDOUT : err,
                       .cwd = options.cwd,
                       .env = options.env,
                       .env_add = options.env_add});
  std::pair<std::string, std::string> output;
  try {
    output = process.communicate(options.input, options.timeout);
  } catch (...) {
    // Python's run: kill and reap before the exception leaves, so no child
    // outlives a timeout. Grandchildren holding the pipes are not waited for.
    process.kill();
    process.wait();
    throw;
  }
  CompletedProcess result{args, *process.returncode(), std::move(output.first),
                          std::move(output.second)};
  if (options.check && result.returncode != 0) {
    std::string what = "run: command " + quoted_list(args);
    if (result.returncode < 0) {
      const char* signal_name = sigabbrev_np(-result.returncode);
      what += " died with signal " +
              (signal_name ? "SIG" + std::string(signal_name) : std::to_string(-result.returncode));
    } else {
      what += " returned non-zero exit status " + std::to_string(result.returncode);
    }
    throw CalledProcessError(what, result.returncode, std::move(result.out), std::move(result.err));
  }
  return result;
}

}  // namespace

CompletedProcess run(const std::vector<std::string>& args, const RunOptions& options) {
  Stream captured = options.capture_output ? PIPE : INHERIT;
  return run_with(args, options, captured, captured);
}

std::string check_output(const std::vector<std::string>& args, const RunOptions& options) {
  RunOptions checked = options;
  checked.check = true;
  return run_with(args, checked, PIPE, options.capture_output ? PIPE : INHERIT).out;
}

}  // namespace mp::subprocess
