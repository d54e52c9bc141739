// mp/connection.hpp: Pipe, Connection, wait, Listener and Client (Python:
// multiprocessing.Pipe and multiprocessing.connection).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "mp/detail/archive.hpp"
#include "mp/detail/deadline.hpp"
#include "mp/detail/repr.hpp"
#include "mp/errors.hpp"
#include "mp/process.hpp"

namespace mp {

class Connection;

namespace detail {
class ConnectionState;

// Lets `connection`'s receives read ahead: one read takes whatever the kernel
// holds, up to 64 KiB, and bytes past the message returned wait in this
// process's memory for the next receive (poll() and wait() count them). A
// small message then costs one system call instead of two. Only for a
// connection that one thread of one process receives on (the Manager's own
// connections); any other would lose the bytes one holder read ahead. Call
// it between messages; from then on a receive or poll in another process
// (a forked child) throws mp::ValueError. A poll from another thread waits
// for a receive in progress.
void read_ahead(Connection& connection);
}  // namespace detail

// Connection: Python's multiprocessing.connection.Connection, one end of a
// byte stream (socketpair, pipe, or any connected socket) carrying messages in
// Python's exact framing, so send_bytes/recv_bytes interoperate with a Python
// peer. send/recv carry cereal-serialized C++ objects with a type tag instead of
// pickles: recv<int>() of a message holding a std::string throws
// SerializationError naming both types, and the connection stays usable.
//
// Differs from Python: a handle (copies share one connection; close() closes it
// for every copy in this process; use after close -> mp::ValueError, as for
// every mp object). Misuse of a one-way end throws mp::ValueError. poll() and
// wait() report a connection ready only when a receive would not block: a
// whole message is in the kernel, or the end of the stream, or a header recv
// refuses at once (a length no string can hold; with poll's maxlength, a
// longer message). Python reports any readable byte, so one peer that sends
// part of a frame and stops wedges a Python server built on wait(); here that
// connection is not ready (wait rechecks it now and then, 50 us backing off
// to 10 ms). The exception: a message longer than the kernel buffer can
// hold (64 KiB for a pipe, about 2 KiB guaranteed for a socket) is ready once
// the buffer is full, since its sender is blocked mid-message; the receive
// then streams the rest, as Python does for every message.
// Nothing is taken out of the kernel beyond the message a receive returns:
// poll() and wait() only peek, recv reads exactly one frame (unless the
// library set the connection to read ahead, detail::read_ahead, which only
// the Manager's own connections are). So, as in
// Python, several processes may share one end behind a Lock, and a child that
// polls and exits takes nothing with it. recv_bytes(maxlength) of a longer
// message throws and leaves that message unread (Python closes the
// connection). Sends, and receives, from several threads are serialized:
// frames never interleave.
//
// Blocking: send blocks while the kernel buffer is full; recv blocks until a
// whole message arrives, first reading without blocking for up to 20 us (a
// reply is often that close; a receiver whose messages come slowly soon stops
// and just sleeps); poll(timeout) waits at most timeout (monotonic). Signals
// never interrupt a call (EINTR is retried). close() returns at once: a
// thread blocked in recv or poll on the connection then fails with
// mp::OSError(EBADF) "closed while this call waited" (the descriptor is
// closed when the last such thread has left, so it is never read after its
// number could be reused); a blocked send finishes or fails as its peer
// decides.
//
// Memory: a message's buffer is allocated once at its size, after its first
// MiB arrived (a length a peer merely claims reserves nothing); a length that
// cannot be allocated is mp::OSError(ENOMEM) and the stream is then out of
// step (use maxlength with untrusted peers).
//
// Peer death: a peer that closed or died at a message boundary gives
// mp::EOFError once everything sent before is read; one that died inside a
// message gives mp::OSError ("got end of file during message"). Writing to a
// closed peer throws mp::OSError(EPIPE); SIGPIPE never fires.
//
// repr() (and operator<<): <Connection fileno=5 readable writable>, or
// <Connection closed>. Python prints only its class and address.
class Connection {
 public:
  // Takes ownership of `fd`, a connected socket or a pipe end, as Python's
  // Connection(handle, readable, writable). A negative or closed descriptor,
  // or neither direction, throws.
  explicit Connection(int fd, bool readable = true, bool writable = true);

  template <class T>
  void send(const T& obj) {
    require_writable("Connection.send");
    send_message(detail::dumps_tagged(obj, "Connection.send"), "Connection.send");
  }
  // EOFError; SerializationError when the message does not hold a T.
  template <class T>
  T recv() {
    return detail::loads_tagged<T>(receive("Connection.recv", std::nullopt), "Connection.recv");
  }

  void send_bytes(std::string_view buf, std::size_t offset = 0,
                  std::optional<std::size_t> size = {});
  void send_bytes(std::span<const std::byte> buf, std::size_t offset = 0,
                  std::optional<std::size_t> size = {});
  // A message longer than maxlength throws mp::OSError(EMSGSIZE) and stays unread.
  std::string recv_bytes(std::optional<std::size_t> maxlength = {});
  // Copies the next message to buf[offset...] and returns its size; if it does
  // not fit, the message is consumed and BufferTooShort::message() holds it.
  std::size_t recv_bytes_into(std::span<std::byte> buf, std::size_t offset = 0);

  // Whether a whole message (or the end of the stream) is ready to be read.
  bool poll();
  template <class Rep, class Per>
  bool poll(std::chrono::duration<Rep, Per> timeout) {
    return poll_until(detail::Deadline::after(timeout));
  }
  // Beyond Python: as poll(timeout), but a message announced longer than
  // maxlength is ready at once (recv_bytes(maxlength) then refuses it unread).
  // For untrusted peers.
  template <class Rep, class Per>
  bool poll(std::chrono::duration<Rep, Per> timeout, std::size_t maxlength) {
    return poll_until(detail::Deadline::after(timeout), maxlength);
  }

  void close();
  bool closed() const;
  bool readable() const;
  bool writable() const;
  int fileno() const;
  std::string repr() const;

 private:
  void require_writable(std::string_view method) const;
  void send_message(std::string_view payload, std::string_view method);
  std::string receive(std::string_view method, std::optional<std::size_t> maxlength);
  bool poll_until(detail::Deadline deadline, std::optional<std::size_t> maxlength = {});
  friend void detail::read_ahead(Connection& connection);

  std::shared_ptr<detail::ConnectionState> state_;
};

// multiprocessing.Pipe: a socketpair when duplex, else a pipe whose first end
// receives and second end sends. Both descriptors are close-on-exec.
std::pair<Connection, Connection> Pipe(bool duplex = true);

namespace detail {
// Per descriptor of `fds`, whether it is ready (the rules of mp::wait below).
std::vector<char> ready_flags(const std::vector<int>& fds, Deadline deadline);
std::vector<int> wait_until(const std::vector<int>& fds, Deadline deadline);
}

// multiprocessing.connection.wait: the descriptors among `fds` that are ready,
// in the order given. A Connection's fileno() is ready when its poll() would
// say so (a connection closed meanwhile is ready too); any other descriptor (a
// Process sentinel, a socket) when poll(2) says it is readable or hung up.
// A descriptor that is not open throws mp::OSError(EBADF).
inline std::vector<int> wait(const std::vector<int>& fds) {
  return detail::wait_until(fds, detail::Deadline::never());
}
template <class Rep, class Per>
std::vector<int> wait(const std::vector<int>& fds, std::chrono::duration<Rep, Per> timeout) {
  return detail::wait_until(fds, detail::Deadline::after(timeout));
}

// Address (Python: a ('host', port) tuple, or a path string for AF_UNIX).
// A Unix path that starts with '\0' lives in Linux's abstract namespace: no
// file, nothing to remove.
struct Address {
  enum class Family { tcp, unix_socket };
  Family family = Family::tcp;
  std::string host;         // tcp: a name or a numeric address; "" is every interface
  std::uint16_t port = 0;   // tcp: 0 asks for any free port
  std::string path;         // unix_socket
  bool abstract() const { return family == Family::unix_socket && !path.empty() && path[0] == '\0'; }
  std::string to_string() const;
  bool operator==(const Address&) const = default;
};
Address tcp_address(std::string host, std::uint16_t port);
Address unix_address(std::string path);

// How long a Listener or Client waits for the peer's side of the authkey
// handshake before giving up with mp::AuthenticationError.
inline constexpr std::chrono::seconds default_handshake_timeout{10};

// Listener (Python: multiprocessing.connection.Listener)
//
// A bound, listening socket whose accept() returns a Connection with Python's
// framing, so a Python Client can connect. With an authkey, accept() runs
// Python's mutual HMAC handshake (it challenges first, then answers); an empty
// authkey is a valid key, no authkey means no handshake. SO_REUSEADDR is set.
// A Unix socket file is removed by close() or when the last handle goes, as
// Python's finalizer does: only in the process that bound it, and only while
// the path still names the file it bound (not one re-created by others).
//
// Differs from Python: accept() runs the handshakes of all connecting peers
// side by side (non-blocking, at most 256 at once; beyond that the oldest is
// dropped), so silent or trickling peers never delay a good client. Each
// handshake is bounded in time (handshake_timeout from its accept) and size
// (256-byte messages, nothing allocated beyond what arrives). accept()
// returns the first outcome: a Connection, or an mp::AuthenticationError for
// a failed handshake (wrong key, bad frame, reset, timeout: the message names
// the peer and the cause; only that connection is closed) as Python raises
// one per accept(); outcomes found meanwhile wait for the next accept().
// The listening socket is non-blocking. A handle: copies share the socket.
// fileno() is not the listening socket but a descriptor that is readable
// exactly when accept() can make progress at once (a new connection, traffic
// on a pending handshake, a handshake past its deadline, outcomes waiting), so
// a server built on mp::wait calls accept(0ms) when it is readable: that
// takes what is ready and returns an outcome if one is complete, never
// blocking on a peer still in its handshake.
// Blocking: accept() blocks until an outcome (EINTR is retried), accept(t) at
// most t (nullopt when no outcome came; 0ms makes one round); close() from
// another thread wakes it with mp::ValueError (Python leaves it blocked) and
// closes the socket only after it left.
class Listener {
 public:
  explicit Listener(Address address, std::optional<std::string> authkey = {}, int backlog = 1,
                    std::chrono::milliseconds handshake_timeout = default_handshake_timeout);
  // mp::AuthenticationError on a failed handshake; mp::ValueError after close().
  Connection accept();
  std::optional<Connection> accept(std::chrono::milliseconds timeout);
  Address address() const;  // the bound address, with the real port
  std::optional<Address> last_accepted() const;
  int fileno() const;       // readable when accept(0ms) can progress: usable with mp::wait
  void close();
  bool closed() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Client (Python: multiprocessing.connection.Client): connects and, with an
// authkey, answers the listener's challenge and then challenges it.
Connection Client(const Address& address, std::optional<std::string> authkey = {},
                  std::chrono::milliseconds handshake_timeout = default_handshake_timeout);

// Waitable: one object that mp::wait can watch, held by reference (it does
// not own the object, which must outlive the wait): a Connection, ready as
// its poll() says (or closed by another thread meanwhile); a Listener, ready
// when accept(0ms) can make progress; a started Process, ready once it has
// ended (its sentinel). Python passes the objects themselves, or sentinels.
class Waitable {
 public:
  Waitable(Connection& connection) noexcept : object_(&connection) {}
  Waitable(Listener& listener) noexcept : object_(&listener) {}
  Waitable(Process& process) noexcept : object_(&process) {}

  // The object, or nullptr when this refers to an object of another type.
  template <class T>
  T* get_if() const noexcept {
    auto* object = std::get_if<T*>(&object_);
    return object ? *object : nullptr;
  }
  // Whether this refers to `object` itself (not another handle copy of it).
  template <class T>
  bool refers_to(const T& object) const noexcept {
    return get_if<T>() == &object;
  }
  // What is watched: fileno(), or a Process's sentinel(). A closed object or
  // an unstarted Process throws mp::ValueError, as those calls do.
  int fileno() const;
  bool operator==(const Waitable&) const = default;

 private:
  std::variant<Connection*, Listener*, Process*> object_;
};

namespace detail {
std::vector<Waitable> wait_objects_until(std::span<const Waitable> objects, Deadline deadline);

template <class T>
concept waitable_object =
    std::same_as<T, Connection> || std::same_as<T, Listener> || std::same_as<T, Process>;

template <class Range, class T = std::ranges::range_value_t<Range>>
std::vector<T*> wait_range_until(Range& objects, Deadline deadline) {
  std::vector<Waitable> watched(std::ranges::begin(objects), std::ranges::end(objects));
  std::vector<T*> ready;
  for (const Waitable& object : wait_objects_until(watched, deadline)) ready.push_back(object.get_if<T>());
  return ready;
}
}  // namespace detail

// multiprocessing.connection.wait over objects: those of `objects` that are
// ready, in the order given, as soon as one is (or none at the timeout). A
// mixed list: auto ready = mp::wait({conn, listener, process}, 1s); then
// ready[i].get_if<mp::Connection>() or ready[i].refers_to(conn). A list
// built at run time: a std::vector<mp::Waitable> (or any span of them).
// Blocking and dead peers: as the descriptor form above (a connection whose
// peer died is ready, and its receive says what happened).
inline std::vector<Waitable> wait(std::span<const Waitable> objects) {
  return detail::wait_objects_until(objects, detail::Deadline::never());
}
inline std::vector<Waitable> wait(std::initializer_list<Waitable> objects) {
  return wait(std::span<const Waitable>(objects.begin(), objects.size()));
}
template <class Rep, class Per>
std::vector<Waitable> wait(std::span<const Waitable> objects, std::chrono::duration<Rep, Per> timeout) {
  return detail::wait_objects_until(objects, detail::Deadline::after(timeout));
}
template <class Rep, class Per>
std::vector<Waitable> wait(std::initializer_list<Waitable> objects, std::chrono::duration<Rep, Per> timeout) {
  return wait(std::span<const Waitable>(objects.begin(), objects.size()), timeout);
}

// The same over a range of one type (a std::vector<mp::Connection>, an array
// of Process...): pointers to the ready elements, in order.
//   for (mp::Connection* reader : mp::wait(readers, 1s)) use(reader->recv<int>());
template <std::ranges::forward_range Range>
  requires detail::waitable_object<std::ranges::range_value_t<Range>>
std::vector<std::ranges::range_value_t<Range>*> wait(Range& objects) {
  return detail::wait_range_until(objects, detail::Deadline::never());
}
template <std::ranges::forward_range Range, class Rep, class Per>
  requires detail::waitable_object<std::ranges::range_value_t<Range>>
std::vector<std::ranges::range_value_t<Range>*> wait(Range& objects, std::chrono::duration<Rep, Per> timeout) {
  return detail::wait_range_until(objects, detail::Deadline::after(timeout));
}

}  // namespace mp
