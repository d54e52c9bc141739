#include "mp/connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "mp/detail/connection_frame.hpp"
#include "mp/detail/fd.hpp"
#include "mp/detail/futex.hpp"
#include "mp/detail/spin_policy.hpp"
#include "mp/detail/syscall.hpp"

namespace mp::detail {

FrameHeader encode_frame_header(std::uint64_t payload_size) noexcept {
  FrameHeader header;
  auto put_big_endian = [&](std::uint64_t value, std::size_t width) {
    for (std::size_t i = 0; i < width; ++i)
      header.bytes[header.size + i] = static_cast<unsigned char>(value >> (8 * (width - 1 - i)));
    header.size += width;
  };
  if (payload_size > kLargestShortFrame) {
    put_big_endian(0xffffffffu, 4);  // -1: an 8-byte length follows
    put_big_endian(payload_size, 8);
  } else {
    put_big_endian(payload_size, 4);
  }
  return header;
}

namespace {

std::uint64_t big_endian(std::string_view bytes) noexcept {
  std::uint64_t value = 0;
  for (char byte : bytes) value = (value << 8) | static_cast<unsigned char>(byte);
  return value;
}

bool announces_long_frame(std::string_view bytes) noexcept {
  return bytes.size() >= kShortHeaderSize && big_endian(bytes.substr(0, 4)) == 0xffffffffu;
}

}  // namespace

std::size_t header_bytes_missing(std::string_view bytes) noexcept {
  std::size_t needed = announces_long_frame(bytes) ? kLongHeaderSize : kShortHeaderSize;
  return bytes.size() >= needed ? 0 : needed - bytes.size();
}

std::optional<DecodedHeader> decode_frame_header(std::string_view bytes, std::string_view object) {
  if (header_bytes_missing(bytes) != 0) return std::nullopt;
  if (announces_long_frame(bytes))
    return DecodedHeader{kLongHeaderSize, big_endian(bytes.substr(4, 8))};
  std::uint64_t length = big_endian(bytes.substr(0, 4));
  if (length > kLargestShortFrame)
    throw OSError(std::string(object) + ": bad message header: negative length " +
                      std::to_string(static_cast<std::int32_t>(length)),
                  EPROTO);
  return DecodedHeader{kShortHeaderSize, length};
}

// Bytes read from the kernel and not yet delivered. Not zero-filled on growth,
// and consumed from the front without moving what follows.
class Inbox {
 public:
  std::string_view pending() const noexcept {
    return {data_.get() + begin_, end_ - begin_};
  }
  // Room for `size` more bytes at the end; commit() what was written there.
  char* reserve(std::size_t size) {
    if (begin_ > 0) {
      std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ + size > capacity_) {
      std::size_t capacity = std::max(end_ + size, 2 * capacity_);
      auto grown = std::make_unique_for_overwrite<char[]>(capacity);
      if (end_ > 0) std::memcpy(grown.get(), data_.get(), end_);
      data_ = std::move(grown);
      capacity_ = capacity;
    }
    return data_.get() + end_;
  }
  void commit(std::size_t size) noexcept { end_ += size; }
  void consume(std::size_t size) noexcept {
    begin_ += size;
    if (begin_ == end_) clear();
  }
  // Empties the inbox and gives back memory a big message needed.
  void clear() noexcept {
    begin_ = end_ = 0;
    if (capacity_ > kKeptCapacity) {
      data_.reset();
      capacity_ = 0;
    }
  }

 private:
  static constexpr std::size_t kKeptCapacity = 1 << 20;
  std::unique_ptr<char[]> data_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// One connection, shared by every handle copy in this process.
//
// The inbox holds bytes read from the kernel but not yet delivered. A blocking
// receive reads ahead (up to kReadAhead) so that a small message costs one
// system call; poll() and wait() read at most up to the end of the next frame,
// so a process whose poll() returned true holds exactly one whole message and
// nothing of the next. recv() serves from the inbox first. A forked child
// inherits a copy, like the rest of its memory.
class ConnectionState {
 public:
  ConnectionState(FileDescriptor fd, bool readable, bool writable, bool is_socket)
      : fd_(fd.get()), owner_(std::move(fd)), readable_(readable), writable_(writable),
        is_socket_(is_socket) {}
  ~ConnectionState();

  int fd() const noexcept { return fd_; }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  bool readable() const noexcept { return readable_; }
  bool writable() const noexcept { return writable_; }

  void require_open(std::string_view method) const {
    if (closed()) throw ValueError(std::string(method) + ": connection is closed");
  }
  void require_readable(std::string_view method) const {
    require_open(method);
    if (!readable_) throw ValueError(std::string(method) + ": connection is write-only");
  }
  void require_writable(std::string_view method) const {
    require_open(method);
    if (!writable_) throw ValueError(std::string(method) + ": connection is read-only");
  }

  void send_frame(std::string_view payload, std::string_view method);
  std::string receive(std::string_view method, std::optional<std::size_t> maxlength);
  // With maxlength, a message announced longer than that counts as ready:
  // recv_bytes(maxlength) will refuse it without reading it.
  bool poll_until(Deadline deadline, std::string_view method,
                  std::optional<std::size_t> maxlength = {});
  // For wait(): is a whole message (or the end) there? `kernel_readable` is
  // what poll(2) said about the descriptor.
  bool ready_for_wait(bool kernel_readable);
  void close();

 private:
  // Bytes read (> 0), 0 at the end of the stream, kNothingYet when a
  // non-blocking read found nothing.
  static constexpr std::ptrdiff_t kNothingYet = -1;
  std::ptrdiff_t read_into(char* buffer, std::size_t size, bool block, std::string_view method);
  std::ptrdiff_t append_to_inbox(std::size_t size, bool block, std::string_view method);
  std::ptrdiff_t spin_for_bytes(std::size_t size, std::string_view method);
  DecodedHeader read_header(std::string_view method);
  std::string read_payload(DecodedHeader header, std::string_view method);
  bool pull_available(std::string_view method, std::optional<std::size_t> maxlength);
  [[noreturn]] void throw_truncated(std::string_view method, std::uint64_t received,
                                    std::uint64_t expected);

  const int fd_;
  FileDescriptor owner_;
  const bool readable_;
  const bool writable_;
  const bool is_socket_;
  std::atomic<bool> closed_{false};
  std::mutex send_mutex_;
  std::timed_mutex recv_mutex_;
  Inbox inbox_;
  SpinPolicy spin_policy_;
};

namespace {

// Which descriptors of this process are connections, so that wait() over a
// fileno() sees the connection's inbox. The lock is taken around fork, so a
// child never inherits it held.
class Registry {
 public:
  static Registry& instance() {
    static Registry* registry = [] {
      auto* created = new Registry;  // never destroyed: used until the very end
      ::pthread_atfork([] { instance().mutex_.lock(); }, [] { instance().mutex_.unlock(); },
                       [] { instance().mutex_.unlock(); });
      return created;
    }();
    return *registry;
  }

  void add(int fd, const std::shared_ptr<ConnectionState>& state) {
    std::lock_guard guard(mutex_);
    states_[fd] = state;
  }
  // Removes the entry of a connection that is closing or being destroyed.
  void remove(int fd, const ConnectionState* state) {
    std::lock_guard guard(mutex_);
    auto found = states_.find(fd);
    if (found == states_.end()) return;
    auto current = found->second.lock();
    if (!current || current.get() == state) states_.erase(found);
  }
  std::shared_ptr<ConnectionState> find(int fd) {
    std::lock_guard guard(mutex_);
    auto found = states_.find(fd);
    return found == states_.end() ? nullptr : found->second.lock();
  }

 private:
  std::mutex mutex_;
  std::unordered_map<int, std::weak_ptr<ConnectionState>> states_;
};

constexpr std::size_t kPullChunk = 1 << 20;
constexpr std::size_t kReadAhead = 64 << 10;

}  // namespace

ConnectionState::~ConnectionState() {
  if (!closed()) Registry::instance().remove(fd_, this);
}

void ConnectionState::close() {
  std::scoped_lock guard(send_mutex_, recv_mutex_);
  if (closed()) return;
  Registry::instance().remove(fd_, this);
  closed_.store(true, std::memory_order_release);
  owner_.reset();
  inbox_.clear();
}

void ConnectionState::send_frame(std::string_view payload, std::string_view method) {
  std::lock_guard guard(send_mutex_);
  require_writable(method);
  FrameHeader header = encode_frame_header(payload.size());
  iovec parts[2] = {{header.bytes.data(), header.size},
                    {const_cast<char*>(payload.data()), payload.size()}};
  iovec* next = parts;
  int count = payload.empty() ? 1 : 2;
  // Pipes have no MSG_NOSIGNAL: block SIGPIPE around the write instead.
  std::optional<SigpipeSuppressed> no_sigpipe;
  if (!is_socket_) no_sigpipe.emplace();
  while (count > 0) {
    ssize_t written;
    if (is_socket_) {
      msghdr message{};
      message.msg_iov = next;
      message.msg_iovlen = static_cast<std::size_t>(count);
      written = check("sendmsg", [&] { return ::sendmsg(fd_, &message, MSG_NOSIGNAL); }, method);
    } else {
      written = check("writev", [&] { return ::writev(fd_, next, count); }, method);
    }
    auto left = static_cast<std::size_t>(written);
    while (count > 0 && left >= next->iov_len) {
      left -= next->iov_len;
      ++next;
      --count;
    }
    if (count > 0) {
      next->iov_base = static_cast<char*>(next->iov_base) + left;
      next->iov_len -= left;
    }
  }
}

std::ptrdiff_t ConnectionState::read_into(char* buffer, std::size_t size, bool block,
                                          std::string_view method) {
  ssize_t got;
  if (is_socket_) {
    got = retry("recv", [&] { return ::recv(fd_, buffer, size, block ? 0 : MSG_DONTWAIT); });
  } else {
    if (!block) {
      pollfd probe{fd_, POLLIN, 0};
      check("poll", [&] { return ::poll(&probe, 1, 0); }, method);
      if (probe.revents == 0) return kNothingYet;
    }
    got = retry("read", [&] { return ::read(fd_, buffer, size); });
  }
  if (got >= 0) return got;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return kNothingYet;
  // A socket peer that died with unread data resets instead of closing; to the
  // reader both mean "no more messages".
  if (errno == ECONNRESET) return 0;
  throw_os_error(is_socket_ ? "recv" : "read", errno, method);
}

std::ptrdiff_t ConnectionState::append_to_inbox(std::size_t size, bool block,
                                                std::string_view method) {
  std::ptrdiff_t got = read_into(inbox_.reserve(size), size, block, method);
  if (got > 0) inbox_.commit(static_cast<std::size_t>(got));
  return got;
}

void ConnectionState::throw_truncated(std::string_view method, std::uint64_t received,
                                      std::uint64_t expected) {
  // The stream ends here: what was read of the message is dropped, and the
  // next receive reports EOFError.
  inbox_.clear();
  throw OSError(std::string(method) + ": got end of file during message (" +
                    std::to_string(received) + " of " + std::to_string(expected) + " bytes)",
                EPROTO);
}

// Before a receive blocks for a message, it reads without blocking for up to
// this long: a reply often comes within microseconds, while a thread that
// sleeps pays a wake-up, tens of microseconds on an idle VM CPU (a round trip
// is two of them: pipe_pingpong in make bench). The SpinPolicy stops it when
// it stops paying, so an idle receiver burns no CPU. Measured on 2 vCPUs
// (pipe round trip; TCP alike): quiet, 40 us without the spin and 4.5 us
// with it; beside one CPU hog, 10 us without and 17.5 us with it, since the
// spinner holds a CPU that the sender needs. A 50 us spin was no faster when
// quiet and cost 20 us beside the hog; 10 us was too short for TCP.
constexpr std::chrono::microseconds receive_spin{20};

std::ptrdiff_t ConnectionState::spin_for_bytes(std::size_t size, std::string_view method) {
  if (!spin_policy_.begin()) return kNothingYet;
  const auto until = std::chrono::steady_clock::now() + receive_spin;
  std::ptrdiff_t got;
  do {
    got = append_to_inbox(size, false, method);
    if (got != kNothingYet) break;
    cpu_relax();
  } while (std::chrono::steady_clock::now() < until);
  spin_policy_.end(got != kNothingYet);
  return got;
}

DecodedHeader ConnectionState::read_header(std::string_view method) {
  for (;;) {
    if (auto header = decode_frame_header(inbox_.pending(), method)) return *header;
    std::size_t missing = header_bytes_missing(inbox_.pending());
    std::size_t wanted = std::max(missing, kReadAhead);
    std::ptrdiff_t got = inbox_.pending().empty() ? spin_for_bytes(wanted, method) : kNothingYet;
    if (got == kNothingYet) got = append_to_inbox(wanted, true, method);
    if (got == 0) {
      if (inbox_.pending().empty())
        throw EOFError(std::string(method) + ": end of file: the peer closed the connection");
      std::size_t received = inbox_.pending().size();
      throw_truncated(method, received, received + missing);
    }
  }
}

std::string ConnectionState::read_payload(DecodedHeader header, std::string_view method) {
  std::string_view buffered = inbox_.pending().substr(header.header_size);
  if (buffered.size() >= header.payload_size) {
    std::string payload(buffered.substr(0, static_cast<std::size_t>(header.payload_size)));
    inbox_.consume(header.header_size + payload.size());
    return payload;
  }
  std::string payload(buffered);
  inbox_.clear();
  // Grow with what actually arrives, so a corrupt length cannot make us
  // allocate it up front.
  while (payload.size() < header.payload_size) {
    std::size_t filled = payload.size();
    std::size_t target = static_cast<std::size_t>(
        std::min<std::uint64_t>(header.payload_size, std::max(2 * filled, kPullChunk)));
    payload.resize(target);
    while (filled < target) {
      std::ptrdiff_t got = read_into(payload.data() + filled, target - filled, true, method);
      if (got == 0) throw_truncated(method, header.header_size + filled,
                                    header.header_size + header.payload_size);
      filled += static_cast<std::size_t>(got);
    }
  }
  return payload;
}

std::string ConnectionState::receive(std::string_view method,
                                     std::optional<std::size_t> maxlength) {
  std::lock_guard guard(recv_mutex_);
  require_readable(method);
  DecodedHeader header = read_header(method);
  if (maxlength && header.payload_size > *maxlength)
    throw OSError(std::string(method) + ": bad message length: the message has " +
                      std::to_string(header.payload_size) + " bytes, maxlength is " +
                      std::to_string(*maxlength) + " (the message stays unread)",
                  EMSGSIZE);
  return read_payload(header, method);
}

bool ConnectionState::pull_available(std::string_view method,
                                     std::optional<std::size_t> maxlength) {
  for (;;) {
    std::size_t want;
    std::string_view pending = inbox_.pending();
    if (auto header = decode_frame_header(pending, method)) {
      if (maxlength && header->payload_size > *maxlength) return true;
      std::uint64_t frame = header->header_size + header->payload_size;
      if (pending.size() >= frame) return true;
      want = static_cast<std::size_t>(std::min<std::uint64_t>(frame - pending.size(), kPullChunk));
    } else {
      want = header_bytes_missing(pending);
    }
    std::ptrdiff_t got = append_to_inbox(want, false, method);
    if (got == 0) return true;  // the end of the stream: recv will not block
    if (got == kNothingYet) return false;
  }
}

bool ConnectionState::poll_until(Deadline deadline, std::string_view method,
                                 std::optional<std::size_t> maxlength) {
  std::unique_lock guard(recv_mutex_, std::defer_lock);
  if (deadline.infinite())
    guard.lock();
  else if (!guard.try_lock_until(deadline.time_point()))
    return false;
  require_readable(method);
  for (;;) {
    if (pull_available(method, maxlength)) return true;
    if (deadline.expired()) return false;
    pollfd probe{fd_, POLLIN, 0};
    check("poll", [&] { return ::poll(&probe, 1, deadline.poll_milliseconds()); }, method);
    if (probe.revents & POLLNVAL) throw_os_error("poll", EBADF, method);
  }
}

bool ConnectionState::ready_for_wait(bool kernel_readable) {
  if (!readable_) return kernel_readable;
  std::unique_lock guard(recv_mutex_, std::try_to_lock);
  // Another thread is receiving: report what the kernel says rather than wait.
  if (!guard.owns_lock() || closed()) return kernel_readable;
  std::string_view pending = inbox_.pending();
  auto header = decode_frame_header(pending, "wait");
  if (header && pending.size() >= header->header_size + header->payload_size) return true;
  return kernel_readable && pull_available("wait", std::nullopt);
}

std::vector<int> wait_until(const std::vector<int>& fds, Deadline deadline) {
  std::vector<std::shared_ptr<ConnectionState>> states;
  std::vector<pollfd> probes;
  states.reserve(fds.size());
  probes.reserve(fds.size());
  for (int fd : fds) {
    if (fd < 0) throw ValueError("wait: invalid file descriptor " + std::to_string(fd));
    states.push_back(Registry::instance().find(fd));
    probes.push_back({fd, POLLIN, 0});
  }
  for (;;) {
    std::vector<char> ready(fds.size(), 0);
    bool any = false;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (states[i] && states[i]->ready_for_wait(false)) {
        ready[i] = 1;
        any = true;
      }
    }
    for (pollfd& probe : probes) probe.revents = 0;
    check("poll", [&] {
      return ::poll(probes.data(), probes.size(), any ? 0 : deadline.poll_milliseconds());
    }, "wait");
    for (std::size_t i = 0; i < fds.size(); ++i) {
      short events = probes[i].revents;
      if (events & POLLNVAL)
        throw OSError("wait: file descriptor " + std::to_string(fds[i]) + " is not open", EBADF);
      if (ready[i] || events == 0) continue;
      ready[i] = states[i] ? states[i]->ready_for_wait(true) : true;
      any = any || ready[i] != 0;
    }
    if (any || deadline.expired()) {
      std::vector<int> result;
      for (std::size_t i = 0; i < fds.size(); ++i)
        if (ready[i]) result.push_back(fds[i]);
      return result;
    }
  }
}

}  // namespace mp::detail

namespace mp {

Connection::Connection(int fd, bool readable, bool writable) {
  if (fd < 0) throw ValueError("Connection: invalid handle " + std::to_string(fd));
  if (!readable && !writable)
    throw ValueError("Connection: at least one of readable and writable must be true");
  struct stat status{};
  detail::check("fstat", [&] { return ::fstat(fd, &status); }, "Connection");
  state_ = std::make_shared<detail::ConnectionState>(detail::FileDescriptor(fd), readable,
                                                     writable, S_ISSOCK(status.st_mode));
  detail::Registry::instance().add(fd, state_);
}

void Connection::require_writable(std::string_view method) const {
  state_->require_writable(method);
}

void Connection::send_message(std::string_view payload, std::string_view method) {
  state_->send_frame(payload, method);
}

std::string Connection::receive(std::string_view method, std::optional<std::size_t> maxlength) {
  return state_->receive(method, maxlength);
}

bool Connection::poll_until(detail::Deadline deadline, std::optional<std::size_t> maxlength) {
  return state_->poll_until(deadline, "Connection.poll", maxlength);
}

void Connection::send_bytes(std::string_view buf, std::size_t offset,
                            std::optional<std::size_t> size) {
  constexpr std::string_view method = "Connection.send_bytes";
  state_->require_writable(method);
  if (offset > buf.size())
    throw ValueError(std::string(method) + ": buffer length < offset (" +
                     std::to_string(buf.size()) + " < " + std::to_string(offset) + ")");
  if (size && *size > buf.size() - offset)
    throw ValueError(std::string(method) + ": buffer length < offset + size (" +
                     std::to_string(buf.size()) + " < " + std::to_string(offset) + " + " +
                     std::to_string(*size) + ")");
  state_->send_frame(buf.substr(offset, size.value_or(buf.size() - offset)), method);
}

void Connection::send_bytes(std::span<const std::byte> buf, std::size_t offset,
                            std::optional<std::size_t> size) {
  send_bytes(std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()), offset,
             size);
}

std::string Connection::recv_bytes(std::optional<std::size_t> maxlength) {
  return state_->receive("Connection.recv_bytes", maxlength);
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buf, std::size_t offset) {
  constexpr std::string_view method = "Connection.recv_bytes_into";
  state_->require_readable(method);
  if (offset > buf.size())
    throw ValueError(std::string(method) + ": offset too large (" + std::to_string(offset) +
                     " > " + std::to_string(buf.size()) + ")");
  std::string message = state_->receive(method, std::nullopt);
  if (message.size() > buf.size() - offset) {
    std::string what = std::string(method) + ": buffer too short: the message has " +
                       std::to_string(message.size()) + " bytes, " +
                       std::to_string(buf.size() - offset) + " fit";
    throw BufferTooShort(what, std::move(message));
  }
  std::memcpy(buf.data() + offset, message.data(), message.size());
  return message.size();
}

bool Connection::poll() { return poll_until(detail::Deadline::now()); }

void Connection::close() { state_->close(); }
bool Connection::closed() const { return state_->closed(); }
bool Connection::readable() const { return state_->readable(); }
bool Connection::writable() const { return state_->writable(); }

int Connection::fileno() const {
  state_->require_open("Connection.fileno");
  return state_->fd();
}

std::pair<Connection, Connection> Pipe(bool duplex) {
  int fds[2];
  if (duplex) {
    detail::check("socketpair",
                  [&] { return ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds); },
                  "Pipe");
    detail::FileDescriptor first(fds[0]), second(fds[1]);
    Connection a(first.release(), true, true);
    return {std::move(a), Connection(second.release(), true, true)};
  }
  detail::check("pipe2", [&] { return ::pipe2(fds, O_CLOEXEC); }, "Pipe");
  detail::FileDescriptor read_end(fds[0]), write_end(fds[1]);
  Connection reader(read_end.release(), true, false);
  return {std::move(reader), Connection(write_end.release(), false, true)};
}

}  // namespace mp
