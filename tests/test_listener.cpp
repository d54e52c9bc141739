// Listener and Client: multiprocessing.connection over TCP, Unix and abstract
// sockets, wire-compatible with real Python in both roles, and robust against
// peers that lie, stall or shout.
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/un.h>

#include <atomic>
#include <cstring>
#include <optional>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "mp/connection.hpp"
#include "mp/detail/handshake.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/process.hpp"
#include "python_versions.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using test_support::Program;

namespace {

const std::string peer_script = MP_SOURCE_ROOT "/tests/helpers/py_connection_peer.py";

using test_support::hex;

int open_descriptors() {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++count;
  return count;
}

// A raw TCP socket connected to `address`, driven by hand.
int raw_connect(const mp::Address& address) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(address.port);
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&in), sizeof in) == 0);
  return fd;
}

// Closes with a reset instead of a FIN, as a port scanner does.
void reset_close(int fd) {
  linger abort_on_close{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
  ::close(fd);
}

std::string unique_path(const char* tag) {
  return "/tmp/mp-test-" + std::string(tag) + "-" + std::to_string(::getpid());
}

// A Connection that the test drives by hand, speaking raw frames.
std::pair<mp::Connection, int> raw_peer(const mp::Address& address) {
  int fd = raw_connect(address);
  return {mp::Connection(::dup(fd)), fd};
}

}  // namespace

TEST_CASE("TCP port 0 picks a free port; address() reports it; send and recv work both ways") {
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0));
  REQUIRE(listener.address().port != 0);
  mp::Process client([address = listener.address()] {
    auto connection = mp::Client(address);
    connection.send(std::string("ping"));
    if (connection.recv<int>() != 42) mp::exit(2);
  });
  client.start();
  auto connection = listener.accept();
  CHECK(connection.poll(30s));
  CHECK(connection.recv<std::string>() == "ping");
  connection.send(42);
  client.join(30s);
  CHECK(client.exitcode() == 0);
  REQUIRE(listener.last_accepted().has_value());
  CHECK(listener.last_accepted()->host == "127.0.0.1");
}

TEST_CASE("Unix sockets: the file exists while listening and is removed by close()") {
  std::string path = unique_path("unix");
  mp::Listener listener(mp::unix_address(path), std::string("key"));
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK(S_ISSOCK(info.st_mode));
  mp::Process client([path] {
    auto connection = mp::Client(mp::unix_address(path), std::string("key"));
    connection.send_bytes("over unix");
  });
  client.start();
  auto connection = listener.accept();
  CHECK(connection.recv_bytes() == "over unix");
  client.join(30s);
  listener.close();
  CHECK(::stat(path.c_str(), &info) == -1);
  CHECK(listener.closed());
  CHECK_THROWS_AS(listener.accept(), mp::ValueError);
}

TEST_CASE("abstract Unix names leave no file") {
  std::string name = std::string("\0mp-test-abstract-", 18) + std::to_string(::getpid());
  mp::Listener listener(mp::unix_address(name));
  CHECK(listener.address().abstract());
  mp::Process client([name] { mp::Client(mp::unix_address(name)).send_bytes("abstract"); });
  client.start();
  CHECK(listener.accept().recv_bytes() == "abstract");
  client.join(30s);
}

TEST_CASE("binding an address in use is an error; bad addresses are errors") {
  mp::Listener first(mp::tcp_address("127.0.0.1", 0));
  try {
    mp::Listener second(first.address());
    FAIL("no exception");
  } catch (const mp::OSError& e) {
    CHECK(e.code() == EADDRINUSE);
    CHECK(std::string(e.what()).find("Listener") != std::string::npos);
  }
  CHECK_THROWS_AS(mp::Listener(mp::unix_address(std::string(200, 'x'))), mp::ValueError);
  CHECK_THROWS_AS(mp::Listener(mp::tcp_address("no.such.host.invalid", 0)), mp::OSError);
}

TEST_CASE("the authkey handshake: right key, wrong key both ways, empty key") {
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0), std::string("secret"));
  SUBCASE("right key") {
    mp::Process client([address = listener.address()] {
      mp::Client(address, std::string("secret")).send_bytes("authenticated");
    });
    client.start();
    CHECK(listener.accept().recv_bytes() == "authenticated");
    client.join(30s);
    CHECK(client.exitcode() == 0);
  }
  SUBCASE("wrong key: both sides get AuthenticationError, the listener keeps serving") {
    mp::Process client([address = listener.address()] {
      try {
        mp::Client(address, std::string("wrong"));
      } catch (const mp::AuthenticationError& e) {
        mp::exit(std::string(e.what()).ends_with(": digest sent was rejected") ? 7 : 8);
      }
      mp::exit(9);
    });
    client.start();
    try {
      listener.accept();
      FAIL("no exception");
    } catch (const mp::AuthenticationError& e) {
      CHECK(std::string(e.what()).find("failed: digest received was wrong") != std::string::npos);
    }
    client.join(30s);
    CHECK(client.exitcode() == 7);
    mp::Process good([address = listener.address()] {
      mp::Client(address, std::string("secret")).send_bytes("still serving");
    });
    good.start();
    CHECK(listener.accept().recv_bytes() == "still serving");
    good.join(30s);
  }
  SUBCASE("an empty authkey is a key") {
    mp::Listener empty(mp::tcp_address("127.0.0.1", 0), std::string());
    mp::Process client([address = empty.address()] { mp::Client(address, std::string()).send_bytes("e"); });
    client.start();
    CHECK(empty.accept().recv_bytes() == "e");
    client.join(30s);
    CHECK(client.exitcode() == 0);
  }
}

TEST_CASE("hostile peers: garbage, a huge length prefix, silence; the listener survives them all") {
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0), std::string("k"), 8, 300ms);
  SUBCASE("garbage instead of a response") {
    auto [peer, fd] = raw_peer(listener.address());
    peer.send_bytes("this is not a digest at all, not even close");
    CHECK_THROWS_AS(listener.accept(), mp::AuthenticationError);
    ::close(fd);
  }
  SUBCASE("a length prefix of 2 GiB and more") {
    auto [peer, fd] = raw_peer(listener.address());
    const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0x10, 0, 0, 0, 0, 0};
    REQUIRE(::write(fd, huge, sizeof huge) == sizeof huge);
    CHECK_THROWS_AS(listener.accept(), mp::AuthenticationError);
    ::close(fd);
  }
  SUBCASE("a peer that connects and says nothing is dropped after the handshake timeout") {
    auto [peer, fd] = raw_peer(listener.address());
    auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(listener.accept(), mp::AuthenticationError);
    auto waited = std::chrono::steady_clock::now() - start;
    CHECK(waited >= 250ms);
    CHECK(waited < 10s);
    ::close(fd);
  }
  mp::Process good([address = listener.address()] { mp::Client(address, std::string("k")).send_bytes("ok"); });
  good.start();
  CHECK(listener.accept().recv_bytes() == "ok");
  good.join(30s);
}

TEST_CASE("the handshake's digests are Python's") {
  // hmac.new(b"key", b"message", "sha256").hexdigest()
  CHECK(hex(mp::detail::hmac_digest("sha256", "key", "message")) ==
        "6e9ef29b75fffc5b7abae527d58fdadb2fe42e7219011976917343065f58ed4a");
  // hmac.new(b"key", b"message", "md5").hexdigest()
  CHECK(hex(mp::detail::hmac_digest("md5", "key", "message")) == "4e4748e62b463521f6775fbf921234b5");
  CHECK(mp::detail::hmac_digest("sha1", "key", "message").empty());  // not allowed by Python
}

TEST_CASE("interoperation with real Python, every version on the machine, both roles") {
  for (const auto& [python, version] : test_support::python_interpreters()) {
    MESSAGE("Python " << version << " (" << python << ")");
    CAPTURE(version);
    for (const char* key : {"secret", "-"}) {
      CAPTURE(key);
      std::optional<std::string> authkey;
      if (std::string(key) != "-") authkey = key;
      // Python connects to an mp::Listener.
      {
        mp::Listener listener(mp::tcp_address("127.0.0.1", 0), authkey);
        Program peer({python, peer_script, "connect", "tcp", std::to_string(listener.address().port), key});
        REQUIRE(peer.read_line(30s) == "CONNECTING");
        auto connection = listener.accept();
        CHECK(connection.recv_bytes() == "hello from python");
        connection.send_bytes("hello from c++");
        CHECK(peer.read_line(30s) == "GOT " + hex("hello from c++"));
        CHECK(connection.recv_bytes() == "++c morf olleh");
        CHECK(peer.wait(30s) == 0);
      }
      // mp::Client connects to a Python Listener.
      {
        Program peer({python, peer_script, "listen", "tcp", "0", key});
        auto line = peer.read_line(30s);
        REQUIRE(line.has_value());
        REQUIRE(line->rfind("LISTENING ", 0) == 0);
        auto port = static_cast<std::uint16_t>(std::stoi(line->substr(10)));
        auto connection = mp::Client(mp::tcp_address("127.0.0.1", port), authkey);
        CHECK(connection.recv_bytes() == "hello from python");
        connection.send_bytes(std::string("\x00\x01 binary", 9));
        CHECK(peer.read_line(30s) == "GOT " + hex(std::string("\x00\x01 binary", 9)));
        CHECK(connection.recv_bytes() == std::string("yranib \x01\x00", 9));
        CHECK(peer.wait(30s) == 0);
      }
    }
    // Wrong keys, both roles: both sides refuse.
    {
      mp::Listener listener(mp::tcp_address("127.0.0.1", 0), std::string("right"));
      Program peer({python, peer_script, "connect", "tcp", std::to_string(listener.address().port), "wrong"});
      CHECK_THROWS_AS(listener.accept(), mp::AuthenticationError);
      CHECK(peer.wait(30s) == 3);
      CHECK(peer.out().find("AUTH_FAILED digest sent was rejected") != std::string::npos);
    }
    {
      Program peer({python, peer_script, "listen", "tcp", "0", "right"});
      auto line = peer.read_line(30s);
      REQUIRE(line.has_value());
      auto port = static_cast<std::uint16_t>(std::stoi(line->substr(10)));
      CHECK_THROWS_AS(mp::Client(mp::tcp_address("127.0.0.1", port), std::string("wrong")),
                      mp::AuthenticationError);
      CHECK(peer.wait(30s) == 3);
      CHECK(peer.out().find("AUTH_FAILED digest received was wrong") != std::string::npos);
    }
  }
}

TEST_CASE("silent and trickling peers do not delay a good client: accepted within 1 s") {
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0), std::string("k"), 64);
  std::vector<int> silent, trickling;
  for (int i = 0; i < 10; ++i) silent.push_back(raw_connect(listener.address()));
  for (int i = 0; i < 10; ++i) trickling.push_back(raw_connect(listener.address()));
  std::atomic<bool> stop{false};
  std::thread trickle([&] {  // a 48-byte frame, one byte per 100 ms: never finished
    const char header[] = {0, 0, 0, 48};
    for (std::size_t sent = 0; sent < 40 && !stop; ++sent) {
      for (int fd : trickling) ::send(fd, sent < 4 ? &header[sent] : "x", 1, MSG_NOSIGNAL);
      std::this_thread::sleep_for(100ms);
    }
  });
  auto accept_good = [&](const std::string& expected) {
    auto start = std::chrono::steady_clock::now();
    auto connection = listener.accept();
    double waited = test_support::seconds_since(start);
    CHECK(connection.recv_bytes() == expected);
    CHECK(waited < 1.0);
  };
  mp::Process good([address = listener.address()] { mp::Client(address, std::string("k")).send_bytes("good"); });
  good.start();
  accept_good("good");
  good.join(30s);
  for (const auto& python : test_support::python_interpreters()) {
    CAPTURE(python.version);
    Program peer({python.path, peer_script, "connect", "tcp", std::to_string(listener.address().port), "k"});
    REQUIRE(peer.read_line(30s) == "CONNECTING");
    accept_good("hello from python");
  }
  stop = true;
  trickle.join();
  for (int fd : silent) ::close(fd);
  for (int fd : trickling) ::close(fd);
}

TEST_CASE("a port scan: every handshake failure is an AuthenticationError; a good client is still served") {
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0), std::string("k"), 512);
  mp::Process scanner([address = listener.address()] {
    for (int i = 0; i < 300; ++i) reset_close(raw_connect(address));
    const unsigned char negative[] = {0xff, 0xff, 0xff, 0xfe, 1, 2, 3};
    int fd = raw_connect(address);
    ::send(fd, negative, sizeof negative, MSG_NOSIGNAL);
    std::this_thread::sleep_for(50ms);
    reset_close(fd);
    fd = raw_connect(address);
    ::send(fd, "\0\0\0\x05garbage", 11, MSG_NOSIGNAL);
    std::this_thread::sleep_for(50ms);
    reset_close(fd);
    mp::Client(address, std::string("k")).send_bytes("good");
  });
  const int before = open_descriptors();
  scanner.start();
  int failures = 0;
  bool served = false;
  auto start = std::chrono::steady_clock::now();
  while (!served && test_support::seconds_since(start) < 30) {
    try {
      served = listener.accept().recv_bytes() == "good";
    } catch (const mp::AuthenticationError& e) {
      ++failures;
      CHECK(std::string(e.what()).find("handshake with ('127.0.0.1', ") != std::string::npos);
    }
  }
  CHECK(served);
  MESSAGE(failures << " failed handshakes reported");
  scanner.join(30s);
  CHECK(scanner.exitcode() == 0);
  CHECK(open_descriptors() == before + 1);  // the scanner's sentinel only
}

TEST_CASE("a Unix socket file is removed when the last handle goes, and only if it is ours") {
  std::string path = unique_path("drop");
  struct stat info {};
  {
    mp::Listener listener(mp::unix_address(path));
    mp::Process child([listener]() mutable { listener.close(); });  // another process: not its file
    child.start();
    child.join(30s);
    CHECK(::stat(path.c_str(), &info) == 0);
  }
  CHECK(::stat(path.c_str(), &info) == -1);
  mp::Listener again(mp::unix_address(path));  // binds: nothing left behind
  again.close();
  SUBCASE("a file someone else created at the path afterwards stays") {
    std::optional<mp::Listener> listener(std::in_place, mp::unix_address(path));
    ::unlink(path.c_str());
    int other = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(other, reinterpret_cast<sockaddr*>(&un), sizeof un) == 0);
    listener.reset();
    CHECK(::stat(path.c_str(), &info) == 0);
    ::close(other);
    ::unlink(path.c_str());
  }
}

TEST_CASE("close() wakes a blocked accept(), which never accepts on a reused descriptor") {
  for (int round = 0; round < 50; ++round) {
    mp::Listener listener(mp::tcp_address("127.0.0.1", 0), std::string("k"));
    auto blocked = std::async(std::launch::async, [listener]() mutable {
      try {
        listener.accept();
        return std::string("accepted");
      } catch (const mp::ValueError&) {
        return std::string("closed");
      }
    });
    std::this_thread::sleep_for(std::chrono::microseconds(round * 100));
    auto start = std::chrono::steady_clock::now();
    listener.close();
    // A new listener likely takes the closed descriptor's number; its client must reach it.
    mp::Listener next(mp::tcp_address("127.0.0.1", 0));
    int fd = raw_connect(next.address());
    REQUIRE(blocked.wait_for(2s) == std::future_status::ready);
    CHECK(test_support::seconds_since(start) < 0.3);
    CHECK(blocked.get() == "closed");
    next.accept().close();
    ::close(fd);
  }
}

TEST_CASE("no descriptor leaks when accept, a handshake or Client fails") {
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0), std::string("k"), 8);
  const int before = open_descriptors();
  SUBCASE("a reset during the handshake, injected") {
    mp::Process client([address = listener.address()] {
      try { mp::Client(address, std::string("k")); } catch (const mp::Error&) {}
    });
    client.start();  // armed after the fork: the child must not inherit the fault
    mp::detail::inject_fault("recv", ECONNRESET);
    CHECK(test_support::error_text<mp::AuthenticationError>([&] { listener.accept(); })
              .find("recv failed") != std::string::npos);
    mp::detail::clear_faults();
    client.join(30s);
  }
  SUBCASE("accept4 and eventfd fail") {
    mp::detail::inject_fault("eventfd", EMFILE);
    CHECK_THROWS_AS(listener.accept(), mp::OSError);
    int fd = raw_connect(listener.address());
    mp::detail::inject_fault("accept4", EMFILE);
    CHECK_THROWS_AS(listener.accept(), mp::OSError);
    mp::detail::clear_faults();
    ::close(fd);
    CHECK_THROWS_AS(listener.accept(), mp::AuthenticationError);  // the peer closed
  }
  SUBCASE("Client: connect refused, a handshake the listener never answers") {
    mp::Listener silent(mp::tcp_address("127.0.0.1", 0), std::string("k"));
    int after_silent = open_descriptors();
    CHECK_THROWS_AS(mp::Client(silent.address(), std::string("k"), 200ms), mp::AuthenticationError);
    CHECK(open_descriptors() == after_silent);
    silent.close();
    CHECK_THROWS_AS(mp::Client(silent.address()), mp::OSError);
  }
  CHECK(open_descriptors() == before);
}

TEST_CASE("fileno() is readable exactly when accept(0ms) can progress: a wait()-based server") {
  // Handshakes finish only when accept() drives them, so a server that calls
  // accept(0ms) only when mp::wait reports fileno() must still serve clients
  // that connected together, and learn of silent peers at their deadline.
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0), std::string("k"), 16, 300ms);
  constexpr int client_count = 3;
  std::vector<mp::Process> clients;
  for (int id = 0; id < client_count; ++id)
    clients.emplace_back([address = listener.address(), id] {
      auto connection = mp::Client(address, std::string("k"));
      connection.send_bytes("client " + std::to_string(id));
      if (!connection.poll(10s)) mp::exit(2);  // keep the connection open until told
    });
  for (auto& client : clients) client.start();
  int silent = raw_connect(listener.address());
  int trickling = raw_connect(listener.address());
  const char partial_header[] = {0, 0};
  ::send(trickling, partial_header, sizeof partial_header, MSG_NOSIGNAL);
  std::this_thread::sleep_for(300ms);  // all five wait in the backlog together

  std::vector<mp::Connection> accepted;
  int failures = 0, wakeups = 0;
  auto start = std::chrono::steady_clock::now();
  while ((accepted.size() < client_count || failures < 2) && test_support::seconds_since(start) < 10) {
    if (mp::wait({listener.fileno()}, 2s).empty()) continue;
    ++wakeups;
    try {
      if (auto connection = listener.accept(0ms)) accepted.push_back(std::move(*connection));
    } catch (const mp::AuthenticationError& e) {
      CHECK(std::string(e.what()).find("within 300 ms") != std::string::npos);
      ++failures;
    }
  }
  CHECK(accepted.size() == client_count);
  CHECK(failures == 2);
  CHECK(test_support::seconds_since(start) < 5);
  CHECK(wakeups < 200);  // readable means progress: no busy loop
  // The accepted sockets now hold data, but they left the set: fileno() is
  // quiet, and accept(0ms) returns at once with nothing.
  for (auto& connection : accepted) CHECK(connection.poll(5s));
  CHECK(mp::wait({listener.fileno()}, 200ms).empty());
  auto before = std::chrono::steady_clock::now();
  CHECK_FALSE(listener.accept(0ms).has_value());
  CHECK(test_support::seconds_since(before) < 0.5);
  for (auto& connection : accepted) connection.send_bytes("bye");
  for (auto& client : clients) {
    client.join(30s);
    CHECK(client.exitcode() == 0);
  }
  ::close(silent);
  ::close(trickling);
}
