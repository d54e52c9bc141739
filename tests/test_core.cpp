// The foundation every module stands on: the system-call door, deadlines,
// futexes across processes, and the bounded cereal archive.
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <variant>
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

// A message in cereal's layout for a container: the element count, then `body`.
std::string counted(std::uint64_t count, std::string_view body = {}) {
  std::string out(reinterpret_cast<const char*>(&count), sizeof count);
  out.append(body);
  return out;
}

struct ChildDecode {
  long peak_growth_mib = -1;  // growth of the child's peak resident memory
  std::string error;          // what the decode threw ("" if it returned)
};

// Runs `decode` in a forked child, so that its peak resident memory (getrusage)
// is measured on a real process and a huge allocation cannot hurt the suite.
// Gives up (peak_growth_mib -1) after 60 s.
template <class Decode>
ChildDecode decode_in_child(Decode decode) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    rusage before{}, after{};
    ::getrusage(RUSAGE_SELF, &before);
    std::string error;
    try {
      decode();
    } catch (const std::exception& e) {
      error = e.what();
    }
    ::getrusage(RUSAGE_SELF, &after);
    std::string report = std::to_string((after.ru_maxrss - before.ru_maxrss) / 1024) + "\n" + error;
    (void)!::write(fds[1], report.data(), report.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string report;
  auto deadline = Deadline::after(60s);
  pollfd readable{fds[0], POLLIN, 0};
  char chunk[4096];
  while (::poll(&readable, 1, deadline.poll_milliseconds()) > 0) {
    ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n <= 0) break;
    report.append(chunk, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  ::kill(child, SIGKILL);  // a no-op if it is done; it is reaped either way
  ::waitpid(child, nullptr, 0);
  ChildDecode result;
  auto newline = report.find('\n');
  if (newline == std::string::npos) return result;
  result.peak_growth_mib = std::stol(report.substr(0, newline));
  result.error = report.substr(newline + 1);
  return result;
}

using MiB = std::array<char, 1 << 20>;

TEST_CASE("archive bounds a container's count by the minimum size of its elements") {
  // Each hostile message below made the reader allocate hundreds of MiB when a
  // count was checked against the bytes left (one byte per element).
  constexpr long limit_mib = 64;

  SUBCASE("520 bytes claiming 512 elements of 1 MiB") {
    std::string evil = counted(512, std::string(512, 'x'));
    REQUIRE(evil.size() == 520);
    auto child = decode_in_child([&] { mp::detail::loads<std::vector<MiB>>(evil, "Connection.recv"); });
    CHECK(child.peak_growth_mib >= 0);
    CHECK(child.peak_growth_mib < limit_mib);
    CHECK(child.error ==
          "Connection.recv: cannot deserialize std::vector<std::array<char, 1048576ul>>: "
          "std::vector<std::array<char, 1048576ul>> claims 512 elements of at least 1048576 bytes "
          "each, but only 512 bytes are left");
  }
  SUBCASE("nested vectors: the inner count is bounded too") {
    using Pages = std::vector<std::vector<std::array<std::uint64_t, 32768>>>;  // 256 KiB elements
    std::string evil = counted(1, counted(500, std::string(500, 'x')));
    auto child = decode_in_child([&] { mp::detail::loads<Pages>(evil, "t"); });
    CHECK(child.peak_growth_mib >= 0);
    CHECK(child.peak_growth_mib < limit_mib);
    CHECK(child.error.find("std::vector<std::array<unsigned long, 32768ul>> claims 500 elements") !=
          std::string::npos);
  }
  SUBCASE("map<string, vector<double>> whose vector claims a byte per element") {
    // 16 MiB that arrived, claiming 16 Mi doubles (128 MiB).
    constexpr std::uint64_t claimed = 16 << 20;
    std::string evil = counted(1, counted(1, "k") + counted(claimed, std::string(claimed, 'x')));
    auto child = decode_in_child(
        [&] { mp::detail::loads<std::map<std::string, std::vector<double>>>(evil, "Queue.get"); });
    CHECK(child.peak_growth_mib >= 0);
    CHECK(child.peak_growth_mib < limit_mib);
    CHECK(child.error.find("std::vector<double> claims 16777216 elements of at least 8 bytes") !=
          std::string::npos);
  }
  SUBCASE("deques, lists and pairs of big elements") {
    std::string evil = counted(512, std::string(512, 'x'));
    auto deque = decode_in_child([&] { mp::detail::loads<std::deque<MiB>>(evil, "t"); });
    CHECK(deque.peak_growth_mib < limit_mib);
    CHECK(deque.error.find("std::deque<std::array<char, 1048576ul>> claims 512") != std::string::npos);
    auto list = decode_in_child([&] { mp::detail::loads<std::list<MiB>>(evil, "t"); });
    CHECK(list.peak_growth_mib < limit_mib);
    CHECK(list.error.find("std::list<std::array<char, 1048576ul>> claims 512") != std::string::npos);
    auto pairs = decode_in_child(
        [&] { mp::detail::loads<std::vector<std::pair<int, MiB>>>(evil, "t"); });
    CHECK(pairs.peak_growth_mib < limit_mib);
    CHECK(pairs.error.find("elements of at least 1048580 bytes") != std::string::npos);
  }
}

struct Empty {  // encodes to nothing
  template <class Archive>
  void serialize(Archive&) {}
};

TEST_CASE("archive minimum sizes are exact: honest messages at the minimum still decode") {
  using mp::detail::dumps;
  using mp::detail::loads;
  auto round_trips = [](const auto& value) {
    using T = std::decay_t<decltype(value)>;
    return loads<T>(dumps(value, "t"), "t") == value;
  };
  CHECK(round_trips(std::vector<std::optional<int>>(100)));  // one byte each
  CHECK(round_trips(std::vector<std::variant<std::monostate, int>>(100)));  // four bytes each
  CHECK(round_trips(std::vector<std::string>(100)));  // eight bytes each
  CHECK(round_trips(std::vector<std::vector<double>>(100)));
  CHECK(round_trips(std::vector<std::pair<char, bool>>(100)));
  CHECK(round_trips(std::vector<std::tuple<std::int16_t, std::optional<double>>>(100)));
  CHECK(round_trips(std::map<std::string, std::vector<double>>{{"", {}}, {"a", {1.5}}}));
  CHECK(round_trips(std::vector<MiB>(2)));
  CHECK(round_trips(std::vector<bool>{true, false, true}));
  CHECK(round_trips(std::u32string(U"wide")));
  // A user type's size is not known; an element still costs one byte at least.
  auto empties = loads<std::vector<std::pair<Empty, int>>>(
      dumps(std::vector<std::pair<Empty, int>>(100), "t"), "t");
  CHECK(empties.size() == 100);
  // One byte short of the minimum is refused.
  CHECK_THROWS_AS(loads<std::vector<std::string>>(counted(2, std::string(15, '\0')), "t"),
                  mp::SerializationError);
  CHECK_NOTHROW(loads<std::vector<std::string>>(counted(2, std::string(16, '\0')), "t"));
}

TEST_CASE("type names in error messages are readable") {
  using mp::detail::type_name;
  CHECK(type_name<std::string>() == "std::string");
  CHECK(type_name<std::string_view>() == "std::string_view");
  CHECK(type_name<std::vector<std::string>>() == "std::vector<std::string>");
  CHECK(type_name<std::map<std::string, std::vector<double>>>() ==
        "std::map<std::string, std::vector<double>>");
  CHECK(type_name<std::unordered_map<std::string, std::set<int>>>() ==
        "std::unordered_map<std::string, std::set<int>>");
  CHECK(type_name<std::optional<std::list<std::u32string>>>() ==
        "std::optional<std::list<std::u32string>>");
  // An argument that is not the default is kept.
  CHECK(type_name<std::map<int, int, std::greater<int>>>() == "std::map<int, int, std::greater<int>>");
  CHECK(type_name<int (*)(const std::string&, double)>() == "int (*)(std::string const&, double)");
  CHECK(mp::detail::readable_type_name("Broken<std::string") == "Broken<std::string");

  try {
    mp::detail::loads<std::map<std::string, std::vector<double>>>("abc", "Queue.get");
    FAIL("no exception");
  } catch (const mp::SerializationError& e) {
    CHECK(std::string(e.what()).find(
              "Queue.get: cannot deserialize std::map<std::string, std::vector<double>>: ") == 0);
  }
}

TEST_CASE("tagged messages name both types on a mismatch") {
  auto message = mp::detail::dumps_tagged(std::string("hi"), "Connection");
  CHECK(mp::detail::loads_tagged<std::string>(message, "Connection") == "hi");
  try {
    mp::detail::loads_tagged<int>(message, "Connection");
    FAIL("no exception");
  } catch (const mp::SerializationError& e) {
    CHECK(std::string(e.what()) == "Connection: the message holds std::string but int was requested");
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
