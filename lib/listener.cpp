#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <mutex>

#include "mp/connection.hpp"
#include "mp/detail/fd.hpp"
#include "mp/detail/handshake.hpp"
#include "mp/detail/syscall.hpp"

namespace mp {
namespace {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

SocketAddress to_socket_address(const Address& address, bool passive, std::string_view object) {
  SocketAddress result;
  if (address.family == Address::Family::unix_socket) {
    sockaddr_un un{};
    if (address.path.empty() || address.path.size() >= sizeof(un.sun_path))
      throw ValueError(std::string(object) + ": a Unix socket path must have 1 to " +
                       std::to_string(sizeof(un.sun_path) - 1) + " bytes, not " +
                       std::to_string(address.path.size()));
    if (!address.abstract() && address.path.find('\0') != std::string::npos)
      throw ValueError(std::string(object) + ": a Unix socket path cannot hold a NUL byte");
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, address.path.data(), address.path.size());
    std::memcpy(&result.storage, &un, sizeof un);
    // An abstract name is exactly its bytes; a path is NUL-terminated.
    result.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.path.size() +
                                           (address.abstract() ? 0 : 1));
    return result;
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;  // as Python, for which a (host, port) tuple means AF_INET
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* found = nullptr;
  std::string port = std::to_string(address.port);
  int rc = ::getaddrinfo(address.host.empty() ? nullptr : address.host.c_str(), port.c_str(),
                         &hints, &found);
  if (rc != 0)
    throw OSError(std::string(object) + ": cannot resolve '" + address.host + "': " +
                      ::gai_strerror(rc),
                  rc == EAI_SYSTEM ? errno : EADDRNOTAVAIL);
  std::memcpy(&result.storage, found->ai_addr, found->ai_addrlen);
  result.length = found->ai_addrlen;
  ::freeaddrinfo(found);
  return result;
}

Address from_socket_address(const SocketAddress& address) {
  if (address.storage.ss_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&address.storage);
    std::size_t length = address.length - offsetof(sockaddr_un, sun_path);
    std::string path(un->sun_path, length);
    if (!path.empty() && path[0] != '\0') path = path.c_str();  // drop the terminator
    return unix_address(std::move(path));
  }
  const auto* in = reinterpret_cast<const sockaddr_in*>(&address.storage);
  char host[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
  return tcp_address(host, ntohs(in->sin_port));
}

detail::FileDescriptor open_socket(const Address& address, std::string_view object) {
  int family = address.family == Address::Family::tcp ? AF_INET : AF_UNIX;
  return detail::FileDescriptor(detail::check(
      "socket", [&] { return ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0); }, object));
}

// The handshake's messages travel as ordinary frames on the connection, each
// within what is left of one deadline, each capped at 256 bytes.
class ConnectionChannel final : public detail::HandshakeChannel {
 public:
  ConnectionChannel(Connection& connection, std::chrono::milliseconds timeout)
      : connection_(connection), deadline_(detail::Deadline::after(timeout)), timeout_(timeout) {}

  void send_message(std::string_view message) override { connection_.send_bytes(message); }

  std::string recv_message(std::size_t max_length) override {
    auto left = deadline_.remaining().value_or(std::chrono::nanoseconds::zero());
    if (!connection_.poll(left, max_length))
      throw AuthenticationError("handshake: the peer did not answer within " +
                                std::to_string(timeout_.count()) + " ms");
    try {
      return connection_.recv_bytes(max_length);
    } catch (const EOFError&) {
      throw AuthenticationError("handshake: the peer closed the connection");
    } catch (const OSError& e) {
      throw AuthenticationError(std::string("handshake: ") + e.what());
    }
  }

 private:
  Connection& connection_;
  detail::Deadline deadline_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::string Address::to_string() const {
  if (family == Family::tcp) return "('" + host + "', " + std::to_string(port) + ")";
  if (abstract()) return "'\\0" + path.substr(1) + "'";
  return "'" + path + "'";
}

Address tcp_address(std::string host, std::uint16_t port) {
  return Address{Address::Family::tcp, std::move(host), port, {}};
}

Address unix_address(std::string path) {
  return Address{Address::Family::unix_socket, {}, 0, std::move(path)};
}

struct Listener::State {
  mutable std::mutex mutex;
  detail::FileDescriptor socket;
  Address address;
  std::optional<std::string> authkey;
  std::chrono::milliseconds handshake_timeout;
  std::optional<Address> last_accepted;
  bool unlink_on_close = false;
};

Listener::Listener(Address address, std::optional<std::string> authkey, int backlog,
                   std::chrono::milliseconds handshake_timeout)
    : state_(std::make_shared<State>()) {
  const std::string object = "Listener(" + address.to_string() + ")";
  if (backlog < 0) throw ValueError(object + ": backlog must not be negative");
  SocketAddress bind_to = to_socket_address(address, true, object);
  detail::FileDescriptor socket = open_socket(address, object);
  int one = 1;
  detail::check("setsockopt(SO_REUSEADDR)", [&] {
    return ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }, object);
  detail::check("bind", [&] { return ::bind(socket.get(), bind_to.get(), bind_to.length); }, object);
  detail::check("listen", [&] { return ::listen(socket.get(), backlog); }, object);
  SocketAddress bound;
  bound.length = sizeof bound.storage;
  detail::check("getsockname", [&] { return ::getsockname(socket.get(), bound.get(), &bound.length); },
                object);
  state_->socket = std::move(socket);
  state_->address = from_socket_address(bound);
  state_->authkey = std::move(authkey);
  state_->handshake_timeout = handshake_timeout;
  state_->unlink_on_close = address.family == Address::Family::unix_socket && !address.abstract();
}

Connection Listener::accept() {
  int listening;
  {
    std::lock_guard lock(state_->mutex);
    if (!state_->socket) throw ValueError("Listener.accept: the listener is closed");
    listening = state_->socket.get();
  }
  SocketAddress peer;
  peer.length = sizeof peer.storage;
  int fd = detail::check("accept4", [&] {
    return ::accept4(listening, peer.get(), &peer.length, SOCK_CLOEXEC);
  }, "Listener.accept");
  Connection connection(fd);
  {
    std::lock_guard lock(state_->mutex);
    state_->last_accepted = from_socket_address(peer);
  }
  if (state_->authkey) {
    ConnectionChannel channel(connection, state_->handshake_timeout);
    detail::deliver_challenge(channel, *state_->authkey);
    detail::answer_challenge(channel, *state_->authkey);
  }
  return connection;
}

Address Listener::address() const {
  std::lock_guard lock(state_->mutex);
  return state_->address;
}

std::optional<Address> Listener::last_accepted() const {
  std::lock_guard lock(state_->mutex);
  return state_->last_accepted;
}

int Listener::fileno() const {
  std::lock_guard lock(state_->mutex);
  if (!state_->socket) throw ValueError("Listener.fileno: the listener is closed");
  return state_->socket.get();
}

void Listener::close() {
  std::lock_guard lock(state_->mutex);
  if (!state_->socket) return;
  state_->socket.reset();
  if (state_->unlink_on_close) ::unlink(state_->address.path.c_str());
}

bool Listener::closed() const {
  std::lock_guard lock(state_->mutex);
  return !state_->socket;
}

Connection Client(const Address& address, std::optional<std::string> authkey,
                  std::chrono::milliseconds handshake_timeout) {
  const std::string object = "Client(" + address.to_string() + ")";
  SocketAddress target = to_socket_address(address, false, object);
  detail::FileDescriptor socket = open_socket(address, object);
  // connect() interrupted by a signal goes on in the background; calling it
  // again (as retry does) then says EALREADY until it is done.
  if (detail::retry("connect", [&] { return ::connect(socket.get(), target.get(), target.length); }) != 0 &&
      errno != EISCONN) {
    if (errno != EALREADY) detail::throw_os_error("connect", errno, object);
    pollfd writable{socket.get(), POLLOUT, 0};
    detail::check("poll", [&] { return ::poll(&writable, 1, -1); }, object);
    int error = 0;
    socklen_t length = sizeof error;
    detail::check("getsockopt(SO_ERROR)", [&] {
      return ::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    }, object);
    if (error != 0) detail::throw_os_error("connect", error, object);
  }
  Connection connection(socket.release());
  if (authkey) {
    ConnectionChannel channel(connection, handshake_timeout);
    detail::answer_challenge(channel, *authkey);
    detail::deliver_challenge(channel, *authkey);
  }
  return connection;
}

}  // namespace mp
