// Pipe, Connection and wait: Python's _TestConnection, _TestPoll, TestWait and
// TestIgnoreEINTR ported, plus the wire format against a real python3.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "mp/connection.hpp"
#include "mp/detail/connection_frame.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/process.hpp"
#include "mp/synchronize.hpp"
#include "python_versions.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mp::Connection;
using mp::Pipe;
using test_support::error_text;
using test_support::seconds_since;

namespace {

// A forked child running `body`; its return value is the exit code (an
// exception gives 99). sentinel() is readable once it has exited, like a
// Process sentinel. Children report through exit codes, never through doctest.
class Child {
 public:
  template <class F>
  explicit Child(F&& body) {
    int ends[2];
    REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::close(ends[0]);
      int code = 99;
      try {
        code = body();
      } catch (...) {
      }
      ::_exit(code);
    }
    ::close(ends[1]);
    sentinel_ = ends[0];
  }
  ~Child() {
    if (pid_ > 0) join(0s);
    ::close(sentinel_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Exit code, or minus the signal; a child still running at the deadline is killed.
  int join(std::chrono::milliseconds timeout = 30s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(2ms);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }
  pid_t pid() const { return pid_; }
  int sentinel() const { return sentinel_; }

 private:
  pid_t pid_ = -1;
  int sentinel_ = -1;
};

std::string pattern(std::size_t size) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>('a' + i * 7 % 26);
  return text;
}

// Echoes byte messages until "STOP".
int echo(Connection conn) {
  for (;;) {
    std::string message = conn.recv_bytes();
    if (message == "STOP") return 0;
    conn.send_bytes(message);
  }
}

// recv_bytes that fails the test instead of hanging when nothing comes.
std::string recv_within(Connection& conn, std::chrono::seconds timeout = 30s) {
  REQUIRE(conn.poll(timeout));
  return conn.recv_bytes();
}

void write_raw(int fd, std::string_view bytes) {
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
}

// A reading end and a raw writing end, both kinds a Connection reads from.
struct RawPeer {
  Connection reader;
  int writer;  // closed by the test
};
RawPeer raw_peer(bool socket) {
  int ends[2];
  REQUIRE((socket ? ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends)
                  : ::pipe2(ends, O_CLOEXEC)) == 0);
  return {Connection(ends[0], true, socket), ends[1]};
}

// Runs `call` in a thread; the seconds it took, or nullopt if it had not
// returned after `limit` (then `unblock` is run and the thread joined).
template <class Call, class Unblock>
std::optional<double> seconds_to_return(Call&& call, std::chrono::milliseconds limit,
                                        Unblock&& unblock) {
  auto start = std::chrono::steady_clock::now();
  std::promise<void> done;
  auto returned = done.get_future();
  std::thread runner([&] {
    try {
      call();
    } catch (...) {
    }
    done.set_value();
  });
  bool in_time = returned.wait_for(limit) == std::future_status::ready;
  double took = seconds_since(start);
  if (!in_time) unblock();
  runner.join();
  return in_time ? std::optional<double>(took) : std::nullopt;
}

std::size_t open_descriptors() {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                                std::filesystem::directory_iterator()));
}

// A /proc/self/status field in KiB (VmRSS, VmHWM).
long status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return -1;
}

// Message `index` of a run: its index, then a pattern of a length that varies.
std::string numbered(int index) {
  std::string text = std::to_string(index) + ":";
  return text + pattern(static_cast<std::size_t>(index) * 7919 % 100'000);
}
bool is_numbered(const std::string& message, int& index) {
  auto colon = message.find(':');
  if (colon == std::string::npos) return false;
  index = std::stoi(message.substr(0, colon));
  return message == numbered(index);
}

}  // namespace

TEST_CASE("objects and bytes round-trip through a duplex Pipe in both directions") {
  auto [a, b] = Pipe();
  CHECK(a.readable());
  CHECK(a.writable());
  a.send(std::vector<double>{1, 2.25, -3});
  CHECK(b.recv<std::vector<double>>() == std::vector<double>{1, 2.25, -3});
  b.send(std::make_tuple(std::string("x"), 7, std::map<int, std::string>{{1, "one"}}));
  auto [s, n, m] = a.recv<std::tuple<std::string, int, std::map<int, std::string>>>();
  CHECK(s == "x");
  CHECK(n == 7);
  CHECK(m.at(1) == "one");
  a.send_bytes("hello world");
  CHECK(b.recv_bytes() == "hello world");
  CHECK(a.fileno() != b.fileno());
}

TEST_CASE("send_bytes checks offset and size as Python does") {
  auto [a, b] = Pipe();
  const std::string msg = "abcdefghijklmnopqrstuvwxyz";
  a.send_bytes(msg, 5);
  CHECK(b.recv_bytes() == msg.substr(5));
  a.send_bytes(msg, 7, 8);
  CHECK(b.recv_bytes() == msg.substr(7, 8));
  a.send_bytes(msg, 26);
  CHECK(b.recv_bytes() == "");
  a.send_bytes(msg, 26, 0);
  CHECK(b.recv_bytes() == "");
  CHECK_THROWS_AS(a.send_bytes(msg, 27), mp::ValueError);
  CHECK_THROWS_AS(a.send_bytes(msg, 22, 5), mp::ValueError);
  CHECK_THROWS_AS(a.send_bytes(msg, 26, 1), mp::ValueError);
  CHECK(error_text<mp::ValueError>([&] { a.send_bytes(msg, 22, 5); })
            .find("Connection.send_bytes: buffer length < offset + size") == 0);
  std::array<std::byte, 4> raw{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  a.send_bytes(std::span<const std::byte>(raw), 1, 2);
  CHECK(b.recv_bytes() == std::string("\x02\x03"));
  CHECK_FALSE(b.poll());  // nothing left over from the rejected calls
}

TEST_CASE("recv_bytes_into honours the offset; BufferTooShort carries the whole message") {
  auto [a, b] = Pipe();
  std::array<std::byte, 10> buffer{};
  a.send_bytes("wxyz");
  CHECK(b.recv_bytes_into(buffer, 3) == 4);
  CHECK(std::memcmp(buffer.data() + 3, "wxyz", 4) == 0);
  CHECK(buffer[2] == std::byte{0});
  CHECK(buffer[7] == std::byte{0});

  const std::string longmsg = pattern(110);
  a.send_bytes(longmsg);
  try {
    b.recv_bytes_into(buffer);
    FAIL("no BufferTooShort");
  } catch (const mp::BufferTooShort& e) {
    CHECK(e.message() == longmsg);
  }
  CHECK_THROWS_AS(b.recv_bytes_into(buffer, 11), mp::ValueError);
  a.send_bytes("after");
  CHECK(b.recv_bytes() == "after");  // the too-long message was consumed, nothing else
}

TEST_CASE("a zero-length message is a message; poll never consumes it") {
  auto [a, b] = Pipe();
  CHECK_FALSE(a.poll());
  b.send_bytes("");
  CHECK(a.poll());
  CHECK(a.poll());
  CHECK(mp::wait({a.fileno()}, 0s) == std::vector<int>{a.fileno()});
  CHECK(a.recv_bytes() == "");
  CHECK_FALSE(a.poll());
}

TEST_CASE("poll waits as long as asked and answers at once when a message is there") {
  auto [a, b] = Pipe();
  auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(a.poll());
  CHECK_FALSE(a.poll(-1s));
  CHECK(seconds_since(start) < 0.5);
  start = std::chrono::steady_clock::now();
  CHECK_FALSE(a.poll(200ms));
  CHECK(seconds_since(start) >= 0.2);
  CHECK(seconds_since(start) < 2.0);
  b.send(true);
  start = std::chrono::steady_clock::now();
  CHECK(a.poll(10s));
  CHECK(seconds_since(start) < 1.0);
  CHECK(a.recv<bool>());
}

// recv() reads without blocking for a few microseconds before it sleeps (a
// reply is often that close); a receiver whose messages come slowly must stop
// doing so and sleep, using no CPU.
TEST_CASE("a receiver waiting for slow messages sleeps instead of spinning") {
  auto [receiver, sender] = Pipe();
  constexpr int messages = 12;
  mp::Process child([&, receiver = receiver]() mutable {
    if (receiver.recv<int>() != 0) mp::exit(2);
    auto start = test_support::thread_cpu_time();  // the waits from here on
    for (int i = 1; i < messages; ++i)
      if (receiver.recv<int>() != i) mp::exit(2);
    receiver.send(static_cast<long>(
        std::chrono::duration_cast<std::chrono::microseconds>(test_support::thread_cpu_time() - start).count()));
  });
  child.start();
  for (int i = 0; i < messages; ++i) {
    std::this_thread::sleep_for(40ms);
    sender.send(i);
  }
  REQUIRE(sender.poll(30s));
  long cpu_microseconds = sender.recv<long>();
  child.join(30s);
  CHECK(child.exitcode() == 0);
  // 440 ms of waiting: a receiver that spun through its waits would have
  // used about that much CPU.
  CHECK(cpu_microseconds < 60'000 * test_support::sanitizer_slowdown);
}

TEST_CASE("Pipe(false): the first end receives, the second sends; the wrong way is an error") {
  auto [reader, writer] = Pipe(false);
  CHECK(reader.readable());
  CHECK_FALSE(reader.writable());
  CHECK_FALSE(writer.readable());
  CHECK(writer.writable());
  writer.send(1);
  CHECK(reader.recv<int>() == 1);
  CHECK(error_text<mp::ValueError>([&] { reader.send(2); }) ==
        "Connection.send: connection is read-only");
  CHECK(error_text<mp::ValueError>([&] { writer.recv<int>(); }) ==
        "Connection.recv: connection is write-only");
  CHECK_THROWS_AS(writer.poll(), mp::ValueError);
  CHECK_THROWS_AS(reader.send_bytes("x"), mp::ValueError);
}

TEST_CASE("close() closes every copy of the handle; later use is a ValueError") {
  auto [a, b] = Pipe();
  Connection copy = a;
  a.send(1729);
  CHECK(b.recv<int>() == 1729);
  CHECK_FALSE(copy.closed());
  copy.close();
  CHECK(a.closed());
  CHECK_NOTHROW(a.close());
  CHECK_THROWS_AS(a.recv<int>(), mp::ValueError);
  CHECK_THROWS_AS(a.send(1), mp::ValueError);
  CHECK_THROWS_AS(a.poll(), mp::ValueError);
  CHECK_THROWS_AS(a.fileno(), mp::ValueError);
  CHECK(error_text<mp::ValueError>([&] { a.recv_bytes(); }) ==
        "Connection.recv_bytes: connection is closed");
  CHECK(a.readable());
  CHECK_THROWS_AS(b.recv<int>(), mp::EOFError);
  CHECK_THROWS_AS(b.recv_bytes(), mp::EOFError);
  CHECK(b.poll());  // the end of the stream is ready: recv will not block
}

TEST_CASE("messages sent before the peer closed are read before EOFError") {
  auto [reader, writer] = Pipe(false);
  writer.send_bytes("one");
  writer.send(std::string("two"));
  writer.close();
  CHECK(reader.recv_bytes() == "one");
  CHECK(reader.recv<std::string>() == "two");
  CHECK_THROWS_AS(reader.recv_bytes(), mp::EOFError);
}

TEST_CASE("end of file inside a frame is an OSError, then EOFError") {
  for (bool inside_header : {true, false}) {
    int ends[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, ends) == 0);
    Connection conn(ends[0]);
    write_raw(ends[1], inside_header ? std::string_view("\0\0", 2)
                                     : std::string_view("\0\0\0\x0a" "abc", 7));
    ::close(ends[1]);
    std::string text = error_text<mp::OSError>([&] { conn.recv_bytes(); });
    CHECK(text.find("Connection.recv_bytes: got end of file during message") == 0);
    CHECK_THROWS_AS(conn.recv_bytes(), mp::EOFError);
  }
}

TEST_CASE("recv_bytes(maxlength) refuses a longer message and leaves it unread") {
  auto [a, b] = Pipe();
  a.send_bytes("0123456789");
  try {
    b.recv_bytes(4);
    FAIL("no error");
  } catch (const mp::OSError& e) {
    CHECK(e.code() == EMSGSIZE);
    CHECK(std::string(e.what()).find("bad message length") != std::string::npos);
  }
  CHECK(b.poll());
  CHECK(b.recv_bytes(10) == "0123456789");
}

TEST_CASE("recv of the wrong type names both types and the connection stays usable") {
  auto [a, b] = Pipe();
  a.send(std::string("a string"));
  a.send(42);
  std::string text = error_text<mp::SerializationError>([&] { b.recv<int>(); });
  CHECK(text == "Connection.recv: the message holds std::string but int was requested");
  CHECK(b.recv<int>() == 42);
  a.send_bytes("raw bytes");
  CHECK_THROWS_AS(b.recv<std::vector<int>>(), mp::SerializationError);
}

TEST_CASE("recv<T> bounds each container's count by its elements' minimum size") {
  // 520 bytes claiming 512 elements of 1 MiB: refused before anything is
  // allocated (the archive's own suite measures the memory).
  using MiB = std::array<char, 1 << 20>;
  std::uint64_t count = 512;
  std::string evil(reinterpret_cast<const char*>(&count), sizeof count);
  evil.append(512, 'x');
  std::string message;
  mp::detail::append_type_tag(message, typeid(std::vector<MiB>).name());
  message += evil;
  auto [a, b] = Pipe();
  a.send_bytes(message);
  a.send(7);
  CHECK(error_text<mp::SerializationError>([&] { b.recv<std::vector<MiB>>(); })
            .find("claims 512 elements of at least 1048576 bytes each") != std::string::npos);
  CHECK(b.recv<int>() == 7);
}

TEST_CASE("writing to a closed peer throws EPIPE and SIGPIPE never fires") {
  for (bool duplex : {true, false}) {
    auto [reader, writer] = Pipe(duplex);
    reader.close();
    try {
      writer.send_bytes("nobody listens");
      FAIL("no error");
    } catch (const mp::OSError& e) {
      CHECK(e.code() == EPIPE);
      CHECK(std::string(e.what()).find("Connection.send_bytes") == 0);
    }
  }
}

TEST_CASE("an invalid descriptor is an error, not a crash") {
  CHECK_THROWS_AS(Connection(-1), mp::ValueError);
  int ends[2];
  REQUIRE(::pipe(ends) == 0);
  ::close(ends[0]);
  ::close(ends[1]);
  try {
    Connection conn(ends[0]);
    FAIL("no error");
  } catch (const mp::OSError& e) {
    CHECK(e.code() == EBADF);
  }
  CHECK_THROWS_AS(mp::wait({ends[0]}, 0s), mp::OSError);
  CHECK_THROWS_AS(mp::wait({-3}, 0s), mp::ValueError);
  CHECK_THROWS_AS(Connection(0, false, false), mp::ValueError);
}

TEST_CASE("frame headers are Python's: 4-byte big-endian, or -1 and 8 bytes above 2 GiB") {
  auto encoded = [](std::uint64_t size) {
    auto header = mp::detail::encode_frame_header(size);
    return std::string(reinterpret_cast<const char*>(header.bytes.data()), header.size);
  };
  CHECK(encoded(0) == std::string("\0\0\0\0", 4));
  CHECK(encoded(0x01020304) == "\x01\x02\x03\x04");
  CHECK(encoded(0x7fffffff) == "\x7f\xff\xff\xff");
  CHECK(encoded(0x80000000ull) == std::string("\xff\xff\xff\xff\0\0\0\0\x80\0\0\0", 12));
  CHECK(encoded(0x123456789aull) == std::string("\xff\xff\xff\xff\0\0\0\x12\x34\x56\x78\x9a", 12));
  auto decoded = mp::detail::decode_frame_header(encoded(0x123456789aull), "test");
  REQUIRE(decoded);
  CHECK(decoded->header_size == 12);
  CHECK(decoded->payload_size == 0x123456789aull);
  CHECK_FALSE(mp::detail::decode_frame_header(std::string("\xff\xff\xff\xff\0", 5), "test"));
  CHECK(mp::detail::header_bytes_missing(std::string("\xff\xff\xff\xff\0", 5)) == 7);
  CHECK_THROWS_AS(mp::detail::decode_frame_header("\xff\xff\xff\xfe", "test"), mp::OSError);

  // The long form is accepted for any size, as Python's reader accepts it.
  int ends[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, ends) == 0);
  Connection conn(ends[0]);
  write_raw(ends[1], std::string("\xff\xff\xff\xff\0\0\0\0\0\0\0\x05hello", 17));
  CHECK(conn.poll(5s));
  CHECK(conn.recv_bytes() == "hello");
  ::close(ends[1]);
}

TEST_CASE("poll and wait never report a partial message, even one too big for the kernel") {
  int ends[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, ends) == 0);
  Connection conn(ends[0]);
  write_raw(ends[1], std::string("\0\0\0\x08" "abcd", 8));
  CHECK_FALSE(conn.poll(50ms));
  CHECK(mp::wait({conn.fileno()}, 50ms).empty());
  write_raw(ends[1], "efgh");
  CHECK(conn.poll(5s));
  CHECK(conn.recv_bytes() == "abcdefgh");
  ::close(ends[1]);

  // 4 MiB cannot sit in a socket buffer: poll reports it once the buffer is
  // full (the sender is blocked mid-message), and recv streams the rest.
  auto [a, b] = Pipe();
  const std::string big = pattern(4 << 20);
  std::thread sender([&, b = b] { Connection(b).send_bytes(big); });
  auto deadline = std::chrono::steady_clock::now() + 20s;
  bool ready = false;
  while (!ready && std::chrono::steady_clock::now() < deadline) ready = a.poll(100ms);
  CHECK(ready);
  CHECK(mp::wait({a.fileno()}, 0s) == std::vector<int>{a.fileno()});
  CHECK(a.recv_bytes() == big);
  sender.join();
  CHECK_FALSE(a.poll());
}

TEST_CASE("sends from several threads never interleave frames") {
  auto [a, b] = Pipe();
  constexpr int kThreads = 4, kMessages = 20;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t)
    senders.emplace_back([conn = a, t]() mutable {
      for (int i = 0; i < kMessages; ++i) conn.send_bytes(std::string(300'000, char('A' + t)));
    });
  std::map<char, int> counts;
  for (int i = 0; i < kThreads * kMessages; ++i) {
    REQUIRE(b.poll(20s));
    std::string message = b.recv_bytes();
    REQUIRE(message.size() == 300'000u);
    CHECK(std::count(message.begin(), message.end(), message[0]) == 300'000);
    ++counts[message[0]];
  }
  for (auto& sender : senders) sender.join();
  for (int t = 0; t < kThreads; ++t) CHECK(counts[char('A' + t)] == kMessages);
}

TEST_CASE("a child process echoes objects, bytes and a 16 MiB message (test_connection)") {
  auto [conn, child_conn] = Pipe();
  Child child([child_conn = child_conn]() { return echo(child_conn); });
  child_conn.close();  // test_spawn_close: closing our copy at once is fine
  conn.send_bytes("hello world");
  CHECK(recv_within(conn) == "hello world");
  conn.send_bytes("");
  CHECK(recv_within(conn) == "");
  const std::string really_big = std::string(16 << 20, 'X');
  std::thread sender([conn, &really_big]() mutable { conn.send_bytes(really_big); });
  CHECK(recv_within(conn) == really_big);
  sender.join();
  conn.send_bytes("STOP");
  REQUIRE(conn.poll(30s));
  CHECK_THROWS_AS(conn.recv_bytes(), mp::EOFError);
  CHECK(child.join() == 0);
}

TEST_CASE("a 64 MiB message crosses processes whole, through recv and through poll") {
  auto [reader, writer] = Pipe(false);
  const std::size_t size = 64u << 20;
  Child child([writer = writer, size]() mutable {
    std::string big = pattern(size);
    writer.send_bytes(big);
    writer.send_bytes(big);
    return 0;
  });
  writer.close();
  const std::string expected = pattern(size);
  CHECK(recv_within(reader) == expected);
  auto deadline = std::chrono::steady_clock::now() + 30s;
  bool ready = false;
  while (!ready && std::chrono::steady_clock::now() < deadline) ready = reader.poll(100ms);
  REQUIRE(ready);
  CHECK(reader.recv_bytes() == expected);
  REQUIRE(reader.poll(30s));
  CHECK_THROWS_AS(reader.recv_bytes(), mp::EOFError);
  CHECK(child.join() == 0);
}

TEST_CASE("a peer that dies in the middle of a frame gives an error, not a hang") {
  auto [a, b] = Pipe();
  Child child([b = b]() {
    const char partial[] = "\0\0\x10\0" "only part of it";
    ::write(b.fileno(), partial, sizeof partial - 1);
    ::kill(::getpid(), SIGKILL);
    return 0;
  });
  b.close();
  CHECK(a.poll(20s));  // the end of the stream counts as ready
  CHECK_THROWS_AS(a.recv_bytes(), mp::OSError);
  CHECK_THROWS_AS(a.recv_bytes(), mp::EOFError);
  CHECK(child.join() == -SIGKILL);
}

TEST_CASE("poll sees messages that arrive one by one (_TestPoll.test_strings)") {
  const std::vector<std::string> strings = {"hello", "", "a", "b", "", "bye", "", "lop"};
  auto [a, b] = Pipe();
  Child child([b = b, &strings]() mutable {
    for (const auto& s : strings) {
      std::this_thread::sleep_for(20ms);
      b.send_bytes(s);
    }
    return 0;
  });
  b.close();
  for (const auto& s : strings) {
    bool ready = false;
    for (int i = 0; i < 1000 && !ready; ++i) ready = a.poll(10ms);
    REQUIRE(ready);
    CHECK(a.recv_bytes() == s);
  }
  CHECK(child.join() == 0);
}

TEST_CASE("poll does not merge messages (_TestPoll.test_dont_merge)") {
  auto [a, b] = Pipe();
  CHECK_FALSE(a.poll(0s));
  CHECK_FALSE(a.poll(100ms));
  Child child([b = b]() mutable {
    b.send_bytes("a");
    b.send_bytes("b");
    b.send_bytes("cd");
    return 0;
  });
  REQUIRE(a.poll(10s));
  CHECK(a.recv_bytes() == "a");
  CHECK(a.poll(1s));
  CHECK(a.poll(1s));
  CHECK(a.recv_bytes() == "b");
  CHECK(a.poll(1s));
  CHECK(a.poll(0s));
  CHECK(a.recv_bytes() == "cd");
  CHECK(child.join() == 0);
}

TEST_CASE("a process that polls takes nothing with it (_TestPoll.test_boundaries)") {
  for (bool duplex : {false, true}) {
    auto [r, w] = Pipe(duplex);
    Child child([r = r]() mutable { return r.poll(5s) && mp::wait({r.fileno()}, 0s).size() == 1 ? 0 : 1; });
    std::this_thread::sleep_for(200ms);
    // More than a pipe holds: the sender blocks in the second message.
    std::thread sender([w = w]() mutable {
      w.send_bytes("first");
      w.send_bytes(pattern(100'000));
      w.send_bytes("third");
    });
    CHECK(child.join() == 0);
    CHECK(recv_within(r) == "first");
    CHECK(recv_within(r) == pattern(100'000));
    CHECK(recv_within(r) == "third");
    sender.join();
    CHECK_FALSE(r.poll());
  }
}

TEST_CASE("two processes sharing one end behind a Lock each receive whole messages") {
  for (bool duplex : {false, true}) {
    auto [r, w] = Pipe(duplex);
    auto [results, report] = Pipe(false);
    mp::Lock lock;
    constexpr int messages = 300;
    std::vector<std::unique_ptr<Child>> readers;
    for (int k = 0; k < 2; ++k) {
      readers.push_back(std::make_unique<Child>([r = r, report = report, &lock]() mutable {
        for (int received = 0;; ++received) {
          lock.acquire();
          std::string message = r.recv_bytes();
          lock.release();
          int index = -1;
          if (message == "STOP") {
            report.send(received);
            return 0;
          }
          if (!is_numbered(message, index)) return 1;
        }
      }));
    }
    for (int i = 0; i < messages; ++i) w.send_bytes(numbered(i));
    w.send_bytes("STOP");
    w.send_bytes("STOP");
    int total = 0;
    for (int k = 0; k < 2; ++k) {
      REQUIRE(results.poll(30s));
      total += results.recv<int>();
    }
    CHECK(total == messages);
    for (auto& reader : readers) CHECK(reader->join() == 0);
  }
}

TEST_CASE("wait over four children's pipes collects every message (TestWait.test_wait)") {
  std::vector<Connection> readers;
  std::vector<std::unique_ptr<Child>> children;
  for (int c = 0; c < 4; ++c) {
    auto [r, w] = Pipe(false);
    children.push_back(std::make_unique<Child>([w = w, c]() mutable {
      for (int i = 0; i < 10; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds((i * 7 + c * 13) % 30));
        w.send(std::make_pair(i, c));
      }
      return 0;
    }));
    w.close();
    readers.push_back(r);
  }
  std::multiset<std::pair<int, int>> messages;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!readers.empty() && std::chrono::steady_clock::now() < deadline) {
    std::vector<int> fds;
    for (auto& r : readers) fds.push_back(r.fileno());
    for (int fd : mp::wait(fds, 10s)) {
      auto it = std::find_if(readers.begin(), readers.end(),
                             [fd](Connection& r) { return r.fileno() == fd; });
      try {
        messages.insert(it->recv<std::pair<int, int>>());
      } catch (const mp::EOFError&) {
        it->close();
        readers.erase(it);
      }
    }
  }
  CHECK(readers.empty());
  CHECK(messages.size() == 40u);
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 10; ++i) CHECK(messages.count({i, c}) == 1);
  for (auto& child : children) CHECK(child->join() == 0);
}

TEST_CASE("wait times out, and reports connections and process sentinels (test_wait_integer)") {
  auto [a, b] = Pipe();
  auto start = std::chrono::steady_clock::now();
  CHECK(mp::wait({a.fileno(), b.fileno()}, 300ms).empty());
  CHECK(seconds_since(start) >= 0.3);
  CHECK(mp::wait({a.fileno(), b.fileno()}, -1s).empty());

  Child child([] {
    std::this_thread::sleep_for(500ms);
    return 0;
  });
  std::vector<int> fds = {a.fileno(), child.sentinel(), b.fileno()};
  start = std::chrono::steady_clock::now();
  CHECK(mp::wait(fds, 20s) == std::vector<int>{child.sentinel()});
  CHECK(seconds_since(start) > 0.2);
  CHECK(seconds_since(start) < 10.0);
  a.send_bytes("");
  CHECK(mp::wait(fds, 20s) == std::vector<int>{child.sentinel(), b.fileno()});
  b.send(1);
  CHECK(mp::wait(fds) == fds);
  CHECK(child.join() == 0);
}

namespace {
volatile sig_atomic_t signals_seen = 0;
void count_signal(int) { signals_seen = signals_seen + 1; }
}  // namespace

TEST_CASE("signals do not interrupt recv or a blocked send (TestIgnoreEINTR.test_ignore)") {
  // A read-ahead receive sleeps in recvmsg itself, not in poll.
  for (bool ahead : {false, true}) {
    CAPTURE(ahead);
    auto [conn, child_conn] = Pipe();
    constexpr std::size_t kBig = 8 << 20;  // far more than a socket buffer: the send blocks
    Child child([child_conn = child_conn, ahead]() mutable {
      struct sigaction action{};
      action.sa_handler = count_signal;  // no SA_RESTART: every blocked call sees EINTR
      ::sigaction(SIGUSR1, &action, nullptr);
      if (ahead) mp::detail::read_ahead(child_conn);
      child_conn.send(std::string("ready"));
      int x = child_conn.recv<int>();
      child_conn.send(x);
      child_conn.send_bytes(std::string(kBig, 'x'));
      return signals_seen >= 2 ? 0 : 10 + signals_seen;
    });
    child_conn.close();
    REQUIRE(conn.poll(30s));
    CHECK(conn.recv<std::string>() == "ready");
    std::this_thread::sleep_for(100ms);
    ::kill(child.pid(), SIGUSR1);
    std::this_thread::sleep_for(100ms);
    conn.send(1234);
    REQUIRE(conn.poll(30s));
    CHECK(conn.recv<int>() == 1234);
    std::this_thread::sleep_for(100ms);
    ::kill(child.pid(), SIGUSR1);
    CHECK(recv_within(conn) == std::string(kBig, 'x'));
    CHECK(child.join() == 0);
  }
}

TEST_CASE("interop: Python's multiprocessing.connection reads and writes the same pipe, every version") {
  for (const auto& python : test_support::python_interpreters()) {
    CAPTURE(python.version);
    auto [conn, python_end] = Pipe();
    mp::Process peer([&, fd = python_end.fileno()] {
      ::dup2(fd, 3);  // dup2 clears close-on-exec
      ::execlp(python.path.c_str(), python.path.c_str(), MP_SOURCE_ROOT "/tests/helpers/connection_peer.py",
               "3", static_cast<char*>(nullptr));
      ::_exit(127);
    });
    peer.start();
    python_end.close();
    REQUIRE(conn.poll(30s));
    CHECK(conn.recv_bytes() == "");
    CHECK(conn.recv_bytes() == "hello from python");
    std::string expected_big;
    for (int i = 0; i < 1024; ++i)
      for (int c = 0; c < 256; ++c) expected_big.push_back(static_cast<char>(c));
    REQUIRE(conn.poll(30s));
    CHECK(conn.recv_bytes() == expected_big);
    for (const std::string& message : {std::string(), std::string("abc"), pattern(100'000),
                                       pattern(3 << 20)}) {
      conn.send_bytes(message);
      REQUIRE(conn.poll(30s));
      CHECK(conn.recv_bytes() == "py:" + message);
    }
    conn.send_bytes("quit");
    REQUIRE(conn.poll(30s));
    CHECK_THROWS_AS(conn.recv_bytes(), mp::EOFError);
    peer.join(30s);
    CHECK(peer.exitcode() == 0);
  }
}

TEST_CASE("a hostile length is never ready unless the receive refuses it at once") {
  for (bool socket : {true, false}) {
    CAPTURE(socket);
    // 2^64-1: header size plus length wraps to 11. No string holds it, so the
    // receive refuses it at once, and poll says so.
    {
      auto [conn, writer] = raw_peer(socket);
      write_raw(writer, std::string(12, '\xff'));
      CHECK(conn.poll(1s));
      CHECK(mp::wait({conn.fileno()}, 1s) == std::vector<int>{conn.fileno()});
      auto took = seconds_to_return([&] {
        CHECK(error_text<mp::OSError>([&] { conn.recv_bytes(); }).find("bad message length") !=
              std::string::npos);
      }, 2s, [&] { ::close(std::exchange(writer, -1)); });
      CHECK(took.has_value());
      if (writer >= 0) ::close(writer);
    }
    // 2^40 claimed, nothing sent: not ready, and wait does not spin over it.
    {
      auto [conn, writer] = raw_peer(socket);
      write_raw(writer, std::string("\xff\xff\xff\xff\0\0\x01\0\0\0\0\0" "abc", 15));
      CHECK_FALSE(conn.poll(50ms));
      auto cpu_before = test_support::thread_cpu_time();
      CHECK(mp::wait({conn.fileno()}, 300ms).empty());
      auto cpu = test_support::thread_cpu_time() - cpu_before;
      CHECK(cpu < 50ms * test_support::sanitizer_slowdown);
      ::close(writer);
      CHECK(conn.poll(1s));  // the peer is gone: the receive fails at once
      CHECK(error_text<mp::OSError>([&] { conn.recv_bytes(); }) ==
            "Connection.recv_bytes: got end of file during message (3 of 1099511627776 payload bytes)");
      CHECK_THROWS_AS(conn.recv_bytes(), mp::EOFError);
    }
  }
}

TEST_CASE("a receive waits for a frame written one byte at a time, bounded or not") {
  // Each frame arrives in pieces: first part of its header (a socket is then
  // readable yet holds no whole header), then the rest of it, then the
  // payload, byte by byte; the writer stays connected throughout. Read ahead
  // too: a message split across many reads.
  const std::string first = std::string("\0\0\0\x05", 4) + "hello";
  const std::string second = std::string("\xff\xff\xff\xff\0\0\0\0\0\0\0\x03", 12) + "bye";
  for (bool socket : {true, false}) {
    for (auto [bounded, ahead] : {std::pair{false, false}, {true, false}, {false, true}, {true, true}}) {
      CAPTURE(socket);
      CAPTURE(bounded);
      CAPTURE(ahead);
      auto [conn, writer] = raw_peer(socket);
      if (ahead) mp::detail::read_ahead(conn);
      int release[2];
      REQUIRE(::pipe2(release, O_CLOEXEC) == 0);
      Child child([&] {
        ::close(release[1]);
        for (const std::string& frame : {first, second})
          for (char byte : frame) {
            if (::write(writer, &byte, 1) != 1) return 1;
            std::this_thread::sleep_for(2ms);
          }
        char ignored;
        ::read(release[0], &ignored, 1);  // connected until the parent is done
        return 0;
      });
      ::close(release[0]);
      ::close(writer);
      std::vector<std::string> got;
      auto took = seconds_to_return([&] {
        for (int i = 0; i < 2; ++i) got.push_back(bounded ? conn.recv_bytes(64) : conn.recv_bytes());
      }, 20s, [&] { child.join(0s); });
      ::close(release[1]);
      CHECK(took.has_value());
      CHECK(got == std::vector<std::string>{"hello", "bye"});
      CHECK(child.join() == 0);
    }
  }
}

TEST_CASE("truncation messages count the part that was cut") {
  const std::pair<std::string, std::string> cases[] = {
      {std::string("\0\0", 2), "(2 of 4 header bytes)"},
      {std::string("\xff\xff\xff\xff\0\0", 6), "(6 of 12 header bytes)"},
      {std::string("\0\0\0\x05" "ab", 6), "(2 of 5 payload bytes)"},
      {std::string("\xff\xff\xff\xff\0\0\0\0\0\0\0\x0b", 12), "(0 of 11 payload bytes)"},
  };
  for (bool ahead : {false, true}) {
    for (const auto& [bytes, expected] : cases) {
      CAPTURE(ahead);
      auto [conn, writer] = raw_peer(true);
      if (ahead) mp::detail::read_ahead(conn);
      write_raw(writer, bytes);
      ::close(writer);
      CHECK(error_text<mp::OSError>([&] { conn.recv_bytes(); }) ==
            "Connection.recv_bytes: got end of file during message " + expected);
    }
  }
}

TEST_CASE("close() returns at once and a thread blocked in recv or poll fails promptly") {
  // A read-ahead socket's receive sleeps in recvmsg itself, not in poll.
  for (auto [duplex, ahead] : {std::pair{true, false}, {false, false}, {true, true}, {false, true}}) {
    CAPTURE(duplex);
    CAPTURE(ahead);
    for (bool in_poll : {false, true}) {
      CAPTURE(in_poll);
      auto [reader, writer] = Pipe(duplex);
      if (ahead) mp::detail::read_ahead(reader);
      const int fd = reader.fileno();
      std::atomic<int> code{0};
      std::atomic<double> failed_after{-1};
      std::chrono::steady_clock::time_point closed_at;
      std::promise<void> left;
      auto has_left = left.get_future();
      std::thread blocked([&, reader = reader]() mutable {
        try {
          if (in_poll)
            reader.poll(60s);
          else
            reader.recv_bytes();
        } catch (const mp::OSError& e) {
          code = e.code();
          failed_after = seconds_since(closed_at);
        }
        left.set_value();
      });
      std::this_thread::sleep_for(100ms);  // the reader is asleep in the kernel
      closed_at = std::chrono::steady_clock::now();
      auto took = seconds_to_return([&] { reader.close(); }, 300ms, [&] { writer.close(); });
      REQUIRE(took.has_value());
      CHECK(*took < 0.3);
      // A reader that close() failed to wake is freed by the end of the stream.
      if (has_left.wait_for(10s) != std::future_status::ready) writer.close();
      blocked.join();
      CHECK(code == EBADF);
      CHECK(failed_after >= 0);
      CHECK(failed_after < 0.3);
      CHECK(::fcntl(fd, F_GETFD) == -1);  // closed once the reader left
    }
  }
}

TEST_CASE("a big message costs its size in memory, once") {
  const std::size_t size = (256u << 20) + 1;
  auto [reader, writer] = Pipe(false);
  Child child([reader = reader, size]() mutable {
    std::ofstream("/proc/self/clear_refs") << "5";  // VmHWM from here on
    long before = status_kib("VmRSS");
    std::string message = reader.recv_bytes();
    long peak = status_kib("VmHWM");
    if (message.size() != size || message.back() != pattern(size).back()) return 1;
    long grown_kib = peak - before;
    return grown_kib < static_cast<long>(size / 1024 * 3 / 2) ? 0 : 2;
  });
  reader.close();
  writer.send_bytes(pattern(size));
  CHECK(child.join(60s) == 0);
}

TEST_CASE("a Connection or Pipe that fails to build leaves no descriptor behind") {
  for (bool duplex : {true, false}) {
    for (int skip : {0, 1}) {
      CAPTURE(duplex);
      CAPTURE(skip);
      std::size_t before = open_descriptors();
      mp::detail::inject_fault("fstat", EIO, 1, skip);
      CHECK_THROWS_AS(Pipe(duplex), mp::OSError);
      mp::detail::clear_faults();
      CHECK(open_descriptors() == before);
    }
  }
  int ends[2];
  REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
  ::close(ends[1]);
  mp::detail::inject_fault("fstat", EIO);
  CHECK_THROWS_AS(Connection{ends[0]}, mp::OSError);
  mp::detail::clear_faults();
  CHECK(::fcntl(ends[0], F_GETFD) == -1);  // taken over, so closed
}

TEST_CASE("a child forked after a receive continues where its parent stopped") {
  auto [reader, writer] = Pipe(false);
  writer.send(1);
  writer.send(2);
  writer.send_bytes("three");
  CHECK(reader.recv<int>() == 1);
  Child child([reader = reader]() mutable {
    if (reader.recv<int>() != 2) return 1;
    if (reader.recv_bytes() != "three") return 2;
    return reader.poll() ? 3 : 0;
  });
  CHECK(child.join() == 0);
}

TEST_CASE("wait reports an mp::Process sentinel when the process ends") {
  auto [a, b] = Pipe();
  mp::Process sleeper([] { std::this_thread::sleep_for(300ms); });
  sleeper.start();
  auto start = std::chrono::steady_clock::now();
  CHECK(mp::wait({a.fileno(), sleeper.sentinel()}, 20s) == std::vector<int>{sleeper.sentinel()});
  CHECK(seconds_since(start) > 0.1);
  sleeper.join(20s);
  CHECK(sleeper.exitcode() == 0);
}

TEST_CASE("wait over objects: a mixed list gives the ready objects, in the order given") {
  auto [a, b] = Pipe();
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0));
  mp::Process sleeper([] { std::this_thread::sleep_for(600ms); });
  sleeper.start();

  auto start = std::chrono::steady_clock::now();
  CHECK(mp::wait({a, listener, sleeper}, 200ms).empty());
  CHECK(seconds_since(start) >= 0.2);
  CHECK(mp::wait({a, listener, sleeper}, -1s).empty());

  b.send(1);
  auto ready = mp::wait({listener, a, sleeper}, 5s);
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].refers_to(a));
  CHECK(ready[0].get_if<Connection>() == &a);
  CHECK(ready[0].get_if<mp::Listener>() == nullptr);
  CHECK_FALSE(ready[0].refers_to(b));  // b is the other end, not a handle of a

  Connection client = mp::Client(listener.address());
  CHECK(mp::wait({a, listener, sleeper}, 5s) == std::vector<mp::Waitable>{a, listener});
  CHECK(mp::wait({sleeper, listener, a}, 5s) == std::vector<mp::Waitable>{listener, a});
  auto served = listener.accept(0ms);
  REQUIRE(served.has_value());
  CHECK(mp::wait({listener, a}, 0s) == std::vector<mp::Waitable>{a});  // nothing left to accept

  start = std::chrono::steady_clock::now();
  CHECK(mp::wait({listener, sleeper}, 20s) == std::vector<mp::Waitable>{sleeper});
  CHECK(seconds_since(start) < 10.0);
  CHECK(mp::wait({sleeper, a, listener}) == std::vector<mp::Waitable>{sleeper, a});
  CHECK(a.recv<int>() == 1);
  sleeper.join(20s);
  CHECK(sleeper.exitcode() == 0);
  CHECK(mp::wait({sleeper}, 0s) == std::vector<mp::Waitable>{sleeper});  // valid after join
}

TEST_CASE("wait over objects: closed handles are refused, closed peers and closes meanwhile are ready") {
  auto [a, b] = Pipe();
  auto [c, d] = Pipe();
  mp::Process unstarted([] {});
  CHECK(error_text<mp::ValueError>([&] { mp::wait({a, unstarted}, 0s); }).find("not started") !=
        std::string::npos);
  c.close();
  CHECK(error_text<mp::ValueError>([&] { mp::wait({a, c}, 0s); }).find("Connection.fileno") !=
        std::string::npos);

  // The peer's close makes the end ready at once; its receive says why.
  auto [quiet, quiet_peer] = Pipe();
  b.close();
  auto start = std::chrono::steady_clock::now();
  CHECK(mp::wait({quiet, a}, 5s) == std::vector<mp::Waitable>{a});
  CHECK(seconds_since(start) < 0.3);
  CHECK_THROWS_AS(a.recv<int>(), mp::EOFError);

  // An end closed by another thread while the wait sleeps wakes it.
  auto [e, f] = Pipe();
  std::thread closer([e = e]() mutable {
    std::this_thread::sleep_for(100ms);
    e.close();
  });
  start = std::chrono::steady_clock::now();
  CHECK(mp::wait({e}, 10s) == std::vector<mp::Waitable>{e});
  CHECK(seconds_since(start) < 0.3 * test_support::sanitizer_slowdown + 0.1);
  closer.join();
}

TEST_CASE("wait over a range of one type gives pointers to the ready elements") {
  std::vector<Connection> readers, writers;
  for (int i = 0; i < 3; ++i) {
    auto [r, w] = Pipe(false);
    readers.push_back(r);
    writers.push_back(w);
  }
  CHECK(mp::wait(readers, 0s).empty());
  writers[2].send(2);
  writers[1].send(1);
  CHECK(mp::wait(readers, 5s) == std::vector<Connection*>{&readers[1], &readers[2]});
  for (Connection* reader : mp::wait(readers)) CHECK(reader->recv<int>() == reader - readers.data());

  std::vector<mp::Process> workers;
  workers.emplace_back([] {});
  workers.emplace_back([] { std::this_thread::sleep_for(30s); });
  for (auto& worker : workers) worker.start();
  CHECK(mp::wait(workers, 20s) == std::vector<mp::Process*>{&workers[0]});
  workers[1].terminate();
  workers[1].join(20s);
  CHECK(mp::wait(workers, 0s) == std::vector<mp::Process*>{&workers[0], &workers[1]});
  for (auto& worker : workers) worker.join(20s);
}

TEST_CASE("repr and operator<< of a Connection: its descriptor and directions, or closed") {
  auto [a, b] = Pipe();
  auto [reader, writer] = Pipe(false);
  CHECK(a.repr() == "<Connection fileno=" + std::to_string(a.fileno()) + " readable writable>");
  CHECK(reader.repr() == "<Connection fileno=" + std::to_string(reader.fileno()) + " readable>");
  std::ostringstream printed;
  printed << writer;
  CHECK(printed.str() == "<Connection fileno=" + std::to_string(writer.fileno()) + " writable>");
  Connection copy = a;
  a.close();
  CHECK(copy.repr() == "<Connection closed>");
}

TEST_CASE("samples/pipe prints what the writer process sent") {
  test_support::Program sample({MP_BUILD_ROOT "/samples/pipe"});
  CHECK(sample.wait(30s) == 0);
  CHECK(sample.out() == "Parent received: Hello, child!\n");
}

// detail::read_ahead, the Manager's private connections: one read takes what
// the kernel holds, and what follows a message waits in the process.
namespace {

std::string frame(std::string_view payload) {
  mp::detail::FrameHeader header = mp::detail::encode_frame_header(payload.size());
  return std::string(reinterpret_cast<const char*>(header.bytes.data()), header.size) +
         std::string(payload);
}

int kernel_queued(int fd) {
  int queued = -1;
  REQUIRE(::ioctl(fd, FIONREAD, &queued) == 0);
  return queued;
}

}  // namespace

TEST_CASE("read ahead: several messages in one read are returned one by one, and poll sees them") {
  for (bool socket : {true, false}) {
    CAPTURE(socket);
    auto [conn, writer] = raw_peer(socket);
    mp::detail::read_ahead(conn);
    const std::string fourth = pattern(300);
    write_raw(writer, frame("one") + frame("") + frame(pattern(1000)) + frame(fourth).substr(0, 100));
    CHECK(recv_within(conn) == "one");
    CHECK(kernel_queued(conn.fileno()) == 0);  // the rest was read ahead, with the first
    CHECK(conn.poll());                        // and poll counts it
    CHECK(mp::wait({conn.fileno()}, 0s) == std::vector<int>{conn.fileno()});
    CHECK(recv_within(conn, 10s) == "");
    REQUIRE(conn.poll(10s));
    CHECK(conn.recv_bytes(1000) == pattern(1000));
    // Part of the fourth is held: not ready until the rest comes.
    CHECK_FALSE(conn.poll(50ms));
    CHECK(mp::wait({conn.fileno()}, 50ms).empty());
    write_raw(writer, frame(fourth).substr(100));
    CHECK(recv_within(conn) == fourth);
    CHECK_FALSE(conn.poll());
    ::close(writer);
    CHECK(conn.poll(5s));  // the end of the stream
    CHECK_THROWS_AS(conn.recv_bytes(), mp::EOFError);
  }
}

TEST_CASE("read ahead: a bounded receive refuses a longer message and keeps it") {
  auto [conn, writer] = raw_peer(true);
  mp::detail::read_ahead(conn);
  write_raw(writer, frame("0123456789") + frame("next"));
  REQUIRE(conn.poll(10s, 4));
  CHECK(error_text<mp::OSError>([&] { conn.recv_bytes(4); }).find("bad message length") !=
        std::string::npos);
  REQUIRE(conn.poll(10s));
  CHECK(conn.recv_bytes(10) == "0123456789");
  ::close(writer);
  REQUIRE(conn.poll(10s));
  CHECK(conn.recv_bytes(10) == "next");
}

TEST_CASE("read ahead: messages larger than what one read takes arrive whole, in order") {
  // Around the 64 KiB inbox (4 bytes of header: 65532 fills it exactly), and
  // far beyond it and the kernel buffer; each followed by a small message
  // that a read may bring along.
  const std::size_t sizes[] = {65531, 65532, 65533, 200'000, 4 << 20};
  auto [a, b] = Pipe();
  mp::detail::read_ahead(a);
  Child sender([&, b = b]() mutable {
    for (std::size_t size : sizes) {
      b.send_bytes(pattern(size));
      b.send_bytes("after " + std::to_string(size));
    }
    return 0;
  });
  b.close();
  for (std::size_t size : sizes) {
    CAPTURE(size);
    CHECK(recv_within(a, 10s) == pattern(size));
    CHECK(recv_within(a, 10s) == "after " + std::to_string(size));
  }
  CHECK(sender.join() == 0);
  CHECK(a.poll(10s));
  CHECK_THROWS_AS(a.recv_bytes(), mp::EOFError);
}

TEST_CASE("read ahead: a peer that dies inside a message gives an error, then EOFError") {
  // Cut in the header, in a payload that fits the inbox, in one that does not.
  const std::string cuts[] = {
      std::string("\0\0", 2),
      frame("ready first") + frame(pattern(5000)).substr(0, 3000),
      frame(pattern(300'000)).substr(0, 100'000),
  };
  for (const std::string& cut : cuts) {
    CAPTURE(cut.size());
    auto [conn, writer] = raw_peer(true);
    mp::detail::read_ahead(conn);
    Child child([&, writer = writer] {
      if (::write(writer, cut.data(), cut.size()) != static_cast<ssize_t>(cut.size())) return 1;
      ::kill(::getpid(), SIGKILL);
      return 0;
    });
    ::close(writer);
    if (cut.starts_with(frame("ready first"))) CHECK(recv_within(conn, 20s) == "ready first");
    CHECK(conn.poll(20s));  // the end of the stream counts as ready
    std::string text;
    auto took = seconds_to_return([&] {
      text = error_text<mp::OSError>([&] { conn.recv_bytes(); });
    }, 20s, [&] { conn.close(); });
    CHECK(took.has_value());
    CHECK(text.find("Connection.recv_bytes: got end of file during message") == 0);
    CHECK_THROWS_AS(conn.recv_bytes(), mp::EOFError);
    CHECK(child.join() == -SIGKILL);
  }
}

TEST_CASE("read ahead: a forked child cannot read on from its parent's inbox") {
  auto [a, b] = Pipe();
  mp::detail::read_ahead(a);
  b.send_bytes("first");
  b.send_bytes("second");
  CHECK(recv_within(a) == "first");
  Child child([a = a]() mutable {
    std::string text = error_text<mp::ValueError>([&] { a.recv_bytes(); });
    if (text.find("reads ahead for process") == std::string::npos) return 1;
    return error_text<mp::ValueError>([&] { a.poll(); }) != "no exception" ? 0 : 2;
  });
  CHECK(child.join() == 0);
  CHECK(recv_within(a) == "second");
}
