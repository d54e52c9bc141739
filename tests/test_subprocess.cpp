// mp::subprocess against real commands (/bin/sh, true, false, cat, sleep,
// env): run's options, check_output, Popen's streams and signals,
// communicate without deadlock, start failures, and no zombies.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "mp/detail/syscall.hpp"
#include "mp/subprocess.hpp"

using namespace std::chrono_literals;
namespace sp = mp::subprocess;

namespace {

constexpr auto kGenerous = 30s;  // every blocking call in this suite is bounded

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A zombie still answers kill(pid, 0); only a reaped pid gives ESRCH.
bool reaped_within(pid_t pid, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (::kill(pid, 0) == -1 && errno == ESRCH) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

struct TempDir {
  TempDir() {
    char pattern[] = "/tmp/mp_subprocess_XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~TempDir() { sp::run({"rm", "-rf", path}); }
  std::string write(const std::string& name, const std::string& text, mode_t mode) const {
    std::string file = path + "/" + name;
    std::ofstream(file) << text;
    ::chmod(file.c_str(), mode);
    return file;
  }
  std::string path;
};

sp::RunOptions captured() {
  sp::RunOptions options;
  options.capture_output = true;
  options.timeout = kGenerous;
  return options;
}

}  // namespace

TEST_SUITE("subprocess") {
  TEST_CASE("run returns the args and the exit status") {
    auto ok = sp::run({"true"});
    CHECK(ok.returncode == 0);
    CHECK(ok.args == std::vector<std::string>{"true"});
    CHECK(ok.out.empty());
    CHECK(sp::run({"false"}).returncode == 1);
    CHECK(sp::run({"/bin/sh", "-c", "exit 42"}).returncode == 42);
  }

  TEST_CASE("returncode is negative for death by signal") {
    CHECK(sp::run({"/bin/sh", "-c", "kill -9 $$"}).returncode == -SIGKILL);
    CHECK(sp::run({"/bin/sh", "-c", "kill -TERM $$"}).returncode == -SIGTERM);
  }

  TEST_CASE("capture_output keeps stdout and stderr apart") {
    auto result = sp::run({"/bin/sh", "-c", "echo out; echo err >&2"}, captured());
    CHECK(result.out == "out\n");
    CHECK(result.err == "err\n");
  }

  TEST_CASE("stderr_to_stdout merges both streams in order (Go's CombinedOutput)") {
    auto options = captured();
    options.stderr_to_stdout = true;
    auto result = sp::run({"/bin/sh", "-c", "echo one; echo two >&2; echo three"}, options);
    CHECK(result.out == "one\ntwo\nthree\n");
    CHECK(result.err.empty());
  }

  TEST_CASE("check throws CalledProcessError carrying returncode, out and err") {
    auto options = captured();
    options.check = true;
    try {
      sp::run({"/bin/sh", "-c", "echo partial; echo oops >&2; exit 3"}, options);
      FAIL("no exception");
    } catch (const sp::CalledProcessError& error) {
      CHECK(error.returncode() == 3);
      CHECK(error.out() == "partial\n");
      CHECK(error.err() == "oops\n");
      CHECK(contains(error.what(), "'/bin/sh', '-c'"));
      CHECK(contains(error.what(), "non-zero exit status 3"));
    }
    try {
      sp::run({"/bin/sh", "-c", "kill -9 $$"}, options);
      FAIL("no exception");
    } catch (const sp::CalledProcessError& error) {
      CHECK(error.returncode() == -9);
      CHECK(contains(error.what(), "died with signal SIGKILL"));
    }
    options.check = true;
    CHECK_NOTHROW(sp::run({"true"}, options));
  }

  TEST_CASE("input is written to stdin and stdin is closed after it") {
    auto options = captured();
    options.input = "hello\nworld\n";
    CHECK(sp::run({"cat"}, options).out == "hello\nworld\n");
    options.input = "";
    CHECK(sp::run({"cat"}, options).out.empty());  // EOF at once, no hang
  }

  TEST_CASE(
      "timeout throws TimeoutExpired with the partial output, and the child is killed and reaped") {
    auto options = captured();
    options.timeout = 300ms;
    auto start = std::chrono::steady_clock::now();
    try {
      sp::run({"/bin/sh", "-c", "echo $$; exec sleep 30"}, options);
      FAIL("no exception");
    } catch (const sp::TimeoutExpired& error) {
      CHECK(std::chrono::steady_clock::now() - start < 10s);
      CHECK(contains(error.what(), "timed out after 0.3 seconds"));
      pid_t pid = std::stoi(error.out());
      CHECK(::kill(pid, 0) == -1);  // already reaped when run() threw
      CHECK(errno == ESRCH);
    }
    // The deadline passes after the child closed its pipes, while waiting for it.
    CHECK_THROWS_AS(sp::run({"/bin/sh", "-c", "exec >&- 2>&-; sleep 30"}, options),
                    sp::TimeoutExpired);
    CHECK(std::chrono::steady_clock::now() - start < 20s);
  }

  TEST_CASE("cwd runs the child in that directory; a bad cwd names it") {
    auto options = captured();
    options.cwd = "/";
    CHECK(sp::run({"pwd"}, options).out == "/\n");
    TempDir dir;
    dir.write("local.sh", "#!/bin/sh\necho local\n", 0755);
    options.cwd = dir.path;
    CHECK(sp::run({"./local.sh"}, options).out ==
          "local\n");  // relative to the new cwd, as in Python
    options.cwd = "/no/such/dir";
    try {
      sp::run({"pwd"}, options);
      FAIL("no exception");
    } catch (const mp::FileNotFoundError& error) {
      CHECK(contains(error.what(), "/no/such/dir"));
      CHECK(contains(error.what(), "'pwd'"));
      CHECK(error.code() == ENOENT);
    }
  }

  TEST_CASE("env replaces the environment; env_add extends the inherited one") {
    auto options = captured();
    options.env = sp::Environment{{"FOO", "bar"}, {"EMPTY", ""}};
    CHECK(sp::run({"env"}, options).out == "EMPTY=\nFOO=bar\n");  // found in the default PATH

    ::setenv("MP_SUBPROCESS_INHERITED", "yes", 1);
    options.env.reset();
    options.env_add = {{"MP_SUBPROCESS_ADDED", "1"}, {"HOME", "/override"}};
    auto out = sp::run({"env"}, options).out;
    CHECK(contains(out, "MP_SUBPROCESS_INHERITED=yes\n"));
    CHECK(contains(out, "MP_SUBPROCESS_ADDED=1\n"));
    CHECK(contains(out, "HOME=/override\n"));
    CHECK(out.find("\nHOME=") == out.rfind("\nHOME="));  // overridden, not duplicated
    ::unsetenv("MP_SUBPROCESS_INHERITED");

    options.env = sp::Environment{{"A", "1"}};
    options.env_add = {{"B", "2"}};
    CHECK(sp::run({"env"}, options).out == "A=1\nB=2\n");
  }

  TEST_CASE("the executable is searched in the child's PATH") {
    TempDir dir;
    dir.write("mp-hello", "#!/bin/sh\necho hello from PATH\n", 0755);
    auto options = captured();
    options.env_add = {{"PATH", "/nonexistent:" + dir.path + ":/usr/bin:/bin"}};
    CHECK(sp::run({"mp-hello"}, options).out == "hello from PATH\n");
    CHECK(sp::run({"true"}, options).returncode == 0);
  }

  TEST_CASE("a command that cannot be started throws, naming the command and the reason") {
    try {
      sp::run({"mp-no-such-command", "arg"});
      FAIL("no exception");
    } catch (const mp::FileNotFoundError& error) {
      CHECK(error.code() == ENOENT);
      CHECK(contains(error.what(), "mp-no-such-command"));
      CHECK(contains(error.what(), "No such file or directory"));
    }
    CHECK_THROWS_AS(sp::run({"/no/such/program"}), mp::FileNotFoundError);

    TempDir dir;
    std::string not_executable = dir.write("plain", "echo never\n", 0644);
    for (const std::string& command : {not_executable, dir.path}) {
      try {
        sp::run({command});
        FAIL("no exception");
      } catch (const mp::OSError& error) {
        CHECK(error.code() == EACCES);
        CHECK(contains(error.what(), command));
        CHECK(contains(error.what(), "Permission denied"));
      }
    }
    // In PATH but not executable: EACCES, as execvp reports it.
    auto options = captured();
    options.env_add = {{"PATH", dir.path}};
    try {
      sp::run({"plain"}, options);
      FAIL("no exception");
    } catch (const mp::OSError& error) {
      CHECK(error.code() == EACCES);
    }
    // A script whose interpreter is missing: the exec errno comes back.
    std::string bad_interpreter = dir.write("bad", "#!/no/such/interpreter\n", 0755);
    CHECK_THROWS_AS(sp::run({bad_interpreter}), mp::FileNotFoundError);
  }

  TEST_CASE("check_output returns stdout and checks the status") {
    CHECK(sp::check_output({"/bin/sh", "-c", "echo captured; echo to-inherited-stderr >&2"}) ==
          "captured\n");
    sp::RunOptions merged;
    merged.stderr_to_stdout = true;
    CHECK(sp::check_output({"/bin/sh", "-c", "echo a; echo b >&2"}, merged) == "a\nb\n");
    try {
      sp::check_output({"/bin/sh", "-c", "echo before; exit 2"});
      FAIL("no exception");
    } catch (const sp::CalledProcessError& error) {
      CHECK(error.returncode() == 2);
      CHECK(error.out() == "before\n");
    }
  }

  TEST_CASE("Popen streams: PIPE, DEVNULL, INHERIT, a file descriptor, STDOUT") {
    SUBCASE("DEVNULL stdin reads as empty; DEVNULL stdout swallows") {
      sp::Popen process({"cat"}, {.in = sp::DEVNULL, .out = sp::PIPE});
      CHECK(process.communicate({}, kGenerous).first.empty());
      CHECK(process.returncode() == 0);
      sp::Popen quiet({"/bin/sh", "-c", "echo hidden"}, {.out = sp::DEVNULL});
      CHECK(quiet.wait(kGenerous) == 0);
    }
    SUBCASE("a file descriptor: the child writes into the parent's pipe; the parent keeps its fd") {
      int ends[2];
      REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
      sp::Popen process({"/bin/sh", "-c", "echo via-fd; echo err-too >&2"},
                        {.out = ends[1], .err = sp::STDOUT});
      CHECK(process.stdout_fd() == -1);
      CHECK(process.wait(kGenerous) == 0);
      CHECK(::fcntl(ends[1], F_GETFD) != -1);  // still ours
      ::close(ends[1]);
      char buffer[64] = {};
      CHECK(::read(ends[0], buffer, sizeof buffer) > 0);
      CHECK(std::string(buffer) == "via-fd\nerr-too\n");
      ::close(ends[0]);
    }
    SUBCASE("descriptors 1 and 2 swapped: one dup2 does not clobber the other") {
      int out_pipe[2], err_pipe[2];
      REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
      REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
      // A forked child owns 1 and 2 as the two pipes and starts a command with
      // them swapped; it reports only through its exit status and the pipes.
      pid_t child = ::fork();
      REQUIRE(child >= 0);
      if (child == 0) {
        ::dup2(out_pipe[1], 1);
        ::dup2(err_pipe[1], 2);
        try {
          sp::Popen process({"/bin/sh", "-c", "echo to-out; echo to-err >&2"},
                            {.out = 2, .err = 1});
          ::_exit(process.wait(kGenerous));
        } catch (...) {
          ::_exit(99);
        }
      }
      ::close(out_pipe[1]);
      ::close(err_pipe[1]);
      int status = 0;
      REQUIRE(::waitpid(child, &status, 0) == child);
      CHECK(WEXITSTATUS(status) == 0);
      char out[64] = {}, err[64] = {};
      CHECK(::read(out_pipe[0], out, sizeof out - 1) > 0);
      CHECK(::read(err_pipe[0], err, sizeof err - 1) > 0);
      CHECK(std::string(out) == "to-err\n");
      CHECK(std::string(err) == "to-out\n");
      ::close(out_pipe[0]);
      ::close(err_pipe[0]);
    }
    SUBCASE("stdin from a file descriptor") {
      TempDir dir;
      std::string file = dir.write("input.txt", "from a file\n", 0644);
      int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
      sp::Popen process({"cat"}, {.in = fd, .out = sp::PIPE});
      CHECK(process.communicate({}, kGenerous).first == "from a file\n");
      ::close(fd);
    }
    SUBCASE("stdout and stderr descriptors 1 and 2 given explicitly are simply inherited") {
      sp::Popen process({"true"}, {.out = 1, .err = 2});
      CHECK(process.wait(kGenerous) == 0);
    }
  }

  TEST_CASE("pipes work in a parent whose own 0, 1 and 2 are closed (a daemon)") {
    int report[2];
    REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::close(0);
      ::close(1);
      ::close(2);
      try {
        // pipe2 now hands out 0, 1 and 2: the stderr pipe's child end would be
        // fd 1, which the DEVNULL open for stdout overwrites unless it is moved.
        sp::Popen process({"/bin/sh", "-c", "echo err >&2"},
                          {.in = sp::DEVNULL, .out = sp::DEVNULL, .err = sp::PIPE});
        auto [out, err] = process.communicate({}, kGenerous);
        sp::Popen cat({"cat"}, {.in = sp::PIPE, .out = sp::PIPE, .err = sp::PIPE});
        auto echoed = cat.communicate(std::string("daemon"), kGenerous).first;
        char verdict = err == "err\n" && echoed == "daemon" ? 'y' : 'n';
        [[maybe_unused]] auto written = ::write(report[1], &verdict, 1);
      } catch (...) {
      }
      ::_exit(0);
    }
    ::close(report[1]);
    char verdict = 0;
    CHECK(::read(report[0], &verdict, 1) == 1);  // the child's own bounded communicate ends this
    CHECK(verdict == 'y');
    ::close(report[0]);
    CHECK(::waitpid(child, nullptr, 0) == child);
  }

  TEST_CASE("only stdin, stdout and stderr are inherited unless close_fds is false") {
    int fd = ::open("/dev/null", O_RDONLY);  // deliberately not close-on-exec
    REQUIRE(::dup2(fd, 57) == 57);
    ::close(fd);
    const std::vector<std::string> probe{"/bin/sh", "-c", "[ -e /proc/$$/fd/57 ]"};
    CHECK(sp::run(probe).returncode == 1);
    sp::Popen leaky(probe, {.close_fds = false});
    CHECK(leaky.wait(kGenerous) == 0);
    ::close(57);
  }

  TEST_CASE("Popen: pid, poll, wait(timeout), kill, terminate, send_signal") {
    sp::Popen process({"sleep", "30"});
    CHECK(process.pid() > 0);
    CHECK_FALSE(process.poll());
    CHECK_FALSE(process.returncode());
    CHECK_THROWS_AS(process.wait(100ms), sp::TimeoutExpired);
    CHECK_THROWS_WITH_AS(process.wait(std::chrono::duration<double>(0.05)),
                         doctest::Contains("'sleep', '30'"), sp::TimeoutExpired);
    process.kill();
    CHECK(process.wait(kGenerous) == -SIGKILL);
    CHECK(process.poll() == -SIGKILL);
    CHECK_NOTHROW(process.kill());  // reaped: a no-op, never a recycled pid

    sp::Popen terminated({"sleep", "30"});
    terminated.terminate();
    CHECK(terminated.wait(kGenerous) == -SIGTERM);

    sp::Popen signalled({"sleep", "30"});
    signalled.send_signal(SIGUSR1);
    CHECK(signalled.wait(kGenerous) == -SIGUSR1);

    sp::Popen quick({"true"});
    auto until = std::chrono::steady_clock::now() + kGenerous;
    while (!quick.poll() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(1ms);
    CHECK(quick.returncode() == 0);
  }

  TEST_CASE("without pidfds (kernels before 5.3) wait(timeout) polls and kill() uses kill(2)") {
    mp::detail::inject_fault("pidfd_open", ENOSYS);
    sp::Popen process({"sleep", "30"});
    auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(process.wait(200ms), sp::TimeoutExpired);
    CHECK(std::chrono::steady_clock::now() - start >= 200ms);
    process.kill();
    CHECK(process.wait(kGenerous) == -SIGKILL);
    sp::Popen quick({"true"});  // pidfds are back
    CHECK(quick.wait(kGenerous) == 0);
  }

  TEST_CASE("communicate passes 100 MiB through cat both ways without deadlock") {
    std::string input(100 << 20, '\0');
    for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>(i * 131 % 251);
    sp::Popen process({"cat"}, {.in = sp::PIPE, .out = sp::PIPE, .err = sp::PIPE});
    auto [out, err] = process.communicate(input, 120s);
    CHECK(out.size() == input.size());
    CHECK(out == input);
    CHECK(err.empty());
    CHECK(process.returncode() == 0);
  }

  TEST_CASE("communicate serves stderr while stdin is still being written") {
    // The child fills stderr (16x a pipe buffer) before reading any stdin: a
    // parent that wrote all input first would deadlock.
    std::string input(4 << 20, 'x');
    sp::Popen process({"/bin/sh", "-c", "head -c 1048576 /dev/zero >&2; cat"},
                      {.in = sp::PIPE, .out = sp::PIPE, .err = sp::PIPE});
    auto [out, err] = process.communicate(input, 60s);
    CHECK(out == input);
    CHECK(err.size() == 1048576);
  }

  TEST_CASE("a child that stops reading stdin neither kills nor blocks the parent") {
    sp::Popen process({"true"}, {.in = sp::PIPE});
    auto [out, err] = process.communicate(std::string(10 << 20, 'y'), kGenerous);
    CHECK(process.returncode() == 0);
    sp::Popen head({"head", "-c", "10"}, {.in = sp::PIPE, .out = sp::PIPE});
    CHECK(head.communicate(std::string(10 << 20, 'z'), kGenerous).first == std::string(10, 'z'));
  }

  TEST_CASE("communicate after a timeout resumes and keeps what was read") {
    sp::Popen process({"/bin/sh", "-c", "echo early; sleep 2; echo late"}, {.out = sp::PIPE});
    try {
      process.communicate({}, 1s);  // ample time for "early", none for "late"
      FAIL("no exception");
    } catch (const sp::TimeoutExpired& error) {
      CHECK(error.out() == "early\n");
    }
    CHECK_FALSE(process.returncode());
    CHECK_THROWS_AS(process.communicate(std::string("late input"), kGenerous), mp::ValueError);
    CHECK(process.communicate({}, kGenerous).first == "early\nlate\n");
    CHECK(process.returncode() == 0);
  }

  TEST_CASE("communicate with no pipes just waits; input without a stdin PIPE is an error") {
    sp::Popen process({"/bin/sh", "-c", "exit 5"});
    auto [out, err] = process.communicate({}, kGenerous);
    CHECK(out.empty());
    CHECK(process.returncode() == 5);
    sp::Popen no_stdin({"true"});
    CHECK_THROWS_WITH_AS(no_stdin.communicate(std::string("x")),
                         doctest::Contains("stdin is not a PIPE"), mp::ValueError);
    no_stdin.wait(kGenerous);
  }

  TEST_CASE("bad arguments throw ValueError naming the problem") {
    CHECK_THROWS_WITH_AS(sp::Popen({}), doctest::Contains("args is empty"), mp::ValueError);
    CHECK_THROWS_WITH_AS(sp::Popen({"echo", std::string("a\0b", 3)}),
                         doctest::Contains("embedded null byte"), mp::ValueError);
    CHECK_THROWS_WITH_AS(sp::Popen({"cat"}, {.in = sp::STDOUT}),
                         doctest::Contains("STDOUT is only valid for err"), mp::ValueError);
    CHECK_THROWS_WITH_AS(sp::Popen({"cat"}, {.out = -3}), doctest::Contains("negative descriptor"),
                         mp::ValueError);
    CHECK_THROWS_WITH_AS(sp::Popen({"env"}, {.env = sp::Environment{{"A=B", "1"}}}),
                         doctest::Contains("illegal environment variable 'A=B'"), mp::ValueError);
  }

  TEST_CASE("system-call failures surface as OSError naming the command, and start no child") {
    mp::detail::inject_fault("pipe2", EMFILE);
    CHECK_THROWS_WITH_AS(sp::Popen({"cat"}, {.in = sp::PIPE}), doctest::Contains("Popen(['cat'])"),
                         mp::OSError);
    mp::detail::inject_fault("posix_spawn", EAGAIN);
    try {
      sp::run({"/bin/true"});
      FAIL("no exception");
    } catch (const mp::OSError& error) {
      CHECK(error.code() == EAGAIN);
      CHECK(contains(error.what(), "/bin/true"));
    }
    mp::detail::clear_faults();
    CHECK(::waitpid(-1, nullptr, WNOHANG) <= 0);
  }

  TEST_CASE("no zombies: the destructor reaps an ended child and hands a running one to a reaper") {
    pid_t ended_pid;
    {
      sp::Popen ended({"true"});
      ended_pid = ended.pid();
      std::this_thread::sleep_for(100ms);
    }
    CHECK(reaped_within(ended_pid, 10s));
    pid_t running_pid;
    {
      sp::Popen running({"sleep", "0.3"}, {.out = sp::PIPE});
      running_pid = running.pid();
    }
    CHECK(::kill(running_pid, 0) == 0);  // left running, as in Python
    CHECK(reaped_within(running_pid, 10s));
  }

  TEST_CASE("Popen moves keep ownership of the child") {
    sp::Popen first({"/bin/sh", "-c", "echo moved"}, {.out = sp::PIPE});
    int pid = first.pid();
    sp::Popen second(std::move(first));
    CHECK(second.pid() == pid);
    CHECK(first.pid() == -1);
    sp::Popen third({"true"});
    third.wait(kGenerous);
    third = std::move(second);
    CHECK(third.communicate({}, kGenerous).first == "moved\n");
  }

  TEST_CASE("200 Popens destroyed while running: one reaper thread, no zombie once they end") {
    auto threads_now = [] {
      std::ifstream status("/proc/self/status");
      for (std::string line; std::getline(status, line);)
        if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
      return -1;
    };
    int before = threads_now();
    std::vector<int> pids;
    for (int i = 0; i < 200; ++i) {
      sp::Popen running({"sleep", "0.5"});
      pids.push_back(running.pid());
    }
    CHECK(threads_now() <= before + 1);
    auto unreaped = [&] {
      int count = 0;
      for (int pid : pids) count += ::access(("/proc/" + std::to_string(pid)).c_str(), F_OK) == 0;
      return count;
    };
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (unreaped() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
    CHECK(unreaped() == 0);  // neither running nor a zombie
  }

  TEST_CASE("threads may start commands concurrently") {
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < 15; ++i) {
          auto options = captured();
          options.input = std::to_string(t * 100 + i);
          auto result = sp::run({"cat"}, options);
          if (result.out != *options.input || result.returncode != 0) ++failures;
        }
      });
    for (auto& thread : threads) thread.join();
    CHECK(failures == 0);
  }

  TEST_CASE("samples/exec ports the Go os/exec program") {
    auto result = sp::run({MP_BUILD_ROOT "/samples/exec"}, captured());
    CHECK(result.returncode == 0);
    CHECK(contains(result.out, "== Output: ls -l /"));
    CHECK(contains(result.out, "\ntotal "));
    CHECK(contains(result.out, "== CombinedOutput: exit status 3\nto stdout\nto stderr\n"));
    CHECK(contains(result.out, "== Kill + Wait: returncode -9 (signal: killed)"));
    CHECK(contains(result.out, "exec in the forked child\n"));
    CHECK(contains(result.out, "exited with 7"));
  }
}  // TEST_SUITE
