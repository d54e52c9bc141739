// lib/connection.cpp: Connection, Pipe and wait (Python's
// multiprocessing.connection framing, detail/connection_frame.hpp).
//
// Invariants:
// - Nothing is taken from the kernel beyond the message a receive returns:
//   a socket receive peeks the header, then takes header and payload (up to
//   1 MiB of it) in one recvmsg; a pipe receive reads the header exactly,
//   then exactly the payload; poll and wait only peek. Several processes may
//   share one end (behind a lock).
// - The exception, opt-in (detail::read_ahead, the Manager's connections):
//   a read-ahead connection's receives and polls read up to 64 KiB at once
//   into an inbox; its bytes are returned in order, whole frames only, and
//   only in the process that set it up. Its socket's receive sleeps in the
//   read itself, not in poll.
// - A payload buffer is allocated once, at the announced size, and only after
//   the first chunk (1 MiB) of it arrived.
// - A descriptor stays open while a thread of this process uses it; close()
//   wakes the users (an eventfd; a read-ahead socket's sleeping read by
//   shutdown(SHUT_RD)) and the last one out closes it.
// - Header and payload sizes are never added where the sum could wrap.
#include "mp/connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>

#include "mp/detail/connection_frame.hpp"
#include "mp/detail/fd.hpp"
#include "mp/detail/futex.hpp"
#include "mp/detail/identity.hpp"
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

// A pair of descriptors this process creates on first use. A forked child that
// inherited a pair makes its own, so two processes never share one: the
// parent's close() must not wake the child's receiver, and bytes one process
// tee(2)s must not be read by the other.
class ProcessLocalFds {
 public:
  template <class Make>
  void ensure(Make&& make) {
    pid_t pid = current_pid();
    if (owner_ == pid && ends_[0]) return;
    int made[2] = {-1, -1};
    make(made);
    ends_[0] = FileDescriptor(made[0]);
    ends_[1] = FileDescriptor(made[1]);
    owner_ = pid;
  }
  int get(int which) const noexcept { return ends_[which].get(); }
  void reset() noexcept {
    ends_[0].reset();
    ends_[1].reset();
  }

 private:
  FileDescriptor ends_[2];
  pid_t owner_ = 0;
};

// The bytes a read-ahead connection took from the kernel and has not
// returned yet: [begin_, end_) of a fixed buffer.
class Inbox {
 public:
  // Holds the messages of a Manager round trip whole; a larger message's
  // rest is read straight into its own buffer.
  static constexpr std::size_t kCapacity = 64 << 10;

  std::string_view held() const noexcept { return {bytes_.get() + begin_, end_ - begin_}; }
  bool full() const noexcept { return end_ - begin_ == kCapacity; }
  // The free room after the held bytes, moved to the front first.
  std::span<char> room() noexcept {
    if (begin_ > 0) {
      std::memmove(bytes_.get(), bytes_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    return {bytes_.get() + end_, kCapacity - end_};
  }
  void added(std::size_t count) noexcept { end_ += count; }
  void consume(std::size_t count) noexcept {
    begin_ += count;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void clear() noexcept { begin_ = end_ = 0; }

 private:
  std::unique_ptr<char[]> bytes_ = std::make_unique_for_overwrite<char[]>(kCapacity);
  std::size_t begin_ = 0, end_ = 0;
};

// What a receive would find, judged without taking a byte from the kernel.
enum class Readiness {
  ready,    // a whole message, a refusal, an error or the end of the stream
  partial,  // part of a message: readable, yet a receive would block
  empty,
};

// One connection, shared by every handle copy in this process.
//
// Nothing is read from the kernel beyond the message a receive returns: a
// receive reads the header exactly (4 bytes, 8 more for a long frame), then
// exactly the payload; poll and wait only peek (MSG_PEEK on a socket, tee(2)
// into a private pipe for a pipe, FIONREAD for the byte count). So processes
// that share one end behind a lock each receive whole messages, as in Python,
// and a child that polls and exits takes nothing with it.
//
// The descriptor stays open while a thread of this process uses it (a Use):
// close() marks the connection closed, wakes blocked receivers and pollers
// through an eventfd, and the last Use to end closes the descriptor. So a
// thread blocked in recv never reads from a number that open() gave to
// something else meanwhile.
class ConnectionState {
 public:
  enum class Kind { socket, pipe, other };

  // While alive, the descriptor stays open; throws ValueError if closed.
  class Use {
   public:
    Use(ConnectionState& state, std::string_view method) : state_(state) {
      std::lock_guard guard(state.users_mutex_);
      state.require_open(method);
      ++state.users_;
    }
    ~Use() {
      std::lock_guard guard(state_.users_mutex_);
      if (--state_.users_ == 0 && state_.closed()) state_.release_descriptors();
    }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

   private:
    ConnectionState& state_;
  };

  ConnectionState(FileDescriptor fd, bool readable, bool writable, Kind kind)
      : fd_(fd.get()), owner_(std::move(fd)), readable_(readable), writable_(writable),
        kind_(kind) {}
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
  [[noreturn]] static void throw_closed_meanwhile(std::string_view method) {
    throw OSError(std::string(method) + ": the connection was closed while this call waited",
                  EBADF);
  }

  void send_frame(std::string_view payload, std::string_view method);
  std::string receive(std::string_view method, std::optional<std::size_t> maxlength);
  // With maxlength, a message announced longer than that is ready:
  // recv_bytes(maxlength) refuses it without reading it. Call within a Use.
  Readiness readiness(std::optional<std::size_t> maxlength, std::string_view method);
  // An eventfd that becomes readable when close() is called. Within a Use.
  int wake_fd(std::string_view method);
  void close();
  void start_reading_ahead(std::string_view method);

 private:
  // Bytes read (> 0), 0 at the end of the stream, kNothingYet when a
  // non-blocking read found nothing. `sleep`: a socket's read waits for a
  // byte (only a read-ahead receive asks, see fill_inbox).
  static constexpr std::ptrdiff_t kNothingYet = -1;
  std::ptrdiff_t read_now(std::span<iovec> parts, std::string_view method, bool sleep = false);
  std::ptrdiff_t read_now(char* buffer, std::size_t size, std::string_view method,
                          bool sleep = false) {
    iovec part{buffer, size};
    return read_now(std::span(&part, 1), method, sleep);
  }
  template <class Attempt>
  std::ptrdiff_t spin_for(Attempt attempt);
  template <class Attempt>
  std::ptrdiff_t spin(Attempt attempt);
  void await_readable(std::string_view method);
  void await_rest_of_header(std::chrono::microseconds at_most, std::string_view method);
  std::size_t read_fully(char* buffer, std::size_t size, bool spin_first, std::string_view method);
  DecodedHeader read_header(std::string_view method);
  std::string read_payload(DecodedHeader header, std::string arrived, std::string_view method);
  std::optional<DecodedHeader> peek_header(std::array<char, kLongHeaderSize>& bytes,
                                           std::string_view method);
  std::string receive_from_socket(std::string_view method, std::optional<std::size_t> maxlength);
  void refuse_longer_than(std::size_t maxlength, std::string_view method);
  std::ptrdiff_t peek(char* buffer, std::size_t size, std::string_view method);
  std::uint64_t queued_bytes(std::string_view method);
  std::uint64_t kernel_holds_at_least(std::string_view method);
  bool peer_gone(std::string_view method);
  void release_descriptors() noexcept;
  // Read-ahead mode; these run under recv_mutex_.
  void require_inbox_owner(std::string_view method) const;
  std::size_t fill_inbox(bool spin_first, std::string_view method);
  std::string receive_read_ahead(std::string_view method, std::optional<std::size_t> maxlength);
  Readiness read_ahead_readiness(std::optional<std::size_t> maxlength, std::string_view method);

  const int fd_;
  FileDescriptor owner_;
  const bool readable_;
  const bool writable_;
  const Kind kind_;
  std::atomic<bool> closed_{false};
  std::mutex users_mutex_;  // guards users_, the closing and wake_
  int users_ = 0;
  ProcessLocalFds wake_;       // [0]: the eventfd
  std::mutex peek_mutex_;      // guards peek_pipe_
  ProcessLocalFds peek_pipe_;  // [0] read end, [1] write end
  std::mutex send_mutex_;
  std::mutex recv_mutex_;  // guards inbox_ and inbox_owner_ too
  SpinPolicy spin_policy_;
  std::atomic<bool> reads_ahead_{false};  // set once, after inbox_
  std::optional<Inbox> inbox_;
  pid_t inbox_owner_ = 0;
};

namespace {

// Which descriptors of this process are connections, so that wait() over a
// fileno() judges it as the connection's poll() does. The lock is taken
// around fork, so a child never inherits it held.
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

// A payload is read in chunks of this size; the announced size is reserved
// once the first chunk has arrived, so a peer that merely claims a huge size
// gets nothing reserved, and a real one costs one allocation of its size.
constexpr std::size_t kPayloadChunk = 1 << 20;

// A socket peer blocked in the middle of a message leaves at least this much
// of it queued (a Unix socket whose sender has the smallest SO_SNDBUF Linux
// allows queues about 2.2 KiB before the sender blocks).
constexpr std::uint64_t kSocketHoldsAtLeast = 2048;

// How often a wait rechecks a connection holding part of a message: it is
// readable, so poll(2) cannot wait for the rest. Starts short (the rest of a
// message usually follows within microseconds), backs off for a peer that
// stalls mid-message.
constexpr std::chrono::microseconds kFirstRecheck{50};
constexpr std::chrono::microseconds kLastRecheck{10'000};

}  // namespace

ConnectionState::~ConnectionState() {
  if (!closed()) Registry::instance().remove(fd_, this);
}

void ConnectionState::release_descriptors() noexcept {
  owner_.reset();
  wake_.reset();
  std::lock_guard guard(peek_mutex_);
  peek_pipe_.reset();
}

void ConnectionState::close() {
  std::lock_guard guard(users_mutex_);
  if (closed()) return;
  Registry::instance().remove(fd_, this);
  // closed_ is stored before the wake is signalled: a woken thread must see it.
  closed_.store(true, std::memory_order_release);
  if (int wake = wake_.get(0); wake >= 0) {
    std::uint64_t one = 1;
    retry("write", [&] { return ::write(wake, &one, sizeof one); });
  }
  // A read-ahead receive sleeps in recvmsg itself (fill_inbox), which no
  // eventfd wakes; shutting the socket down for reading does: the read
  // returns, and the reader then sees closed_ (stored above, before the
  // shutdown call). Only the inbox's owner receives on the socket, so no
  // other process that holds it loses a receive by this.
  if (users_ > 0 && kind_ == Kind::socket && reads_ahead_.load(std::memory_order_acquire) &&
      inbox_owner_ == current_pid())
    retry("shutdown", [&] { return ::shutdown(fd_, SHUT_RD); });
  if (users_ == 0) release_descriptors();
}

int ConnectionState::wake_fd(std::string_view method) {
  std::lock_guard guard(users_mutex_);
  wake_.ensure([&](int made[2]) {
    made[0] = check("eventfd", [] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }, method);
  });
  return wake_.get(0);
}

void ConnectionState::send_frame(std::string_view payload, std::string_view method) {
  Use use(*this, method);
  std::lock_guard guard(send_mutex_);
  require_writable(method);
  FrameHeader header = encode_frame_header(payload.size());
  iovec parts[2] = {{header.bytes.data(), header.size},
                    {const_cast<char*>(payload.data()), payload.size()}};
  iovec* next = parts;
  int count = payload.empty() ? 1 : 2;
  // Pipes have no MSG_NOSIGNAL: block SIGPIPE around the write instead.
  std::optional<SigpipeSuppressed> no_sigpipe;
  if (kind_ != Kind::socket) no_sigpipe.emplace();
  while (count > 0) {
    ssize_t written;
    if (kind_ == Kind::socket) {
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

std::ptrdiff_t ConnectionState::read_now(std::span<iovec> parts, std::string_view method,
                                         bool sleep) {
  ssize_t got;
  const char* call = "read";
  const auto count = static_cast<int>(parts.size());
  switch (kind_) {
    case Kind::socket: {
      call = "recvmsg";
      msghdr message{};
      message.msg_iov = parts.data();
      message.msg_iovlen = parts.size();
      got = retry(call, [&] { return ::recvmsg(fd_, &message, sleep ? 0 : MSG_DONTWAIT); });
      break;
    }
    case Kind::pipe:
      // Not O_NONBLOCK: that flag belongs to the open file, which other
      // processes share. RWF_NOWAIT asks for this one read only.
      call = "preadv2";
      got = retry(call, [&] { return ::preadv2(fd_, parts.data(), count, -1, RWF_NOWAIT); });
      break;
    default: {
      pollfd probe{fd_, POLLIN, 0};
      check("poll", [&] { return ::poll(&probe, 1, 0); }, method);
      if (probe.revents == 0) return kNothingYet;
      call = "readv";
      got = retry(call, [&] { return ::readv(fd_, parts.data(), count); });
    }
  }
  if (got >= 0) return got;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return kNothingYet;
  // A socket peer that died with unread data resets instead of closing; to the
  // reader both mean "no more messages".
  if (errno == ECONNRESET) return 0;
  throw_os_error(call, errno, method);
}

// Before a receive blocks for a message, it reads without blocking for up to
// this long: a reply often comes within microseconds, while a thread that
// sleeps pays a wake-up, tens of microseconds on an idle VM CPU (a round trip
// is two of them: pipe_pingpong in make bench). The SpinPolicy stops it when
// it stops paying, so an idle receiver burns no CPU. Why 20 us, measured
// quiet and beside a CPU hog: docs/design.md, "A short spin before sleeping".
constexpr std::chrono::microseconds receive_spin{20};

// `attempt` reads or peeks without blocking; the spin ends with its first
// answer other than kNothingYet.
template <class Attempt>
std::ptrdiff_t ConnectionState::spin_for(Attempt attempt) {
  return spin_policy_.begin() ? spin(attempt) : kNothingYet;
}

// spin_for once the SpinPolicy said yes.
template <class Attempt>
std::ptrdiff_t ConnectionState::spin(Attempt attempt) {
  const auto until = std::chrono::steady_clock::now() + receive_spin;
  std::ptrdiff_t got;
  do {
    got = attempt();
    if (got != kNothingYet) break;
    cpu_relax();
  } while (std::chrono::steady_clock::now() < until);
  spin_policy_.end(got != kNothingYet);
  return got;
}

// Sleeps until the descriptor is readable or close() is called (then throws).
void ConnectionState::await_readable(std::string_view method) {
  pollfd probes[2] = {{fd_, POLLIN, 0}, {wake_fd(method), POLLIN, 0}};
  check("poll", [&] { return ::poll(probes, 2, -1); }, method);
  if (closed()) throw_closed_meanwhile(method);
  if (probes[0].revents & POLLNVAL) throw_os_error("poll", EBADF, method);
}

// A socket holding part of a header is readable, so poll(2) cannot wait for
// the rest: this sleeps for `at_most`, less if the peer hangs up or close()
// is called (then throws).
void ConnectionState::await_rest_of_header(std::chrono::microseconds at_most,
                                           std::string_view method) {
  pollfd probes[2] = {{fd_, POLLRDHUP, 0}, {wake_fd(method), POLLIN, 0}};
  const timespec pause{0, static_cast<long>(std::chrono::nanoseconds(at_most).count())};
  check("ppoll", [&] { return ::ppoll(probes, 2, &pause, nullptr); }, method);
  if (closed()) throw_closed_meanwhile(method);
  if (probes[0].revents & POLLNVAL) throw_os_error("poll", EBADF, method);
}

// Reads exactly `size` bytes unless the stream ends first; returns how many.
std::size_t ConnectionState::read_fully(char* buffer, std::size_t size, bool spin_first,
                                        std::string_view method) {
  std::size_t filled = 0;
  while (filled < size) {
    std::ptrdiff_t got = read_now(buffer + filled, size - filled, method);
    if (got == kNothingYet && spin_first && filled == 0)
      got = spin_for([&] { return read_now(buffer, size, method); });
    if (got == kNothingYet) {
      await_readable(method);
      continue;
    }
    if (got == 0) break;
    filled += static_cast<std::size_t>(got);
  }
  return filled;
}

namespace {

// The stream ended inside a message: what was read of it is dropped, and the
// next receive reports EOFError. Counts are of the part that was being read
// (the header, or the payload), so no sum can overflow.
[[noreturn]] void throw_truncated(std::string_view method, std::string_view part,
                                  std::uint64_t received, std::uint64_t expected) {
  throw OSError(std::string(method) + ": got end of file during message (" +
                    std::to_string(received) + " of " + std::to_string(expected) + " " +
                    std::string(part) + " bytes)",
                EPROTO);
}

// recv_bytes(maxlength) refuses a longer message before taking any of it.
void throw_if_longer(const DecodedHeader& header, std::size_t maxlength,
                     std::string_view method) {
  if (header.payload_size > maxlength)
    throw OSError(std::string(method) + ": bad message length: the message has " +
                      std::to_string(header.payload_size) + " bytes, maxlength is " +
                      std::to_string(maxlength) + " (the message stays unread)",
                  EMSGSIZE);
}

}  // namespace

DecodedHeader ConnectionState::read_header(std::string_view method) {
  std::array<char, kLongHeaderSize> bytes;
  std::size_t got = read_fully(bytes.data(), kShortHeaderSize, true, method);
  if (got == 0)
    throw EOFError(std::string(method) + ": end of file: the peer closed the connection");
  std::string_view view(bytes.data(), got);
  if (std::size_t missing = header_bytes_missing(view); missing > 0 && got == kShortHeaderSize)
    got += read_fully(bytes.data() + got, missing, false, method);
  view = std::string_view(bytes.data(), got);
  if (auto header = decode_frame_header(view, method)) return *header;
  throw_truncated(method, "header", got, got + header_bytes_missing(view));
}

// `arrived`: the payload's first bytes, already read (less than a chunk).
std::string ConnectionState::read_payload(DecodedHeader header, std::string arrived,
                                          std::string_view method) {
  std::string payload = std::move(arrived);
  if (header.payload_size > payload.max_size())
    throw OSError(std::string(method) + ": bad message length: " +
                      std::to_string(header.payload_size) + " bytes announced, more than " +
                      "a string can hold (the rest of the stream is out of step)",
                  EMSGSIZE);
  const auto size = static_cast<std::size_t>(header.payload_size);
  auto read_into_tail = [&](std::size_t end) {
    std::size_t start = payload.size();
    payload.resize(end);
    std::size_t got = read_fully(payload.data() + start, end - start, false, method);
    if (got < end - start) throw_truncated(method, "payload", start + got, size);
  };
  read_into_tail(std::min(size, kPayloadChunk));
  if (payload.size() == size) return payload;
  try {
    payload.reserve(size);  // once, exactly: later chunks grow within it
  } catch (const std::exception&) {
    throw OSError(std::string(method) + ": cannot allocate a message of " +
                      std::to_string(size) + " bytes (the rest of the stream is out of step)",
                  ENOMEM);
  }
  while (payload.size() < size) read_into_tail(std::min(size, payload.size() + kPayloadChunk));
  return payload;
}

std::ptrdiff_t ConnectionState::peek(char* buffer, std::size_t size, std::string_view method) {
  if (kind_ == Kind::socket) {
    ssize_t got = retry("recv", [&] { return ::recv(fd_, buffer, size, MSG_PEEK | MSG_DONTWAIT); });
    if (got >= 0) return got;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kNothingYet;
    if (errno == ECONNRESET) return 0;
    throw_os_error("recv", errno, method);
  }
  std::uint64_t queued = queued_bytes(method);
  if (queued == 0) return peer_gone(method) ? 0 : kNothingYet;
  // tee(2) duplicates the pipe's first bytes into a private pipe, leaving them
  // in place; reading the private pipe then consumes only the copy.
  std::lock_guard guard(peek_mutex_);
  peek_pipe_.ensure([&](int made[2]) {
    check("pipe2", [&] { return ::pipe2(made, O_CLOEXEC | O_NONBLOCK); }, method);
  });
  size = static_cast<std::size_t>(std::min<std::uint64_t>(size, queued));
  ssize_t copied = retry("tee", [&] {
    return ::tee(fd_, peek_pipe_.get(1), size, SPLICE_F_NONBLOCK);
  });
  if (copied < 0) {
    // Another process took the bytes between FIONREAD and tee.
    if (errno == EAGAIN) return kNothingYet;
    throw_os_error("tee", errno, method);
  }
  if (copied == 0) return 0;
  return check("read", [&] {
    return ::read(peek_pipe_.get(0), buffer, static_cast<std::size_t>(copied));
  }, method);
}

std::uint64_t ConnectionState::queued_bytes(std::string_view method) {
  int queued = 0;
  check("ioctl", [&] { return ::ioctl(fd_, FIONREAD, &queued); }, method);
  return static_cast<std::uint64_t>(std::max(queued, 0));
}

// How much of a message the kernel holds, at least, when its sender is
// blocked because the buffer is full. A pipe's buffer is pages, all full
// then but the first, which the previous message may have partly consumed.
std::uint64_t ConnectionState::kernel_holds_at_least(std::string_view method) {
  if (kind_ == Kind::socket) return kSocketHoldsAtLeast;
  auto capacity = static_cast<std::uint64_t>(
      check("fcntl", [&] { return ::fcntl(fd_, F_GETPIPE_SZ); }, method));
  static const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  return capacity > page ? capacity - page + 1 : 1;
}

// Whether the writer is gone: a receive then ends at once (EOF or an error).
bool ConnectionState::peer_gone(std::string_view method) {
  pollfd probe{fd_, POLLIN | POLLRDHUP, 0};
  check("poll", [&] { return ::poll(&probe, 1, 0); }, method);
  return (probe.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

Readiness ConnectionState::readiness(std::optional<std::size_t> maxlength,
                                     std::string_view method) {
  if (reads_ahead_.load(std::memory_order_acquire)) {
    std::lock_guard guard(recv_mutex_);
    return read_ahead_readiness(maxlength, method);
  }
  if (kind_ == Kind::other) {
    pollfd probe{fd_, POLLIN, 0};
    check("poll", [&] { return ::poll(&probe, 1, 0); }, method);
    return probe.revents != 0 ? Readiness::ready : Readiness::empty;
  }
  std::array<char, kLongHeaderSize> bytes;
  std::ptrdiff_t got = peek(bytes.data(), bytes.size(), method);
  if (got == kNothingYet) return Readiness::empty;
  if (got == 0) return Readiness::ready;  // the end of the stream
  std::optional<DecodedHeader> header;
  try {
    header = decode_frame_header(std::string_view(bytes.data(), static_cast<std::size_t>(got)),
                                 method);
  } catch (const OSError&) {
    return Readiness::ready;  // not a frame: the receive reports it at once
  }
  if (header) {
    if (maxlength && header->payload_size > *maxlength) return Readiness::ready;
    // A length no string can hold is refused by the receive at once.
    if (header->payload_size > std::string().max_size()) return Readiness::ready;
    // Lengths are compared by subtraction (queued >= header_size, since the
    // header was peeked): header_size + payload_size can wrap.
    auto queued = static_cast<std::uint64_t>(got);
    if (header->payload_size > queued - header->header_size) queued = queued_bytes(method);
    if (header->payload_size <= queued - header->header_size) return Readiness::ready;
    // Longer than the kernel can hold: its sender is blocked mid-message and
    // the receive streams the rest, as Python does for every message.
    if (queued >= kernel_holds_at_least(method)) return Readiness::ready;
  }
  return peer_gone(method) ? Readiness::ready : Readiness::partial;
}

void ConnectionState::refuse_longer_than(std::size_t maxlength, std::string_view method) {
  std::array<char, kLongHeaderSize> bytes;
  std::ptrdiff_t got = peek(bytes.data(), bytes.size(), method);
  if (got <= 0) return;
  auto header =
      decode_frame_header(std::string_view(bytes.data(), static_cast<std::size_t>(got)), method);
  if (header) throw_if_longer(*header, maxlength, method);
}

std::vector<char> wait_ready(const std::vector<int>& fds,
                             const std::vector<std::shared_ptr<ConnectionState>>& states,
                             Deadline deadline, std::optional<std::size_t> maxlength,
                             std::string_view method);

std::string ConnectionState::receive(std::string_view method,
                                     std::optional<std::size_t> maxlength) {
  Use use(*this, method);
  std::lock_guard guard(recv_mutex_);
  require_readable(method);
  if (inbox_) return receive_read_ahead(method, maxlength);
  if (kind_ == Kind::socket) return receive_from_socket(method, maxlength);
  if (maxlength) {
    // Judged on a peeked header, so that a refused message stays in the kernel.
    std::shared_ptr<ConnectionState> self(std::shared_ptr<ConnectionState>(), this);
    wait_ready({fd_}, {self}, Deadline::never(), maxlength, method);
    if (closed()) throw_closed_meanwhile(method);
    refuse_longer_than(*maxlength, method);
  }
  DecodedHeader header = read_header(method);
  return read_payload(header, {}, method);
}

// Waits for a whole header at the front of a socket and peeks it into
// `bytes`; nullopt when the stream ends first or the header is not a frame's
// (read_header then reports it as a pipe's receive does). A bounded receive
// waits for the header only: the payload's length decides whether to take it.
std::optional<DecodedHeader> ConnectionState::peek_header(std::array<char, kLongHeaderSize>& bytes,
                                                          std::string_view method) {
  auto peek_now = [&] { return peek(bytes.data(), bytes.size(), method); };
  bool spun = false, peer_was_gone = false;
  auto recheck = kFirstRecheck;
  for (;;) {
    std::ptrdiff_t got = peek_now();
    if (got == kNothingYet && !std::exchange(spun, true)) got = spin_for(peek_now);
    if (got == kNothingYet) {
      await_readable(method);
      continue;
    }
    if (got == 0) return std::nullopt;
    std::optional<DecodedHeader> header;
    try {
      header = decode_frame_header(
          std::string_view(bytes.data(), static_cast<std::size_t>(got)), method);
    } catch (const OSError&) {
      return std::nullopt;
    }
    if (header || peer_was_gone) return header;
    // Part of a header. Once the peer is gone, one more peek sees whatever it
    // sent before it went.
    peer_was_gone = peer_gone(method);
    if (peer_was_gone) continue;
    await_rest_of_header(recheck, method);
    recheck = std::min(2 * recheck, kLastRecheck);
  }
}

// A socket's receive: a peeked header, then header and payload in one
// recvmsg, so a message usually costs two system calls and no sleep (the
// peek spins briefly first, see receive_spin). A payload over kPayloadChunk
// is read as a pipe's is, its memory reserved once the first chunk is in.
std::string ConnectionState::receive_from_socket(std::string_view method,
                                                 std::optional<std::size_t> maxlength) {
  std::array<char, kLongHeaderSize> bytes;
  std::optional<DecodedHeader> header = peek_header(bytes, method);
  if (header && maxlength) throw_if_longer(*header, *maxlength, method);
  if (!header || header->payload_size > kPayloadChunk) {
    DecodedHeader read = read_header(method);
    return read_payload(read, {}, method);
  }
  std::string payload(static_cast<std::size_t>(header->payload_size), '\0');
  iovec parts[2] = {{bytes.data(), header->header_size}, {payload.data(), payload.size()}};
  std::ptrdiff_t got = read_now(std::span(parts, payload.empty() ? 1 : 2), method);
  // The peeked header is in the kernel and this thread holds recv_mutex_:
  // the recvmsg takes at least the header, unless another process that
  // shares the end broke the rule of a lock around receives.
  if (got < static_cast<std::ptrdiff_t>(header->header_size))
    throw OSError(std::string(method) + ": the peeked message header was taken by another " +
                      "reader (processes sharing one end must receive under a lock)",
                  EPROTO);
  auto filled = static_cast<std::size_t>(got) - header->header_size;
  filled += read_fully(payload.data() + filled, payload.size() - filled, false, method);
  if (filled < payload.size()) throw_truncated(method, "payload", filled, payload.size());
  return payload;
}

void ConnectionState::start_reading_ahead(std::string_view method) {
  Use use(*this, method);
  std::lock_guard guard(recv_mutex_);
  require_readable(method);
  if (inbox_) return;
  inbox_.emplace();
  inbox_owner_ = current_pid();
  reads_ahead_.store(true, std::memory_order_release);
}

// A forked child's copy of the inbox is a snapshot of the parent's: reading
// on would interleave two processes' reads of one stream.
void ConnectionState::require_inbox_owner(std::string_view method) const {
  if (inbox_owner_ != current_pid())
    throw ValueError(std::string(method) + ": this connection reads ahead for process " +
                     std::to_string(inbox_owner_) + " only");
}

// Takes what the kernel holds, up to the inbox's room, waiting for at least
// a byte (spinning first when asked and the SpinPolicy says it pays, see
// receive_spin); returns how many, 0 at the end of the stream. The caller
// leaves room: the frame it waits for fits the inbox and is not in it whole.
// A socket then sleeps in the read itself, one system call where a failed
// read, a poll and the read were three; close() wakes it (see there). A
// pipe, which nothing but an eventfd can wake, or a socket whose open file
// is non-blocking (the read returns at once), sleeps in poll. Bytes found
// by the first read do not tell the SpinPolicy the spin paid: they were
// there without it (counted so, the spin stayed on beside a loaded peer and
// burnt the CPU that peer needed).
std::size_t ConnectionState::fill_inbox(bool spin_first, std::string_view method) {
  std::span<char> room = inbox_->room();
  auto read_room = [&](bool sleep) { return read_now(room.data(), room.size(), method, sleep); };
  std::ptrdiff_t got = kNothingYet;
  if (spin_first && spin_policy_.begin()) {
    got = read_room(false);
    if (got == kNothingYet) got = spin([&] { return read_room(false); });
  }
  if (got == kNothingYet) got = read_room(kind_ == Kind::socket);
  while (got == kNothingYet) {
    await_readable(method);
    got = read_room(false);
  }
  if (got == 0 && closed()) throw_closed_meanwhile(method);
  inbox_->added(static_cast<std::size_t>(got));
  return static_cast<std::size_t>(got);
}

// A read-ahead receive: one read usually brings header and payload, and what
// follows the message stays in the inbox for the next receive. A bounded
// receive refuses a longer message and leaves it there. A stream that ends
// inside a message loses what was read of it, as an ordinary receive does.
std::string ConnectionState::receive_read_ahead(std::string_view method,
                                                std::optional<std::size_t> maxlength) {
  require_inbox_owner(method);
  Inbox& inbox = *inbox_;
  std::optional<DecodedHeader> header;
  while (!(header = decode_frame_header(inbox.held(), method))) {
    const std::size_t had = inbox.held().size();
    if (fill_inbox(had == 0, method) > 0) continue;
    if (had == 0)
      throw EOFError(std::string(method) + ": end of file: the peer closed the connection");
    const std::size_t missing = header_bytes_missing(inbox.held());
    inbox.clear();
    throw_truncated(method, "header", had, had + missing);
  }
  if (maxlength) throw_if_longer(*header, *maxlength, method);
  const std::size_t header_size = header->header_size;
  if (header->payload_size > Inbox::kCapacity - header_size) {
    // All the inbox holds is this payload's beginning; the rest is read
    // straight into its buffer, exactly.
    std::string arrived(inbox.held().substr(header_size));
    inbox.clear();
    return read_payload(*header, std::move(arrived), method);
  }
  const auto size = static_cast<std::size_t>(header->payload_size);
  while (inbox.held().size() - header_size < size) {
    const std::size_t had = inbox.held().size() - header_size;
    if (fill_inbox(false, method) > 0) continue;
    inbox.clear();
    throw_truncated(method, "payload", had, size);
  }
  std::string payload(inbox.held().substr(header_size, size));
  inbox.consume(header_size + size);
  return payload;
}

// Readiness of a read-ahead connection: it takes what the kernel holds (a
// receive would, too), then judges the inbox. A frame not yet whole leaves
// the kernel empty, so poll(2) on the descriptor wakes for the rest, unless
// the frame outgrows the inbox: that one is judged as an ordinary
// connection judges a frame longer than the kernel buffer.
Readiness ConnectionState::read_ahead_readiness(std::optional<std::size_t> maxlength,
                                                std::string_view method) {
  require_inbox_owner(method);
  Inbox& inbox = *inbox_;
  if (!inbox.full()) {
    std::span<char> room = inbox.room();
    std::ptrdiff_t got = read_now(room.data(), room.size(), method);
    if (got == 0) return Readiness::ready;  // the end of the stream
    if (got > 0) inbox.added(static_cast<std::size_t>(got));
  }
  std::string_view held = inbox.held();
  std::optional<DecodedHeader> header;
  try {
    header = decode_frame_header(held, method);
  } catch (const OSError&) {
    return Readiness::ready;  // not a frame: the receive reports it at once
  }
  if (!header) return Readiness::empty;
  if (maxlength && header->payload_size > *maxlength) return Readiness::ready;
  if (header->payload_size > std::string().max_size()) return Readiness::ready;
  const std::size_t arrived = held.size() - header->header_size;
  if (header->payload_size <= arrived) return Readiness::ready;
  if (!inbox.full()) return Readiness::empty;
  std::uint64_t queued = queued_bytes(method);
  if (header->payload_size - arrived <= queued || queued >= kernel_holds_at_least(method))
    return Readiness::ready;
  return peer_gone(method) ? Readiness::ready : Readiness::partial;
}

// Which of `fds` are ready: a connection (states[i] set) as readiness() says,
// any other descriptor when poll(2) says it is readable or hung up. A
// connection closed meanwhile counts as ready.
std::vector<char> wait_ready(const std::vector<int>& fds,
                             const std::vector<std::shared_ptr<ConnectionState>>& states,
                             Deadline deadline, std::optional<std::size_t> maxlength,
                             std::string_view method) {
  const std::size_t count = fds.size();
  std::vector<std::optional<ConnectionState::Use>> uses(count);
  std::vector<char> ready(count, 0), partial(count, 0);
  std::vector<pollfd> probes(count);
  bool any = false;
  // A connection's verdict, recorded; a closed one is ready.
  auto judge = [&](std::size_t i) {
    if (states[i]->closed()) {
      ready[i] = 1;
    } else {
      Readiness verdict = states[i]->readiness(maxlength, method);
      ready[i] = verdict == Readiness::ready;
      partial[i] = verdict == Readiness::partial;
    }
    any = any || ready[i];
  };
  bool only_connections = true;
  for (std::size_t i = 0; i < count; ++i) {
    only_connections = only_connections && states[i];
    if (!states[i]) continue;
    uses[i].emplace(*states[i], method);
    probes.push_back({states[i]->wake_fd(method), POLLIN, 0});
    judge(i);
  }
  if (only_connections && (any || deadline.expired())) return ready;
  auto recheck = kFirstRecheck;
  for (;;) {
    bool any_partial = false;
    for (std::size_t i = 0; i < count; ++i) {
      // A connection holding part of a message is readable: poll(2) would
      // return at once, so it is rechecked after a sleep instead.
      probes[i] = {partial[i] ? -1 : fds[i], POLLIN, 0};
      any_partial = any_partial || partial[i];
    }
    for (std::size_t i = count; i < probes.size(); ++i) probes[i].revents = 0;
    Deadline round = any ? Deadline::now()
                         : any_partial ? deadline.capped(recheck) : deadline;
    check("poll", [&] {
      return ::poll(probes.data(), probes.size(), round.poll_milliseconds());
    }, method);
    recheck = any_partial ? std::min(2 * recheck, kLastRecheck) : kFirstRecheck;
    for (std::size_t i = 0; i < count; ++i) {
      short events = probes[i].revents;
      if (events & POLLNVAL)
        throw OSError(std::string(method) + ": file descriptor " + std::to_string(fds[i]) +
                          " is not open",
                      EBADF);
      if (ready[i]) continue;
      if (states[i]) {
        if (events != 0 || partial[i] || states[i]->closed()) judge(i);
      } else if (events != 0) {
        ready[i] = 1;
        any = true;
      }
    }
    if (any || deadline.expired()) return ready;
  }
}

std::vector<char> ready_flags(const std::vector<int>& fds, Deadline deadline) {
  std::vector<std::shared_ptr<ConnectionState>> states;
  states.reserve(fds.size());
  for (int fd : fds) {
    if (fd < 0) throw ValueError("wait: invalid file descriptor " + std::to_string(fd));
    states.push_back(Registry::instance().find(fd));
  }
  return wait_ready(fds, states, deadline, std::nullopt, "wait");
}

// The elements of `watched` whose flag is set, in order.
template <class T>
std::vector<T> select_ready(std::span<const T> watched, const std::vector<char>& ready) {
  std::vector<T> result;
  for (std::size_t i = 0; i < watched.size(); ++i)
    if (ready[i]) result.push_back(watched[i]);
  return result;
}

std::vector<int> wait_until(const std::vector<int>& fds, Deadline deadline) {
  return select_ready(std::span<const int>(fds), ready_flags(fds, deadline));
}

std::vector<Waitable> wait_objects_until(std::span<const Waitable> objects, Deadline deadline) {
  std::vector<int> fds;
  fds.reserve(objects.size());
  for (const Waitable& object : objects) fds.push_back(object.fileno());
  return select_ready(objects, ready_flags(fds, deadline));
}

bool poll_connection(const std::shared_ptr<ConnectionState>& state, Deadline deadline,
                     std::optional<std::size_t> maxlength) {
  constexpr std::string_view method = "Connection.poll";
  state->require_readable(method);
  bool ready = wait_ready({state->fd()}, {state}, deadline, maxlength, method)[0] != 0;
  if (state->closed()) ConnectionState::throw_closed_meanwhile(method);
  return ready;
}

}  // namespace mp::detail

namespace mp {

Connection::Connection(int fd, bool readable, bool writable) {
  if (fd < 0) throw ValueError("Connection: invalid handle " + std::to_string(fd));
  if (!readable && !writable)
    throw ValueError("Connection: at least one of readable and writable must be true");
  // Owned from here on: a failure below closes it (EBADF: there is nothing
  // to close, and the number may be given to another open() meanwhile).
  detail::FileDescriptor owned(fd);
  struct stat status{};
  try {
    detail::check("fstat", [&] { return ::fstat(fd, &status); }, "Connection");
  } catch (const OSError& error) {
    if (error.code() == EBADF) owned.release();
    throw;
  }
  using Kind = detail::ConnectionState::Kind;
  Kind kind = S_ISSOCK(status.st_mode)  ? Kind::socket
              : S_ISFIFO(status.st_mode) ? Kind::pipe
                                         : Kind::other;
  state_ = std::make_shared<detail::ConnectionState>(std::move(owned), readable, writable, kind);
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
  return detail::poll_connection(state_, deadline, maxlength);
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

void detail::read_ahead(Connection& connection) {
  connection.state_->start_reading_ahead("read_ahead");
}

void Connection::close() { state_->close(); }
bool Connection::closed() const { return state_->closed(); }
bool Connection::readable() const { return state_->readable(); }
bool Connection::writable() const { return state_->writable(); }

int Connection::fileno() const {
  state_->require_open("Connection.fileno");
  return state_->fd();
}

std::string Connection::repr() const {
  if (state_->closed()) return "<Connection closed>";
  return "<Connection fileno=" + std::to_string(state_->fd()) + (state_->readable() ? " readable" : "") +
         (state_->writable() ? " writable" : "") + ">";
}

int Waitable::fileno() const {
  return std::visit([](auto* object) {
    if constexpr (std::is_same_v<decltype(object), Process*>)
      return object->sentinel();
    else
      return object->fileno();
  }, object_);
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
