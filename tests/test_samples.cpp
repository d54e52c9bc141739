// The ported CPython examples beside their Python originals: each case runs
// the C++ sample (build/samples/<name>) and the Python program it ports
// (samples/python/<name>.py), and compares their outputs: the quick ones and
// the interop pair under every interpreter of python_versions.hpp, the slow
// ports under python3 (reference_python()). Only what is truly
// nondeterministic is normalised, and each case says what and why. Every run
// is bounded by a timeout (Program::wait kills the program at its deadline).
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "python_versions.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

std::string sample(const std::string& name) { return MP_BUILD_ROOT "/samples/" + name; }
std::string python_original(const std::string& name) { return MP_SOURCE_ROOT "/samples/python/" + name + ".py"; }

struct Output {
  int status;
  std::string out;
  std::string err;
};

Output run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 60s) {
  test_support::Program program(argv);
  const int status = program.wait(timeout);
  return {status, program.out(), program.err()};
}

// The C++ sample and the Python original with the same arguments, under one
// interpreter: both must exit 0.
struct Pair {
  Output cpp;
  Output python;
};

Pair run_both(const std::string& name, const std::string& python, std::vector<std::string> args = {},
              std::chrono::milliseconds timeout = 60s) {
  std::vector<std::string> cpp_argv{sample(name)}, python_argv{python, python_original(name)};
  cpp_argv.insert(cpp_argv.end(), args.begin(), args.end());
  python_argv.insert(python_argv.end(), args.begin(), args.end());
  Pair pair{run(cpp_argv, timeout), run(python_argv, timeout)};
  INFO("C++ stderr: " << pair.cpp.err << "\nPython stderr: " << pair.python.err);
  CHECK(pair.cpp.status == 0);
  CHECK(pair.python.status == 0);
  return pair;
}

// The outputs of the ported programs are compared with the machine's
// python3 only: what they show is multiprocessing's behaviour, not a
// version's, and each run of the slow ones (mp_pool, mp_synchronize) takes
// tens of seconds. The interop of listener_client runs against every version.
test_support::PythonInterpreter reference_python() {
  test_support::prepare_python_children();
  return {"python3", "the machine's python3"};
}

std::string replace_all(const std::string& text, const char* pattern, const char* replacement) {
  return std::regex_replace(text, std::regex(pattern), replacement);
}

struct Rule {
  std::regex pattern;
  const char* replacement;
};

// `text` with every line rewritten by `rules` (in order), and the lines of each
// section whose title line is in `unordered_sections` (up to the next empty
// line) sorted, for output whose order is the scheduler's.
std::string normalized(const std::string& text, const std::vector<Rule>& rules,
                       const std::vector<std::string>& unordered_sections = {}) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    for (const Rule& rule : rules) line = std::regex_replace(line, rule.pattern, rule.replacement);
    lines.push_back(line);
  }
  for (auto title = lines.begin(); title != lines.end(); ++title) {
    if (std::find(unordered_sections.begin(), unordered_sections.end(), *title) == unordered_sections.end())
      continue;
    std::sort(title + 1, std::find(title + 1, lines.end(), std::string()));
  }
  std::string joined;
  for (const std::string& line : lines) joined += line + "\n";
  return joined;
}

// A server of listener_client: started, its "listening on ('127.0.0.1', PORT)"
// line read (with a deadline), its port known.
struct Server {
  explicit Server(std::vector<std::string> argv) : program(std::move(argv)) {
    auto line = program.read_line(30s);
    REQUIRE(line.has_value());
    std::smatch port_text;
    REQUIRE(std::regex_match(*line, port_text, std::regex(R"(listening on \('127\.0\.0\.1', (\d+)\))")));
    port = port_text[1];
    first_line = *line;
  }
  test_support::Program program;
  std::string port;
  std::string first_line;
};

struct Session {
  std::string server_out;
  std::string client_out;
};

// One server and one client talking; their outputs, each bounded by a timeout.
Session session(std::vector<std::string> server_argv, std::vector<std::string> client_argv) {
  Server server(std::move(server_argv));
  client_argv.push_back(server.port);
  Output client = run(client_argv, 30s);
  INFO("client stderr: " << client.err);
  CHECK(client.status == 0);
  CHECK(server.program.wait(30s) == 0);
  INFO("server stderr: " << server.program.err());
  return {server.first_line + "\n" + server.program.out(), client.out};
}

}  // namespace

TEST_SUITE("samples") {

// The sharedctypes Point example of the docs. Nothing is normalised: the
// output is deterministic in both languages.
TEST_CASE("shared_point prints what the docs' sharedctypes example prints") {
  for (const auto& python : test_support::python_interpreters()) {
    CAPTURE(python.version);
    const Pair pair = run_both("shared_point", python.path);
    CHECK(pair.cpp.out == pair.python.out);
    CHECK(pair.python.out.find("[(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]") != std::string::npos);
  }
}

// "Joining processes that use queues": the docs' correct order (get, then
// join) prints the same in both; joined first (bounded by join(timeout=3)),
// Python's child is still alive, blocked by its feeder thread, where mp's
// child has ended: that one line is the difference, the rest is the same.
TEST_CASE("joining_queues: get-then-join as Python; join-first does not block in mp") {
  for (const auto& python : test_support::python_interpreters()) {
    CAPTURE(python.version);
    const Pair get_first = run_both("joining_queues", python.path);
    CHECK(get_first.cpp.out == get_first.python.out);
    CHECK(get_first.python.out == "got 1000000 bytes: 'XXX...'; exitcode 0\n");

    const Pair join_first = run_both("joining_queues", python.path, {"join-first"});
    CHECK(join_first.python.out == "alive after join(timeout=3): True\n" + get_first.python.out);
    CHECK(join_first.cpp.out == "alive after join(timeout=3): False\n" + get_first.python.out);
  }
}

// The docs' Listener/Client pair, every pairing of mp and Python roles.
// Normalised: the port numbers (the server's is any free port, the client's
// an ephemeral one), nothing else.
TEST_CASE("listener_client: mp and Python servers and clients interchange, objects both ways") {
  const auto no_ports = [](const std::string& text) { return replace_all(text, R"(', \d+\))", "', PORT)"); };
  const std::vector<std::string> cpp_server{sample("listener_client"), "server"},
      cpp_client{sample("listener_client"), "client"};
  for (const auto& python : test_support::python_interpreters()) {
    CAPTURE(python.version);
    const std::vector<std::string> python_server{python.path, python_original("listener_client"), "server"},
        python_client{python.path, python_original("listener_client"), "client"};
    const Session reference = session(python_server, python_client);
    CHECK(reference.client_out == "[2.25, None, 'junk']\nb'hello'\n8\narray('i', [42, 1729, 0, 0, 0])\n");
    CHECK(no_ports(reference.server_out) ==
          "listening on ('127.0.0.1', PORT)\nconnection accepted from ('127.0.0.1', PORT)\n");

    SUBCASE("mp serves a Python client: objects from C++ to Python") {
      const Session mixed = session(cpp_server, python_client);
      CHECK(mixed.client_out == reference.client_out);
      CHECK(no_ports(mixed.server_out) == no_ports(reference.server_out));
    }
    SUBCASE("a Python server, an mp client: objects from Python to C++") {
      const Session mixed = session(python_server, cpp_client);
      CHECK(mixed.client_out == reference.client_out);
      CHECK(no_ports(mixed.server_out) == no_ports(reference.server_out));
    }
    SUBCASE("the docs' object with the class float: mp refuses it, naming the opcode, and reads on") {
      std::vector<std::string> with_class = python_server;
      with_class.push_back("with-class");
      const Session mixed = session(with_class, cpp_client);
      const std::string refusal = mixed.client_out.substr(0, mixed.client_out.find('\n') + 1);
      CHECK(refusal.rfind("refused: ", 0) == 0);
      CHECK(refusal.find("GLOBAL") != std::string::npos);
      CHECK(mixed.client_out.substr(refusal.size()) ==
            reference.client_out.substr(reference.client_out.find('\n') + 1));
    }
    SUBCASE("mp with mp") {
      const Session own = session(cpp_server, cpp_client);
      CHECK(own.client_out == reference.client_out);
      CHECK(no_ports(own.server_out) == no_ports(reference.server_out));
    }
  }
}

// CPython's mp_workers.py. Normalised, because the scheduler decides them:
// which worker computed a result (Process-N) and the order of the results
// (sorted; the 20 products come before the 10 sums in both).
TEST_CASE("workers prints what CPython's mp_workers.py prints") {
  const std::vector<Rule> rules = {{std::regex(R"(Process-\d+)"), "Process-N"}};
  const std::vector<std::string> unordered = {"Unordered results:"};
  {
    const test_support::PythonInterpreter python = reference_python();
    const Pair pair = run_both("workers", python.path);
    CHECK(normalized(pair.cpp.out, rules, unordered) == normalized(pair.python.out, rules, unordered));
    CHECK(std::count(pair.python.out.begin(), pair.python.out.end(), '\n') == 31);
  }
}

// CPython's mp_pool.py. Normalised, because the scheduler decides them:
// which worker ran a task (ForkPoolWorker-N), the order of the
// imap_unordered section (sorted), the benchmark times, and the dots each
// timed-out get(0.02)/next(0.02) prints (at the end of a line). Also the
// pool's repr: mp's Pool has none of Python's (the sample prints its own).
TEST_CASE("mp_pool prints what CPython's mp_pool.py prints") {
  const std::vector<Rule> rules = {{std::regex(R"(ForkPoolWorker-\d+)"), "ForkPoolWorker-N"},
                                   {std::regex(R"(^pool = .*$)"), "pool = <repr>"},
                                   {std::regex(R"(^\t\t[0-9.e+-]+ seconds$)"), "\t\tT seconds"},
                                   {std::regex(R"(\.+$)"), ""}};
  const std::vector<std::string> unordered = {"Unordered results using pool.imap_unordered():"};
  const Output cpp = run({sample("mp_pool")}, 120s);
  INFO("C++ stderr: " << cpp.err);
  CHECK(cpp.status == 0);
  CHECK(cpp.out.find("pool = <mp::Pool processes=4>\n") != std::string::npos);
  {
    const test_support::PythonInterpreter python = reference_python();
    const Output original = run({python.path, python_original("mp_pool")}, 120s);
    INFO("Python stderr: " << original.err);
    CHECK(original.status == 0);
    CHECK(normalized(cpp.out, rules, unordered) == normalized(original.out, rules, unordered));
  }
}

// mp_synchronize's output, section by section (the text after each
// "\t######## test_..." line), its parent pids (parent=N) normalised.
std::map<std::string, std::string> synchronize_sections(const std::string& out) {
  std::map<std::string, std::string> sections;
  const std::regex header("\n\t######## (test_[a-z_]+)\n");
  const std::string text = replace_all(out, R"(parent=\d+)", "parent=N");
  std::string* current = nullptr;
  std::size_t from = 0;
  for (std::sregex_iterator match(text.begin(), text.end(), header), end; match != end; ++match) {
    if (current) *current = text.substr(from, static_cast<std::size_t>(match->position()) - from);
    current = &sections[(*match)[1]];
    from = static_cast<std::size_t>(match->position() + match->length());
  }
  if (current) *current = text.substr(from);
  return sections;
}

// The lines of `text` that `drop` does not match, sorted.
std::vector<std::string> sorted_lines(const std::string& text, const std::regex& drop) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!std::regex_match(line, drop)) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  return lines;
}

// What mp_synchronize's outputs must show whatever the timing: the value
// counts never rise and end at 0; at most 3 tasks hold the semaphore; no
// process wakes before the event is set.
void check_synchronize_invariants(std::map<std::string, std::string>& sections) {
  std::vector<int> counts;
  std::istringstream value(sections["test_value"]);
  for (std::string token; value >> token;)
    if (std::isdigit(static_cast<unsigned char>(token[0]))) counts.push_back(std::stoi(token));
  CHECK(std::is_sorted(counts.rbegin(), counts.rend()));
  CHECK((!counts.empty() && counts.back() == 0));
  const std::regex running(R"((\d+) tasks are running)");
  const std::string& semaphore = sections["test_semaphore"];
  for (std::sregex_iterator match(semaphore.begin(), semaphore.end(), running), end; match != end; ++match)
    CHECK(std::stoi((*match)[1]) <= 3);
  const std::string& event = sections["test_event"];
  const auto set = event.find("main is setting event");
  REQUIRE(set != std::string::npos);
  CHECK(event.substr(0, set).find("has woken up") == std::string::npos);
  CHECK(event.substr(set).find("is waiting") == std::string::npos);
}

// CPython's mp_synchronize.py; Python runs with -u and the sample's stdout
// is line-buffered, so that both outputs show the lines of the parent and
// its children in the order they happened. Normalised, because the
// scheduler and the random sleeps decide them: parent pids; in test_value
// the counts the parent prints (checked to fall to 0 instead) and the order
// in which the children finish (sorted); the TIMEOUT lines of test_queue;
// in test_semaphore the number of running tasks (checked to stay <= 3) and
// the order (sorted); the dots of test_join_timeout and the order of its
// first two lines; the order of test_event's lines (checked: nobody wakes
// before the event is set). test_condition and test_sharedvalues are
// compared as they are.
TEST_CASE("mp_synchronize prints what CPython's mp_synchronize.py prints") {
  const Output cpp = run({sample("mp_synchronize")}, 120s);
  INFO("C++ stderr: " << cpp.err);
  CHECK(cpp.status == 0);
  auto ours = synchronize_sections(cpp.out);
  check_synchronize_invariants(ours);
  const std::regex nothing("(?!)"), counts(R"([\d ]*)"), dots(R"([. ]*)");
  {
    const test_support::PythonInterpreter python = reference_python();
    const Output original = run({python.path, "-u", python_original("mp_synchronize")}, 120s);
    INFO("Python stderr: " << original.err);
    CHECK(original.status == 0);
    CHECK(cpp.out.substr(0, cpp.out.find('\n')) == original.out.substr(0, original.out.find('\n')));
    auto theirs = synchronize_sections(original.out);
    check_synchronize_invariants(theirs);
    CHECK(ours.size() == 7);
    for (const char* name : {"test_value", "test_queue", "test_condition", "test_semaphore",
                             "test_join_timeout", "test_event", "test_sharedvalues"}) {
      CAPTURE(std::string(name));
      const std::string section = name;
      if (section == "test_value") {
        CHECK(sorted_lines(ours[section], counts) == sorted_lines(theirs[section], counts));
      } else if (section == "test_queue") {
        CHECK(replace_all(ours[section], "TIMEOUT\n", "") == replace_all(theirs[section], "TIMEOUT\n", ""));
      } else if (section == "test_semaphore") {
        const auto uncounted = [](const std::string& text) {
          return replace_all(text, R"(\d+ tasks are running)", "N tasks are running");
        };
        CHECK(sorted_lines(uncounted(ours[section]), nothing) == sorted_lines(uncounted(theirs[section]), nothing));
      } else if (section == "test_join_timeout") {
        CHECK(sorted_lines(ours[section], dots) == sorted_lines(theirs[section], dots));
      } else if (section == "test_event") {
        CHECK(sorted_lines(ours[section], nothing) == sorted_lines(theirs[section], nothing));
      } else {
        CHECK(ours[section] == theirs[section]);
      }
    }
  }
}

}  // TEST_SUITE
