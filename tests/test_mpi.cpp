// mp::mpi::Pool under a real mpirun: each case launches helpers/mpi_scenarios
// (and for the mismatch its second build) on 3 or 5 ranks, and reads what
// rank 0 printed and how the job ended. Every wait has a deadline.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

const std::string scenarios = MP_TEST_HELPERS "/mpi_scenarios";
const std::string other_build = MP_TEST_HELPERS "/mpi_scenarios_other";

std::vector<std::string> mpirun(int ranks, std::vector<std::string> tail) {
  std::vector<std::string> argv{MP_MPIRUN, "--oversubscribe", "-x", "OMPI_ALLOW_RUN_AS_ROOT",
                                "-x", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"};
  if (ranks > 0) {
    argv.push_back("-n");
    argv.push_back(std::to_string(ranks));
  }
  argv.insert(argv.end(), tail.begin(), tail.end());
  return argv;
}

struct Outcome {
  int status;
  std::string out;
  std::string err;
};

// The ranks inherit this environment. Under AddressSanitizer, leak checking
// is off in them: Open MPI never frees what MPI_Init allocates (about 120 KB
// in 3400 blocks, in libmpi, libopen-pal, hwloc and its dlclosed
// components, none in mp), which LeakSanitizer would report at every exit.
void prepare_environment() {
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  const char* asan = std::getenv("ASAN_OPTIONS");
  std::string options = asan ? asan : "";
  if (options.find("detect_leaks=0") == std::string::npos)
    ::setenv("ASAN_OPTIONS", (options.empty() ? "" : options + ":").append("detect_leaks=0").c_str(), 1);
}

Outcome run(std::vector<std::string> argv, std::chrono::milliseconds timeout = 120s) {
  prepare_environment();
  test_support::Program program(std::move(argv), true);
  int status = program.wait(timeout);
  return {status, program.out(), program.err()};
}

// A scenario that must pass: exit 0, no FAIL line, its "done" line.
void passes(int ranks, const std::string& scenario, std::vector<std::string> extra = {}) {
  std::vector<std::string> tail = extra;
  tail.push_back(scenarios);
  tail.push_back(scenario);
  Outcome outcome = run(mpirun(ranks, tail));
  INFO("stdout:\n" << outcome.out << "\nstderr:\n" << outcome.err);
  CHECK(outcome.status == 0);
  CHECK(outcome.out.find("FAIL") == std::string::npos);
  CHECK(outcome.out.find("done " + scenario) != std::string::npos);
}

}  // namespace

TEST_CASE("every call shape, results in input order, on 3 ranks") { passes(3, "shapes"); }

TEST_CASE("every call shape on 5 ranks, oversubscribed") { passes(5, "shapes"); }

TEST_CASE("a task's exception arrives typed, at its position; error callbacks") {
  passes(3, "exceptions");
}

TEST_CASE("64 MiB argument and result") { passes(3, "payload"); }

TEST_CASE("apply's waiter receives its own result; callbacks stay in the pool's thread") {
  passes(3, "own_results");
}

TEST_CASE("own results on 5 ranks, oversubscribed") { passes(5, "own_results"); }

TEST_CASE("the initializer runs on every worker rank") { passes(3, "initializer"); }

TEST_CASE("an initializer that throws breaks the pool with its error") {
  passes(3, "initializer_throws");
}

TEST_CASE("terminate cancels the outstanding work and join returns") { passes(3, "terminate"); }

TEST_CASE("hybrid: a fork Pool in a worker rank, a Process on the master") { passes(3, "hybrid"); }

TEST_CASE("the first round trip after idling is prompt") { passes(3, "idle"); }

TEST_CASE("two different builds in one job are refused, naming the odd ranks") {
  Outcome outcome = run(mpirun(0, {"-n", "1", scenarios, "mismatch", ":", "-n", "2", other_build,
                                   "mismatch"}));
  INFO("stdout:\n" << outcome.out << "\nstderr:\n" << outcome.err);
  CHECK(outcome.status != 0);
  CHECK(outcome.out.find("refused: mpi::Pool: every rank must run the same build, but rank(s) 1 (") !=
        std::string::npos);
  CHECK(outcome.out.find(", 2 (") != std::string::npos);
}

TEST_CASE("a killed worker ends the job at once, with a message naming its rank") {
  std::vector<std::string> argv = mpirun(3, {scenarios, "kill"});
  prepare_environment();
  test_support::Program program(argv, true);
  auto line = program.read_line(60s);
  while (line && line->rfind("killing", 0) != 0) line = program.read_line(60s);
  REQUIRE(line == std::optional<std::string>("killing rank 2"));
  const auto killed = std::chrono::steady_clock::now();
  int status = program.wait(60s);
  const auto took = std::chrono::steady_clock::now() - killed;
  INFO("stdout:\n" << program.out() << "\nstderr:\n" << program.err());
  CHECK(status != 0);
  CHECK(took < 5s);
  CHECK((program.out() + program.err()).find("rank 2") != std::string::npos);
}

TEST_CASE("with recovery, a killed worker's chunks run elsewhere and the map completes") {
  std::vector<std::string> argv = mpirun(3, {"--enable-recovery", scenarios, "recover"});
  Outcome outcome = run(argv);
  INFO("stdout:\n" << outcome.out << "\nstderr:\n" << outcome.err);
  CHECK(outcome.out.find("ok the map completes after a lost worker") != std::string::npos);
  CHECK(outcome.err.find("worker rank 2 has been silent") != std::string::npos);
  CHECK(outcome.out.find("done recover") != std::string::npos);
}
