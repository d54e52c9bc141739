// Listener and Client: multiprocessing.connection over TCP, Unix and abstract
// sockets, wire-compatible with real Python in both roles, and robust against
// peers that lie, stall or shout.
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "mp/connection.hpp"
#include "mp/detail/handshake.hpp"
#include "mp/process.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using test_support::Program;

namespace {

const std::string peer_script = MP_SOURCE_ROOT "/tests/helpers/py_connection_peer.py";

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string python_version(const std::string& python) {
  Program program({python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"});
  auto line = program.read_line(30s);
  program.wait(30s);
  return line.value_or("?");
}

std::string unique_path(const char* tag) {
  return "/tmp/mp-test-" + std::string(tag) + "-" + std::to_string(::getpid());
}

// A Connection that the test drives by hand, speaking raw frames.
std::pair<mp::Connection, int> raw_peer(const mp::Address& address) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(address.port);
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&in), sizeof in) == 0);
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
        mp::exit(std::string(e.what()) == "digest sent was rejected" ? 7 : 8);
      }
      mp::exit(9);
    });
    client.start();
    try {
      listener.accept();
      FAIL("no exception");
    } catch (const mp::AuthenticationError& e) {
      CHECK(std::string(e.what()) == "digest received was wrong");
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
  for (const std::string& python : test_support::python_interpreters()) {
    std::string version = python_version(python);
    if (version == "?") {
      MESSAGE("skipping " << python << ": it does not run");
      continue;
    }
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
