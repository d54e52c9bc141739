// lib/listener.cpp: Listener and Client (multiprocessing.connection) over TCP,
// Unix and abstract sockets.
//
// Invariants:
// - accept() never blocks on one peer. The accept() in progress (one at a
//   time: it holds State::driver) polls the listening socket and every
//   pending handshake together, each handshake with its own deadline, and
//   returns the first outcome; outcomes it finds meanwhile wait in order for
//   the next accept(). At most max_pending_handshakes are pending: a new
//   connection beyond that evicts the oldest, so a flood costs bounded
//   descriptors and memory and a good client still gets through.
// - Handshake I/O never blocks (MSG_DONTWAIT) and never reads past the last
//   handshake message: what the peer sends next stays in the socket for the
//   Connection.
// - Every failure of a handshake, whatever the cause (a wrong digest, a bad
//   frame, a reset, silence), is one mp::AuthenticationError from accept()
//   naming the peer and the cause; that socket is closed, the others go on.
// - The listening descriptor is closed only once no accept() uses it:
//   close() marks the listener closed, wakes the accept() in progress through
//   its eventfd and waits for it to leave, so no accept() ever runs on a
//   descriptor number that was closed and reused.
// - A Unix socket file is removed by close() or by the destruction of the
//   last handle, only in the process that bound it and only if the path
//   still names the very file it bound (device and inode).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

#include "mp/connection.hpp"
#include "mp/detail/fd.hpp"
#include "mp/detail/connection_frame.hpp"
#include "mp/detail/handshake.hpp"
#include "mp/detail/identity.hpp"
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

detail::FileDescriptor open_socket(const Address& address, int flags, std::string_view object) {
  int family = address.family == Address::Family::tcp ? AF_INET : AF_UNIX;
  return detail::FileDescriptor(detail::check(
      "socket", [&] { return ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | flags, 0); }, object));
}

// One handshake on one socket. It makes what progress the socket allows
// without blocking, so a Listener can drive many side by side.
class SocketHandshake {
 public:
  SocketHandshake(detail::FileDescriptor socket, detail::Handshake::Role role,
                  const std::string& authkey, std::chrono::milliseconds timeout)
      : socket_(std::move(socket)), handshake_(role, authkey),
        deadline_(detail::Deadline::after(timeout)), timeout_(timeout) {}

  int fd() const noexcept { return socket_.get(); }
  short events() const noexcept { return handshake_.outgoing().empty() ? POLLIN : POLLOUT; }
  const detail::Deadline& deadline() const noexcept { return deadline_; }
  detail::FileDescriptor release() noexcept { return std::move(socket_); }

  // Sends and reads what it can now; true once the handshake is over and all
  // of it sent. Every failure throws mp::AuthenticationError with the cause.
  bool advance() {
    try {
      for (;;) {
        if (!flush()) return false;
        if (handshake_.finished()) return true;
        char buffer[detail::kShortHeaderSize + detail::handshake_message_cap];
        auto got = detail::retry("recv", [&] {
          return ::recv(socket_.get(), buffer, handshake_.wanted(), MSG_DONTWAIT);
        });
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
        if (got < 0) throw peer_failure("recv", errno);
        if (got == 0) throw AuthenticationError("handshake: the peer closed the connection");
        handshake_.received(std::string_view(buffer, static_cast<std::size_t>(got)));
      }
    } catch (const AuthenticationError&) {
      // Python's #FAILURE#, where there is one, is a few bytes on a socket we
      // never filled: it goes out now or never.
      try {
        flush();
      } catch (const AuthenticationError&) {
      }
      throw;
    }
  }

  AuthenticationError timed_out() const {
    return AuthenticationError("handshake: the peer did not complete it within " +
                               std::to_string(timeout_.count()) + " ms");
  }

 private:
  static AuthenticationError peer_failure(std::string_view call, int code) {
    return AuthenticationError("handshake: " + detail::os_error_message(call, code));
  }

  bool flush() {
    while (!handshake_.outgoing().empty()) {
      std::string_view out = handshake_.outgoing();
      auto sent = detail::retry("send", [&] {
        return ::send(socket_.get(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      });
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
      if (sent < 0) throw peer_failure("send", errno);
      handshake_.sent(static_cast<std::size_t>(sent));
    }
    return true;
  }

  detail::FileDescriptor socket_;
  detail::Handshake handshake_;
  detail::Deadline deadline_;
  std::chrono::milliseconds timeout_;
};

// What accept() returns next: a connection, or the failure of one peer.
struct Outcome {
  detail::FileDescriptor socket;  // empty for a failure
  Address peer;
  std::string failure;
};

struct PendingHandshake {
  SocketHandshake handshake;
  Address peer;
  short watched_events = 0;  // what the readiness set waits for on its socket
};

// What Listener::fileno() is: an epoll set that is readable exactly when
// accept() can make progress without waiting for anyone: a new connection on
// the listening socket, traffic on a pending handshake, a handshake past its
// deadline (a timerfd armed to the earliest one), or outcomes already found
// and waiting to be returned (an eventfd). A socket leaves the set before it
// leaves the pending handshakes, while it is still open: a registration
// outlives its descriptor number when a forked child shares the socket, and
// the finished socket goes on as the caller's Connection.
class ReadinessSet {
 public:
  explicit ReadinessSet(int listening_socket) { open(listening_socket); }

  int fd() const noexcept { return epoll_.get(); }

  // A forked child shares its parent's epoll instance: the first accept() in
  // another process gives it its own set under the same descriptor number.
  void make_own(int listening_socket, std::vector<PendingHandshake>& pending) {
    if (owner_ == detail::current_pid()) return;
    detail::FileDescriptor inherited = std::move(epoll_);
    try {
      open(listening_socket);
    } catch (...) {
      epoll_ = std::move(inherited);
      throw;
    }
    // The new set takes the inherited number; the parent's set lives on in
    // the parent.
    detail::check("dup3", [&] { return ::dup3(epoll_.get(), inherited.get(), O_CLOEXEC); }, object);
    epoll_ = std::move(inherited);
    for (PendingHandshake& p : pending) {
      p.watched_events = 0;
      update(p);
    }
  }

  // Waits for what the handshake waits for now (EPOLLIN or EPOLLOUT).
  void update(PendingHandshake& p) {
    short wanted = p.handshake.events();
    if (wanted == p.watched_events) return;
    epoll_event event{};
    event.events = wanted == POLLOUT ? EPOLLOUT : EPOLLIN;
    event.data.fd = p.handshake.fd();
    int operation = p.watched_events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    detail::check("epoll_ctl", [&] { return ::epoll_ctl(epoll_.get(), operation, p.handshake.fd(), &event); },
                  object);
    p.watched_events = wanted;
  }

  // Before the socket is closed or handed over.
  void forget(PendingHandshake& p) noexcept {
    if (p.watched_events == 0) return;
    detail::retry("epoll_ctl", [&] { return ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, p.handshake.fd(), nullptr); });
    p.watched_events = 0;
  }

  // Neither call can fail on a valid eventfd or timerfd: the counter stays
  // far below its limit, and the time is valid.
  void outcomes_waiting(bool waiting) noexcept {
    std::uint64_t count = 0;
    if (waiting) {
      count = 1;
      detail::retry("write", [&] { return ::write(outcomes_.get(), &count, sizeof count); });
    } else {
      detail::retry("read", [&] { return ::read(outcomes_.get(), &count, sizeof count); });
    }
  }

  // Readable from `next` on; never when no handshake is pending.
  void next_deadline(const detail::Deadline& next) noexcept {
    itimerspec when{};
    if (!next.infinite()) {
      auto since_boot = next.time_point().time_since_epoch();
      auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_boot);
      when.it_value.tv_sec = seconds.count();
      when.it_value.tv_nsec = std::chrono::nanoseconds(since_boot - seconds).count();
      if (when.it_value.tv_sec == 0 && when.it_value.tv_nsec == 0) when.it_value.tv_nsec = 1;
    }
    detail::retry("timerfd_settime", [&] {
      return ::timerfd_settime(deadline_timer_.get(), TFD_TIMER_ABSTIME, &when, nullptr);
    });
  }

 private:
  static constexpr std::string_view object = "Listener.fileno";

  void open(int listening_socket) {
    epoll_ = detail::FileDescriptor(detail::check("epoll_create1", [] { return ::epoll_create1(EPOLL_CLOEXEC); }, object));
    outcomes_ = detail::FileDescriptor(detail::check("eventfd", [] {
      return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }, object));
    deadline_timer_ = detail::FileDescriptor(detail::check("timerfd_create", [] {
      return ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    }, object));
    for (int fd : {listening_socket, outcomes_.get(), deadline_timer_.get()}) {
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.fd = fd;
      detail::check("epoll_ctl", [&] { return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event); }, object);
    }
    owner_ = detail::current_pid();
  }

  detail::FileDescriptor epoll_;
  detail::FileDescriptor outcomes_;
  detail::FileDescriptor deadline_timer_;
  pid_t owner_ = 0;
};

// accept4 errors that belong to one vanished connection, not to the listener
// (accept(2): "treat them like EAGAIN by retrying").
bool connection_gone(int code) noexcept {
  switch (code) {
    case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN:
    case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH: case EPERM:
      return true;
    default:
      return false;
  }
}

// A socket file we bound: removed only by the process that bound it, and only
// while the path still names that file.
struct BoundFile {
  std::string path;
  dev_t device;
  ino_t inode;
  pid_t owner;

  void remove() const noexcept {
    if (detail::current_pid() != owner) return;
    struct stat now {};
    if (detail::retry("lstat", [&] { return ::lstat(path.c_str(), &now); }) != 0) return;
    if (S_ISSOCK(now.st_mode) && now.st_dev == device && now.st_ino == inode)
      detail::retry("unlink", [&] { return ::unlink(path.c_str()); });
  }
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

// At most this many handshakes are in progress on one Listener at once.
constexpr std::size_t max_pending_handshakes = 256;
// New connections taken per poll round, so a flood cannot starve the
// handshakes already in progress.
constexpr int accept_burst = 64;

struct Listener::State {
  // Guarded by mutex.
  mutable std::mutex mutex;
  bool closed = false;
  int wakeup = -1;  // the eventfd of the accept() in progress; close() writes it
  int readiness_fd = -1;  // fileno(): the same number for the listener's life
  std::optional<Address> last_accepted;

  // Set by the constructor. The socket is closed only while driver is held.
  detail::FileDescriptor socket;
  Address address;
  std::optional<std::string> authkey;
  std::chrono::milliseconds handshake_timeout{};
  std::optional<BoundFile> bound_file;

  // Held by the accept() in progress; guards what follows.
  std::mutex driver;
  std::vector<PendingHandshake> pending;
  std::deque<Outcome> outcomes;
  std::optional<ReadinessSet> readiness;  // reset by close()

  ~State() {
    if (!closed && bound_file) bound_file->remove();
  }

  class Wakeup;
  std::optional<Connection> accept_until(const detail::Deadline& deadline);
  Connection deliver_next();
  void drive(int wakeup_fd, const detail::Deadline& caller_deadline);
  void show_progress(bool outcomes_waiting) noexcept;
  bool step(PendingHandshake& handshake);
  void take_new_connections();
  void evict_oldest(std::string_view why);
};

// The eventfd through which close() wakes the accept() in progress, one per
// accept() call: a descriptor shared with a forked child could be drained by
// the child's accept() and the wake-up lost.
class Listener::State::Wakeup {
 public:
  explicit Wakeup(State& state) : state_(state) {
    fd_ = detail::FileDescriptor(detail::check("eventfd", [] {
      return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }, "Listener.accept"));
    std::lock_guard lock(state_.mutex);
    if (state_.closed) throw ValueError("Listener.accept: the listener is closed");
    state_.wakeup = fd_.get();
  }
  ~Wakeup() {
    std::lock_guard lock(state_.mutex);
    state_.wakeup = -1;
  }
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  int fd() const noexcept { return fd_.get(); }

 private:
  State& state_;
  detail::FileDescriptor fd_;
};

Listener::Listener(Address address, std::optional<std::string> authkey, int backlog,
                   std::chrono::milliseconds handshake_timeout)
    : state_(std::make_shared<State>()) {
  const std::string object = "Listener(" + address.to_string() + ")";
  if (backlog < 0) throw ValueError(object + ": backlog must not be negative");
  SocketAddress bind_to = to_socket_address(address, true, object);
  // Non-blocking: a connection that another process sharing the socket took
  // first must not leave accept4 waiting while handshakes are pending.
  detail::FileDescriptor socket = open_socket(address, SOCK_NONBLOCK, object);
  int one = 1;
  detail::check("setsockopt(SO_REUSEADDR)", [&] {
    return ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }, object);
  detail::check("bind", [&] { return ::bind(socket.get(), bind_to.get(), bind_to.length); }, object);
  if (address.family == Address::Family::unix_socket && !address.abstract()) {
    struct stat bound {};
    if (detail::retry("lstat", [&] { return ::lstat(address.path.c_str(), &bound); }) == 0)
      state_->bound_file = BoundFile{address.path, bound.st_dev, bound.st_ino, detail::current_pid()};
  }
  try {
    detail::check("listen", [&] { return ::listen(socket.get(), backlog); }, object);
    SocketAddress bound;
    bound.length = sizeof bound.storage;
    detail::check("getsockname", [&] {
      return ::getsockname(socket.get(), bound.get(), &bound.length);
    }, object);
    state_->address = from_socket_address(bound);
  } catch (...) {
    if (state_->bound_file) state_->bound_file->remove();
    state_->bound_file.reset();
    throw;
  }
  state_->readiness.emplace(socket.get());
  state_->readiness_fd = state_->readiness->fd();
  state_->socket = std::move(socket);
  state_->authkey = std::move(authkey);
  state_->handshake_timeout = handshake_timeout;
}

Connection Listener::State::deliver_next() {
  Outcome next = std::move(outcomes.front());
  outcomes.pop_front();
  {
    std::lock_guard lock(mutex);
    last_accepted = next.peer;
  }
  if (!next.failure.empty())
    throw AuthenticationError("Listener.accept: handshake with " + next.peer.to_string() +
                              " failed: " + next.failure);
  return Connection(next.socket.release());
}

// Advances one handshake; true when it ended, its outcome queued.
bool Listener::State::step(PendingHandshake& pending_handshake) {
  try {
    if (!pending_handshake.handshake.advance()) {
      readiness->update(pending_handshake);
      return false;
    }
    readiness->forget(pending_handshake);
    outcomes.push_back({pending_handshake.handshake.release(), pending_handshake.peer, {}});
  } catch (const AuthenticationError& e) {
    readiness->forget(pending_handshake);
    outcomes.push_back({{}, pending_handshake.peer, e.what()});
  }
  return true;
}

void Listener::State::evict_oldest(std::string_view why) {
  auto oldest = std::min_element(pending.begin(), pending.end(), [](const auto& a, const auto& b) {
    return a.handshake.deadline().time_point() < b.handshake.deadline().time_point();
  });
  readiness->forget(*oldest);
  outcomes.push_back({{}, oldest->peer, "handshake: dropped unfinished: " + std::string(why)});
  pending.erase(oldest);
}

void Listener::State::take_new_connections() {
  for (int taken = 0; taken < accept_burst; ++taken) {
    SocketAddress peer;
    peer.length = sizeof peer.storage;
    int fd = detail::retry("accept4", [&] {
      return ::accept4(socket.get(), peer.get(), &peer.length, SOCK_CLOEXEC);
    });
    if (fd < 0) {
      int code = errno;
      if (code == EAGAIN || code == EWOULDBLOCK) return;
      if (connection_gone(code)) continue;
      if ((code == EMFILE || code == ENFILE) && !pending.empty()) {
        evict_oldest("out of file descriptors for new connections");
        continue;
      }
      detail::throw_os_error("accept4", code, "Listener.accept");
    }
    detail::FileDescriptor accepted(fd);
    Address peer_address = from_socket_address(peer);
    if (!authkey) {
      outcomes.push_back({std::move(accepted), std::move(peer_address), {}});
      continue;
    }
    if (pending.size() >= max_pending_handshakes)
      evict_oldest(std::to_string(max_pending_handshakes) + " handshakes were in progress");
    pending.push_back({SocketHandshake(std::move(accepted), detail::Handshake::Role::listener,
                                       *authkey, handshake_timeout),
                       std::move(peer_address)});
    if (step(pending.back())) pending.pop_back();  // the challenge goes out now
  }
}

void Listener::State::drive(int wakeup_fd, const detail::Deadline& caller_deadline) {
  std::vector<pollfd> polled;
  polled.reserve(2 + pending.size());
  polled.push_back({wakeup_fd, POLLIN, 0});
  polled.push_back({socket.get(), POLLIN, 0});
  detail::Deadline next = caller_deadline;
  for (const PendingHandshake& p : pending) {
    polled.push_back({p.handshake.fd(), p.handshake.events(), 0});
    if (p.handshake.deadline().time_point() < next.time_point()) next = p.handshake.deadline();
  }
  detail::check("poll", [&] {
    return ::poll(polled.data(), polled.size(), next.poll_milliseconds());
  }, "Listener.accept");
  if (polled[0].revents != 0) {
    std::uint64_t drained;
    detail::retry("read", [&] { return ::read(wakeup_fd, &drained, sizeof drained); });
    std::lock_guard lock(mutex);
    if (closed) throw ValueError("Listener.accept: the listener was closed");
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < pending.size(); ++i) {
    bool ended;
    if (polled[2 + i].revents != 0) {
      ended = step(pending[i]);
    } else if (pending[i].handshake.deadline().expired()) {
      readiness->forget(pending[i]);
      outcomes.push_back({{}, pending[i].peer, pending[i].handshake.timed_out().what()});
      ended = true;
    } else {
      ended = false;
    }
    if (!ended && kept++ != i) pending[kept - 1] = std::move(pending[i]);
  }
  pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(kept), pending.end());
  if (polled[1].revents != 0) take_new_connections();
}

// Keeps fileno() readable while outcomes wait, and wakes it at the next
// handshake deadline.
void Listener::State::show_progress(bool outcomes_waiting) noexcept {
  readiness->outcomes_waiting(outcomes_waiting);
  detail::Deadline next = detail::Deadline::never();
  for (const PendingHandshake& p : pending)
    if (p.handshake.deadline().time_point() < next.time_point()) next = p.handshake.deadline();
  readiness->next_deadline(next);
}

// At least one round of progress, even with an expired deadline: accept(0ms)
// after mp::wait takes what is ready without blocking.
std::optional<Connection> Listener::State::accept_until(const detail::Deadline& deadline) {
  std::lock_guard driving(driver);
  Wakeup wakeup(*this);
  readiness->make_own(socket.get(), pending);
  for (bool first_round = true; outcomes.empty(); first_round = false) {
    if (!first_round && deadline.expired()) {
      show_progress(false);
      return std::nullopt;
    }
    try {
      drive(wakeup.fd(), deadline);
    } catch (...) {
      show_progress(!outcomes.empty());
      throw;
    }
  }
  show_progress(outcomes.size() > 1);
  return deliver_next();
}

Connection Listener::accept() {
  std::shared_ptr<State> state = state_;  // alive even if this handle is destroyed meanwhile
  return *state->accept_until(detail::Deadline::never());
}

std::optional<Connection> Listener::accept(std::chrono::milliseconds timeout) {
  std::shared_ptr<State> state = state_;
  return state->accept_until(detail::Deadline::after(timeout));
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
  if (state_->closed) throw ValueError("Listener.fileno: the listener is closed");
  return state_->readiness_fd;
}

void Listener::close() {
  State& state = *state_;
  {
    std::lock_guard lock(state.mutex);
    if (state.closed) return;
    state.closed = true;
    if (state.wakeup >= 0) {
      std::uint64_t one = 1;
      detail::retry("write", [&] { return ::write(state.wakeup, &one, sizeof one); });
    }
  }
  // The accept() in progress sees its wake-up and leaves; only then is the
  // descriptor closed, so its number cannot be reused under it.
  std::lock_guard driving(state.driver);
  state.pending.clear();
  state.outcomes.clear();
  state.readiness.reset();
  state.socket.reset();
  if (state.bound_file) state.bound_file->remove();
}

bool Listener::closed() const {
  std::lock_guard lock(state_->mutex);
  return state_->closed;
}

Connection Client(const Address& address, std::optional<std::string> authkey,
                  std::chrono::milliseconds handshake_timeout) {
  const std::string object = "Client(" + address.to_string() + ")";
  SocketAddress target = to_socket_address(address, false, object);
  detail::FileDescriptor socket = open_socket(address, 0, object);
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
  if (authkey) {
    SocketHandshake handshake(std::move(socket), detail::Handshake::Role::client, *authkey,
                              handshake_timeout);
    try {
      while (!handshake.advance()) {
        pollfd ready{handshake.fd(), handshake.events(), 0};
        if (detail::check("poll", [&] {
              return ::poll(&ready, 1, handshake.deadline().poll_milliseconds());
            }, object) == 0)
          throw handshake.timed_out();
      }
    } catch (const AuthenticationError& e) {
      throw AuthenticationError(object + ": " + e.what());
    }
    socket = handshake.release();
  }
  return Connection(socket.release());
}

}  // namespace mp
