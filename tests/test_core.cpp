// The foundation every module stands on: the system-call door, deadlines,
// futexes across processes, and the bounded cereal archive.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "mp/detail/archive.hpp"
#include "mp/detail/deadline.hpp"
#include "mp/detail/fd.hpp"
#include "mp/detail/futex.hpp"
#include "mp/detail/shared_mapping.hpp"
#include "mp/detail/syscall.hpp"

using namespace std::chrono_literals;
using mp::detail::Deadline;

TEST_CASE("check retries EINTR and turns errno into an OSError naming the object") {
  mp::detail::inject_fault("getppid", EINTR, 3);
  CHECK(mp::detail::check("getppid", [] { return ::getppid(); }) == ::getppid());

  mp::detail::inject_fault("getppid", EMFILE, 1, 1);
  CHECK_NOTHROW(mp::detail::check("getppid", [] { return ::getppid(); }));
  try {
    mp::detail::check("getppid", [] { return ::getppid(); }, "Widget");
    FAIL("no exception");
  } catch (const mp::OSError& e) {
    CHECK(e.code() == EMFILE);
    CHECK(std::string(e.what()).find("Widget: getppid failed") == 0);
  }
  CHECK_NOTHROW(mp::detail::check("getppid", [] { return ::getppid(); }));
  mp::detail::clear_faults();
}

TEST_CASE("errno maps to Python's OSError subclasses") {
  CHECK_THROWS_AS(mp::detail::throw_os_error("open", ENOENT), mp::FileNotFoundError);
  CHECK_THROWS_AS(mp::detail::throw_os_error("open", EEXIST), mp::FileExistsError);
  CHECK_THROWS_AS(mp::detail::throw_os_error("open", EACCES), mp::OSError);
}

TEST_CASE("deadlines are monotonic, negative means zero, huge means never") {
  CHECK(Deadline::after(-5s).expired());
  CHECK(Deadline::after(0s).expired());
  CHECK_FALSE(Deadline::after(1h).expired());
  CHECK(Deadline::after(std::chrono::hours::max()).infinite());
  CHECK(Deadline::after(std::chrono::duration<double>(1e300)).infinite());
  CHECK(Deadline::never().poll_milliseconds() == -1);
  CHECK(Deadline::after(1500us).poll_milliseconds() == 2);
  CHECK(Deadline::never().capped(10ms).poll_milliseconds() <= 10);
}

TEST_CASE("futex wait times out on the monotonic clock and wakes across processes") {
  auto word = mp::detail::make_shared_object<std::atomic<std::uint32_t>>("test word", 0u);
  auto start = mp::detail::Clock::now();
  CHECK_FALSE(mp::detail::futex_wait(*word, 0, Deadline::after(50ms)));
  CHECK(mp::detail::Clock::now() - start >= 50ms);

  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::usleep(50'000);
    word->store(1);
    mp::detail::futex_wake(*word, 1);
    ::_exit(0);
  }
  auto deadline = Deadline::after(10s);
  while (word->load() == 0 && !deadline.expired()) mp::detail::futex_wait(*word, 0, deadline);
  CHECK(word->load() == 1);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
}

struct Point {
  int x = 0;
  std::string label;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, label);
  }
};

TEST_CASE("archive round-trips standard and user types") {
  std::map<std::string, std::vector<int>> m{{"a", {1, 2}}, {"b", {}}};
  CHECK(mp::detail::loads<decltype(m)>(mp::detail::dumps(m, "t"), "t") == m);
  Point p{7, "seven"};
  auto back = mp::detail::loads<Point>(mp::detail::dumps(p, "t"), "t");
  CHECK(back.x == 7);
  CHECK(back.label == "seven");
  CHECK(mp::detail::loads<std::string>(mp::detail::dumps(std::string(), "t"), "t").empty());
}

TEST_CASE("archive refuses lengths it cannot hold instead of allocating them") {
  std::string evil(8, '\xff');  // a size tag of 2^64-1 and nothing after it
  CHECK_THROWS_AS(mp::detail::loads<std::string>(evil, "t"), mp::SerializationError);
  CHECK_THROWS_AS(mp::detail::loads<std::vector<std::string>>(evil, "t"), mp::SerializationError);
  CHECK_THROWS_AS(mp::detail::loads<int>("ab", "t"), mp::SerializationError);
  CHECK_THROWS_AS(mp::detail::loads<int>(mp::detail::dumps(std::int64_t{1}, "t"), "t"),
                  mp::SerializationError);
}

TEST_CASE("tagged messages name both types on a mismatch") {
  auto message = mp::detail::dumps_tagged(std::string("hi"), "Connection");
  CHECK(mp::detail::loads_tagged<std::string>(message, "Connection") == "hi");
  try {
    mp::detail::loads_tagged<int>(message, "Connection");
    FAIL("no exception");
  } catch (const mp::SerializationError& e) {
    std::string what = e.what();
    CHECK(what.find("Connection") != std::string::npos);
    CHECK(what.find("basic_string") != std::string::npos);
    CHECK(what.find("int") != std::string::npos);
  }
  CHECK_THROWS_AS(mp::detail::loads_tagged<int>("", "Connection"), mp::SerializationError);
}

struct Unserializable {
  template <class Archive>
  void save(Archive&) const {
    throw std::runtime_error("refuses");
  }
  template <class Archive>
  void load(Archive&) {}
};

TEST_CASE("a value whose save throws leaves the output unchanged") {
  std::string out = "kept";
  CHECK_THROWS_AS(mp::detail::dump_into(out, Unserializable{}, "Queue.put"), mp::SerializationError);
  CHECK(out == "kept");
}

TEST_CASE("write_all to a pipe whose reader is gone fails with EPIPE, never SIGPIPE") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  mp::detail::FileDescriptor reader(fds[0]), writer(fds[1]);
  reader.reset();
  try {
    mp::detail::write_all(writer.get(), "x", 1, "Connection.send_bytes");
    FAIL("no exception");
  } catch (const mp::OSError& e) {
    CHECK(e.code() == EPIPE);
    CHECK(std::string(e.what()).find("Connection.send_bytes") == 0);
  }
  sigset_t pending;
  sigpending(&pending);
  CHECK_FALSE(sigismember(&pending, SIGPIPE));
}
