// The seed's Go os/exec program, ported: each scenario names the Go call it
// mirrors. Run it with `make demo`; tests/test_subprocess.cpp checks its output.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "mp/process.hpp"
#include "mp/subprocess.hpp"

using namespace std::chrono_literals;
namespace sp = mp::subprocess;

int main() {
  // Go: out, err := exec.Command("ls", "-l", "/").Output()
  std::string listing = sp::check_output({"ls", "-l", "/"});
  std::printf("== Output: ls -l / (%zu bytes)\n%s", listing.size(), listing.c_str());

  // Go: out, err := exec.Command("sh", "-c", ...).CombinedOutput()
  // A non-zero exit is not an exception here (check=false), as Go returns an
  // *ExitError next to the output.
  sp::RunOptions combined;
  combined.capture_output = true;
  combined.stderr_to_stdout = true;
  combined.timeout = 30s;
  auto result = sp::run({"/bin/sh", "-c", "echo to stdout; echo to stderr >&2; exit 3"}, combined);
  std::printf("== CombinedOutput: exit status %d\n%s", result.returncode, result.out.c_str());

  // Go: cmd := exec.Command("sleep", "60"); cmd.Start(); cmd.Process.Kill(); cmd.Wait()
  sp::Popen sleeper({"sleep", "60"});
  std::printf("== Start: sleep 60 as pid %d\n", sleeper.pid());
  std::this_thread::sleep_for(100ms);
  sleeper.kill();
  int status = sleeper.wait(30s);
  std::printf("== Kill + Wait: returncode %d (%s)\n", status,
              status == -SIGKILL ? "signal: killed" : "unexpected");

  // Go: pid, _ := syscall.ForkExec(...) (that is, syscall.Fork then
  // syscall.Exec) and syscall.Wait4(pid, ...): mp::Process forks, the child
  // starts the command with mp::subprocess and exits with its status, and
  // join() is the parent's waitpid.
  mp::Process forked([] {
    auto child = sp::run({"/bin/sh", "-c", "echo exec in the forked child; exit 7"});
    mp::exit(child.returncode);
  });
  forked.start();
  forked.join(30s);
  std::printf("== Fork + Exec + Wait4: child %d exited with %d\n", forked.pid().value_or(-1),
              forked.exitcode().value_or(-1));
  return status == -SIGKILL && result.returncode == 3 && forked.exitcode() == 7 ? 0 : 1;
}
