// lib/managers.cpp: the Manager's server process and the proxies' side of
// its protocol (multiprocessing.managers).
//
// Wire: every request is one Connection frame: the object's token (8 bytes,
// host order: both ends run on one kind of machine, as cereal assumes), the
// operation (1 byte), then the operation's arguments (cereal). Every reply is
// one frame: a status byte (0: the result follows, cereal; 1: an exception
// record follows, remote_exception.hpp). Token 0 is the server itself
// (create, shutdown, ping).
//
// Invariants:
// - One thread per client connection, each its own; nothing a client sends
//   or fails to send blocks another. A frame longer than max_request_bytes,
//   a frame that ends early, or the end of the stream closes that
//   connection; a frame that does not decode gets an error reply and the
//   connection goes on.
// - Each served object has its own mutex; a request holds it for its whole
//   operation (the atomicity of one call). A blocking operation waits on the
//   object's condition variable in slices of client_check_period and checks
//   its client between slices: a client gone ends the wait and its thread.
// - When a client's connection ends, every object learns it (client_gone)
//   before the thread ends: a lock it held is released and marked
//   owner_died.
// - The server stops on a shutdown request, or when its creator's pidfd
//   becomes readable (the creator died); it then closes its listener (which
//   removes its socket file), removes its private directory and _exits:
//   client threads never run past that.
// - The client keeps one connection per server per thread (thread_local),
//   dropped in a forked child (it belongs to the parent's thread) and after
//   any transport error (the stream may be out of step).
// - Both ends of a client's connection are private to one thread, so both
//   read ahead (detail::read_ahead): a request or reply costs one read.
#include "mp/managers.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "mp/detail/fd.hpp"
#include "mp/detail/identity.hpp"
#include "mp/detail/remote_exception.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/process.hpp"

namespace mp {
namespace detail {

namespace {

constexpr std::size_t max_request_bytes = std::size_t{256} << 20;
constexpr auto client_check_period = std::chrono::milliseconds(100);
constexpr std::size_t request_header_bytes = sizeof(std::uint64_t) + 1;

// One connection per server and key: a connection authenticated with one key
// never serves a proxy that carries another.
std::string connection_key(const Address& address, const std::string& authkey) {
  return address.to_string() + '\0' + authkey;
}

struct ClientConnections {
  pid_t pid = 0;
  std::unordered_map<std::string, Connection> by_address;
};
thread_local ClientConnections client_connections;

Connection& connection_for(const Address& address, const std::string& authkey) {
  pid_t pid = current_pid();
  if (client_connections.pid != pid) {
    // Inherited from the parent's thread: closing our copies of the
    // descriptors leaves the parent's connections as they are.
    client_connections.by_address.clear();
    client_connections.pid = pid;
  }
  std::string key = connection_key(address, authkey);
  auto found = client_connections.by_address.find(key);
  if (found == client_connections.by_address.end()) {
    found = client_connections.by_address.emplace(key, Client(address, authkey)).first;
    read_ahead(found->second);  // this thread's own
  }
  return found->second;
}

void forget_connection(const Address& address, const std::string& authkey) {
  client_connections.by_address.erase(connection_key(address, authkey));
}

}  // namespace

std::int64_t wire_timeout(const Deadline& deadline) noexcept {
  if (deadline.infinite()) return -1;
  return std::max<std::int64_t>(0,
                                deadline.remaining().value_or(std::chrono::nanoseconds(0)).count());
}

static Deadline deadline_from_wire(std::int64_t nanoseconds) {
  return nanoseconds < 0 ? Deadline::never()
                         : Deadline::after(std::chrono::nanoseconds(nanoseconds));
}

std::string ProxyHandle::call(ManagerOp op, std::string_view arguments,
                              std::string_view method) const {
  if (token_ == 0 && op != ManagerOp::create && op != ManagerOp::shutdown && op != ManagerOp::ping)
    throw ValueError(std::string(method) + ": the proxy is not bound to a manager's object");
  std::string request(request_header_bytes, '\0');
  std::memcpy(request.data(), &token_, sizeof token_);
  request[sizeof token_] = static_cast<char>(op);
  request.append(arguments);
  std::string reply;
  try {
    Connection& connection = connection_for(address_, authkey_);
    connection.send_bytes(request);
    reply = connection.recv_bytes();
  } catch (...) {
    forget_connection(address_, authkey_);
    throw;
  }
  if (reply.empty())
    throw SerializationError(std::string(method) + ": empty reply from the manager");
  if (reply[0] == 0) return reply.substr(1);
  std::rethrow_exception(
      rethrowable(decode_exception_record(std::string_view(reply).substr(1), method), method));
}

ProxyHandle create_served(const ProxyHandle& server, ServedKind kind, std::string arguments) {
  arguments.insert(arguments.begin(), static_cast<char>(kind));
  auto token = loads<std::uint64_t>(server.call(ManagerOp::create, arguments, "Manager.create"),
                                    "Manager.create");
  return ProxyHandle(server.address(), server.authkey(), token);
}

namespace {

std::vector<ServedTypeEntry>& served_types() {
  static std::vector<ServedTypeEntry> types;
  return types;
}

// Thrown inside a blocking operation whose client has gone: ends its thread.
struct ClientGone {};

// The server's view of one client connection.
struct ClientLink {
  std::uint64_t id;
  int fd;
  // Whether the peer hung up (or reset): what a dead process leaves.
  bool gone() const {
    pollfd watched{fd, POLLRDHUP, 0};
    int ready = retry("poll", [&] { return ::poll(&watched, 1, 0); });
    return ready > 0 && (watched.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }
};

class Served {
 public:
  virtual ~Served() = default;
  // Runs one operation under the object's mutex; returns the encoded result.
  virtual std::string call(ManagerOp op, std::string_view arguments, const ClientLink& client) = 0;
  virtual void client_gone(std::uint64_t /*client*/) {}

 protected:
  [[noreturn]] static void unsupported(ManagerOp op, const std::string& kind) {
    throw TypeError("Manager: a " + kind + " has no operation " +
                    std::to_string(static_cast<int>(op)));
  }
  // Waits until ready() (true) or the deadline (false), checking the client
  // between slices.
  template <class Ready>
  bool wait(std::unique_lock<std::mutex>& lock, const Deadline& deadline, const ClientLink& client,
            Ready ready) {
    while (!ready()) {
      if (deadline.expired()) return false;
      auto slice = std::chrono::nanoseconds(client_check_period);
      if (auto left = deadline.remaining()) slice = std::min(slice, *left);
      changed_.wait_for(lock, slice);
      if (client.gone()) throw ClientGone{};
    }
    return true;
  }
  template <class T>
  static T decode(std::string_view arguments) {
    return loads<T>(arguments, "Manager request");
  }
  template <class T>
  static std::string encode(const T& value) {
    return dumps(value, "Manager reply");
  }

  std::mutex mutex_;
  std::condition_variable changed_;
};

// Python's negative indices, checked.
std::size_t list_index(std::int64_t index, std::size_t size, const char* method) {
  std::int64_t resolved = index < 0 ? index + static_cast<std::int64_t>(size) : index;
  if (resolved < 0 || resolved >= static_cast<std::int64_t>(size))
    throw IndexError(std::string(method) + ": list index out of range");
  return static_cast<std::size_t>(resolved);
}

class ServedDict final : public Served {
 public:
  std::string call(ManagerOp op, std::string_view arguments, const ClientLink&) override {
    std::lock_guard guard(mutex_);
    switch (op) {
      case ManagerOp::dict_get:
        return encode(find_or_throw(arguments)->second);
      case ManagerOp::dict_find: {
        auto found = index_.find(std::get<0>(decode<std::tuple<std::string>>(arguments)));
        return encode(found == index_.end() ? std::optional<std::string>()
                                            : std::optional<std::string>(found->second->second));
      }
      case ManagerOp::dict_set: {
        auto [key, value] = decode<std::tuple<std::string, std::string>>(arguments);
        store(std::move(key), std::move(value));
        return {};
      }
      case ManagerOp::dict_pop: {
        auto entry = find_or_throw(arguments);
        std::string value = std::move(entry->second);
        erase(entry);
        return encode(value);
      }
      case ManagerOp::dict_pop_default: {
        auto found = index_.find(std::get<0>(decode<std::tuple<std::string>>(arguments)));
        if (found == index_.end()) return encode(std::optional<std::string>());
        std::optional<std::string> value(std::move(found->second->second));
        erase(found->second);
        return encode(value);
      }
      case ManagerOp::dict_contains:
        return encode(index_.contains(std::get<0>(decode<std::tuple<std::string>>(arguments))));
      case ManagerOp::size:
        return encode(static_cast<std::uint64_t>(entries_.size()));
      case ManagerOp::dict_keys:
        return encode_each([](const auto& entry) { return entry.first; });
      case ManagerOp::dict_values:
        return encode_each([](const auto& entry) { return entry.second; });
      case ManagerOp::dict_items:
        return encode(
            std::vector<std::pair<std::string, std::string>>(entries_.begin(), entries_.end()));
      case ManagerOp::dict_update: {
        auto [pairs] =
            decode<std::tuple<std::vector<std::pair<std::string, std::string>>>>(arguments);
        for (auto& [key, value] : pairs) store(std::move(key), std::move(value));
        return {};
      }
      case ManagerOp::clear:
        entries_.clear();
        index_.clear();
        return {};
      default:
        unsupported(op, "dict");
    }
  }

 private:
  using Entries = std::list<std::pair<std::string, std::string>>;
  Entries::iterator find_or_throw(std::string_view arguments) {
    auto found = index_.find(std::get<0>(decode<std::tuple<std::string>>(arguments)));
    if (found == index_.end()) throw KeyError("DictProxy: no such key");
    return found->second;
  }
  void store(std::string key, std::string value) {
    auto found = index_.find(key);
    if (found != index_.end()) {
      found->second->second = std::move(value);
      return;
    }
    entries_.emplace_back(key, std::move(value));
    index_.emplace(std::move(key), std::prev(entries_.end()));
  }
  void erase(Entries::iterator entry) {
    index_.erase(entry->first);
    entries_.erase(entry);
  }
  template <class Pick>
  std::string encode_each(Pick pick) const {
    std::vector<std::string> out;
    out.reserve(entries_.size());
    for (const auto& entry : entries_) out.push_back(pick(entry));
    return encode(out);
  }
  Entries entries_;  // insertion order, as Python's dict
  std::unordered_map<std::string, Entries::iterator> index_;
};

class ServedList final : public Served {
 public:
  std::string call(ManagerOp op, std::string_view arguments, const ClientLink&) override {
    std::lock_guard guard(mutex_);
    switch (op) {
      case ManagerOp::list_append:
        items_.push_back(std::get<0>(decode<std::tuple<std::string>>(arguments)));
        return {};
      case ManagerOp::list_extend: {
        auto [more] = decode<std::tuple<std::vector<std::string>>>(arguments);
        items_.insert(items_.end(), std::make_move_iterator(more.begin()),
                      std::make_move_iterator(more.end()));
        return {};
      }
      case ManagerOp::list_get: {
        auto [index] = decode<std::tuple<std::int64_t>>(arguments);
        return encode(items_[list_index(index, items_.size(), "ListProxy.get")]);
      }
      case ManagerOp::list_set: {
        auto [index, item] = decode<std::tuple<std::int64_t, std::string>>(arguments);
        items_[list_index(index, items_.size(), "ListProxy.set")] = std::move(item);
        return {};
      }
      case ManagerOp::list_pop: {
        auto [index] = decode<std::tuple<std::int64_t>>(arguments);
        if (items_.empty()) throw IndexError("ListProxy.pop: pop from empty list");
        auto position = items_.begin() + static_cast<std::ptrdiff_t>(
                                             list_index(index, items_.size(), "ListProxy.pop"));
        std::string item = std::move(*position);
        items_.erase(position);
        return encode(item);
      }
      case ManagerOp::size:
        return encode(static_cast<std::uint64_t>(items_.size()));
      case ManagerOp::list_copy:
        return encode(items_);
      case ManagerOp::list_reverse:
        std::reverse(items_.begin(), items_.end());
        return {};
      default:
        unsupported(op, "list");
    }
  }

 private:
  std::vector<std::string> items_;
};

class ServedNamespace final : public Served {
 public:
  std::string call(ManagerOp op, std::string_view arguments, const ClientLink&) override {
    std::lock_guard guard(mutex_);
    switch (op) {
      case ManagerOp::namespace_get: {
        auto [name] = decode<std::tuple<std::string>>(arguments);
        auto found = attributes_.find(name);
        if (found == attributes_.end()) no_attribute(name);
        return encode(found->second);
      }
      case ManagerOp::namespace_set: {
        auto [name, value] = decode<std::tuple<std::string, Object>>(arguments);
        attributes_.insert_or_assign(std::move(name), std::move(value));
        return {};
      }
      case ManagerOp::namespace_has:
        return encode(
            attributes_.contains(std::get<0>(decode<std::tuple<std::string>>(arguments))));
      case ManagerOp::namespace_remove: {
        auto [name] = decode<std::tuple<std::string>>(arguments);
        if (attributes_.erase(name) == 0) no_attribute(name);
        return {};
      }
      case ManagerOp::namespace_repr: {
        std::string out = "Namespace(";
        const char* separator = "";
        for (const auto& [name, value] : attributes_) {
          out += separator + name + "=" + value.repr();
          separator = ", ";
        }
        return encode(out + ")");
      }
      default:
        unsupported(op, "Namespace");
    }
  }

 private:
  [[noreturn]] static void no_attribute(const std::string& name) {
    throw KeyError("'Namespace' object has no attribute '" + name + "'");
  }
  std::map<std::string, Object> attributes_;  // sorted, as Python's repr lists them
};

class ServedValue final : public Served {
 public:
  explicit ServedValue(std::string initial) : value_(std::move(initial)) {}
  std::string call(ManagerOp op, std::string_view arguments, const ClientLink&) override {
    std::lock_guard guard(mutex_);
    switch (op) {
      case ManagerOp::value_get:
        return encode(value_);
      case ManagerOp::value_set:
        value_ = std::get<0>(decode<std::tuple<std::string>>(arguments));
        return {};
      default:
        unsupported(op, "Value");
    }
  }

 private:
  std::string value_;
};

// Lock, RLock and Condition (over an RLock): the holder is a client
// connection. A Condition's waiters take wake-up tickets that notify hands
// out, at most one per waiter; lock and condition waiters share the
// object's condition variable, so every change wakes all.
class ServedLock final : public Served {
 public:
  ServedLock(bool recursive, bool condition) : recursive_(recursive), condition_(condition) {}
  std::string call(ManagerOp op, std::string_view arguments, const ClientLink& client) override {
    std::unique_lock lock(mutex_);
    switch (op) {
      case ManagerOp::lock_acquire: {
        auto [timeout] = decode<std::tuple<std::int64_t>>(arguments);
        if (recursive_ && owner_ == client.id) {
          ++depth_;
          return encode(true);
        }
        return encode(take(lock, deadline_from_wire(timeout), client, 1));
      }
      case ManagerOp::lock_release:
        if (owner_ == 0)
          throw ValueError(recursive_ ? "RLockProxy.release: cannot release un-acquired lock"
                                      : "LockProxy.release: release unlocked lock");
        if (recursive_ && owner_ != client.id)
          throw ValueError("RLockProxy.release: cannot release a lock held by another thread");
        if (--depth_ == 0) free();
        return {};
      case ManagerOp::lock_locked:
        return encode(owner_ != 0);
      case ManagerOp::lock_owner_died:
        return encode(owner_died_);
      case ManagerOp::lock_mark_consistent:
        owner_died_ = false;
        return {};
      case ManagerOp::condition_wait: {
        auto [timeout] = decode<std::tuple<std::int64_t>>(arguments);
        require_condition_holder(op, client, "ConditionProxy.wait");
        std::uint32_t depth = depth_;
        free();
        ++waiting_;
        bool notified = false;
        try {
          notified = wait(lock, deadline_from_wire(timeout), client, [&] { return tickets_ > 0; });
        } catch (const ClientGone&) {
          stop_waiting(false);
          throw;
        }
        stop_waiting(notified);
        take(lock, Deadline::never(), client, depth);
        return encode(notified);
      }
      case ManagerOp::condition_notify: {
        auto [n] = decode<std::tuple<std::int64_t>>(arguments);
        require_condition_holder(op, client, "ConditionProxy.notify");
        tickets_ = std::min<std::uint64_t>(
            waiting_, tickets_ + static_cast<std::uint64_t>(std::max<std::int64_t>(n, 0)));
        changed_.notify_all();
        return {};
      }
      default:
        unsupported(op, condition_ ? "Condition" : recursive_ ? "RLock" : "Lock");
    }
  }
  void client_gone(std::uint64_t client) override {
    std::lock_guard guard(mutex_);
    if (owner_ != client) return;
    free();
    owner_died_ = true;
  }

 private:
  bool take(std::unique_lock<std::mutex>& lock, const Deadline& deadline, const ClientLink& client,
            std::uint32_t depth) {
    if (!wait(lock, deadline, client, [&] { return owner_ == 0; })) return false;
    owner_ = client.id;
    depth_ = depth;
    return true;
  }
  void free() {
    owner_ = 0;
    depth_ = 0;
    changed_.notify_all();
  }
  void require_condition_holder(ManagerOp op, const ClientLink& client, const char* method) const {
    if (!condition_) unsupported(op, recursive_ ? "RLock" : "Lock");
    if (owner_ != client.id)
      throw ValueError(std::string(method) + ": cannot wait or notify on an un-acquired lock");
  }
  // A waiter leaves: with its ticket used, or without (then no more
  // tickets than waiters remain).
  void stop_waiting(bool used_ticket) {
    --waiting_;
    if (used_ticket) --tickets_;
    tickets_ = std::min(tickets_, waiting_);
  }

  const bool recursive_;
  const bool condition_;
  std::uint64_t owner_ = 0;  // client id, 0: free
  std::uint32_t depth_ = 0;
  bool owner_died_ = false;
  std::uint64_t waiting_ = 0;  // condition waiters
  std::uint64_t tickets_ = 0;  // wake-ups handed out by notify, not yet taken
};

class ServedBarrier final : public Served {
 public:
  explicit ServedBarrier(int parties) : parties_(parties) {
    if (parties < 1) throw ValueError("Manager.Barrier: parties must be >= 1");
  }
  std::string call(ManagerOp op, std::string_view arguments, const ClientLink& client) override {
    std::unique_lock lock(mutex_);
    switch (op) {
      case ManagerOp::barrier_wait: {
        auto [timeout] = decode<std::tuple<std::int64_t>>(arguments);
        if (broken_) throw BrokenBarrierError("BarrierProxy.wait: the barrier is broken");
        int index = count_++;
        std::uint64_t generation = generation_;
        if (count_ == parties_) {
          next_generation();
          return encode(index);
        }
        bool passed = false;
        try {
          passed = wait(lock, deadline_from_wire(timeout), client,
                        [&] { return generation_ != generation || broken_; });
        } catch (const ClientGone&) {
          // Gone while it still counted, the others would wait for a party
          // that never comes. Once its generation tripped it had arrived:
          // the next generation is none of its business.
          if (generation_ == generation) {
            --count_;
            break_barrier();
          }
          throw;
        }
        if (generation_ != generation) {
          if (std::find(reset_generations_.begin(), reset_generations_.end(), generation) ==
              reset_generations_.end())
            return encode(index);
        } else {
          --count_;
          if (!passed) break_barrier();
        }
        throw BrokenBarrierError("BarrierProxy.wait: the barrier was broken, reset or timed out");
      }
      case ManagerOp::barrier_reset:
        if (count_ > 0) reset_generations_.push_back(generation_);
        next_generation();
        broken_ = false;
        return {};
      case ManagerOp::barrier_abort:
        break_barrier();
        return {};
      case ManagerOp::barrier_info:
        return encode(std::tuple<int, int, bool>(parties_, count_, broken_));
      default:
        unsupported(op, "Barrier");
    }
  }

 private:
  void next_generation() {
    ++generation_;
    count_ = 0;
    changed_.notify_all();
  }
  void break_barrier() {
    broken_ = true;
    changed_.notify_all();
  }
  const int parties_;
  int count_ = 0;  // waiting in this generation
  std::uint64_t generation_ = 0;
  std::vector<std::uint64_t> reset_generations_;  // ended by reset(), not by the last arrival
  bool broken_ = false;
};

class ServedSemaphore final : public Served {
 public:
  ServedSemaphore(int value, bool bounded) : value_(value), maximum_(bounded ? value : -1) {
    if (value < 0) throw ValueError("Manager.Semaphore: initial value must be >= 0");
  }
  std::string call(ManagerOp op, std::string_view arguments, const ClientLink& client) override {
    std::unique_lock lock(mutex_);
    switch (op) {
      case ManagerOp::lock_acquire: {
        auto [timeout] = decode<std::tuple<std::int64_t>>(arguments);
        if (!wait(lock, deadline_from_wire(timeout), client, [&] { return value_ > 0; }))
          return encode(false);
        --value_;
        return encode(true);
      }
      case ManagerOp::lock_release:
        if (maximum_ >= 0 && value_ >= maximum_)
          throw ValueError("BoundedSemaphore.release: semaphore released too many times");
        ++value_;
        changed_.notify_one();
        return {};
      case ManagerOp::semaphore_value:
        return encode(value_);
      default:
        unsupported(op, "Semaphore");
    }
  }

 private:
  int value_;
  const int maximum_;  // -1: unbounded
};

class ServedEvent final : public Served {
 public:
  std::string call(ManagerOp op, std::string_view arguments, const ClientLink& client) override {
    std::unique_lock lock(mutex_);
    switch (op) {
      case ManagerOp::event_set:
        flag_ = true;
        changed_.notify_all();
        return {};
      case ManagerOp::event_clear:
        flag_ = false;
        return {};
      case ManagerOp::event_is_set:
        return encode(flag_);
      case ManagerOp::event_wait: {
        auto [timeout] = decode<std::tuple<std::int64_t>>(arguments);
        return encode(wait(lock, deadline_from_wire(timeout), client, [&] { return flag_; }));
      }
      default:
        unsupported(op, "Event");
    }
  }

 private:
  bool flag_ = false;
};

class ServedQueue final : public Served {
 public:
  ServedQueue(int maxsize, bool joinable)
      : maxsize_(maxsize > 0 ? static_cast<std::size_t>(maxsize) : 0), joinable_(joinable) {}
  std::string call(ManagerOp op, std::string_view arguments, const ClientLink& client) override {
    std::unique_lock lock(mutex_);
    switch (op) {
      case ManagerOp::queue_put: {
        auto [item, timeout] = decode<std::tuple<std::string, std::int64_t>>(arguments);
        if (!wait(lock, deadline_from_wire(timeout), client,
                  [&] { return maxsize_ == 0 || items_.size() < maxsize_; }))
          throw Full("QueueProxy.put: the queue is full");
        items_.push_back(std::move(item));
        ++unfinished_;
        changed_.notify_all();
        return {};
      }
      case ManagerOp::queue_get: {
        auto [timeout] = decode<std::tuple<std::int64_t>>(arguments);
        if (!wait(lock, deadline_from_wire(timeout), client, [&] { return !items_.empty(); }))
          throw Empty("QueueProxy.get: the queue is empty");
        std::string item = std::move(items_.front());
        items_.pop_front();
        changed_.notify_all();
        return encode(item);
      }
      case ManagerOp::queue_info:
        return encode(std::pair<std::uint64_t, std::uint64_t>(items_.size(), maxsize_));
      case ManagerOp::queue_task_done:
        if (!joinable_) unsupported(op, "Queue");
        if (unfinished_ == 0)
          throw ValueError("JoinableQueueProxy.task_done: called too many times");
        if (--unfinished_ == 0) changed_.notify_all();
        return {};
      case ManagerOp::queue_join: {
        if (!joinable_) unsupported(op, "Queue");
        auto [timeout] = decode<std::tuple<std::int64_t>>(arguments);
        return encode(
            wait(lock, deadline_from_wire(timeout), client, [&] { return unfinished_ == 0; }));
      }
      default:
        unsupported(op, "Queue");
    }
  }

 private:
  std::deque<std::string> items_;
  const std::size_t maxsize_;  // 0: unbounded
  const bool joinable_;
  std::uint64_t unfinished_ = 0;
};

class ServedUserObject final : public Served {
 public:
  explicit ServedUserObject(const ServedTypeEntry& type) : type_(type), object_(type.make()) {}
  std::string call(ManagerOp op, std::string_view arguments, const ClientLink&) override {
    if (op != ManagerOp::user_call) unsupported(op, type_.name);
    std::lock_guard guard(mutex_);
    auto [index, encoded] = decode<std::tuple<std::uint64_t, std::string>>(arguments);
    if (index >= type_.methods)
      throw ValueError("Manager: " + type_.name + " has no registered method number " +
                       std::to_string(index));
    return encode(type_.call(object_.get(), index, encoded));
  }

 private:
  const ServedTypeEntry& type_;
  std::shared_ptr<void> object_;
};

std::shared_ptr<Served> make_served(ServedKind kind, std::string_view arguments) {
  switch (kind) {
    case ServedKind::dict:
      return std::make_shared<ServedDict>();
    case ServedKind::list:
      return std::make_shared<ServedList>();
    case ServedKind::namespace_:
      return std::make_shared<ServedNamespace>();
    case ServedKind::value:
      return std::make_shared<ServedValue>(std::string(arguments));
    case ServedKind::lock:
      return std::make_shared<ServedLock>(false, false);
    case ServedKind::rlock:
      return std::make_shared<ServedLock>(true, false);
    case ServedKind::condition:
      return std::make_shared<ServedLock>(true, true);
    case ServedKind::barrier:
      return std::make_shared<ServedBarrier>(loads<int>(arguments, "Manager.Barrier"));
    case ServedKind::semaphore:
    case ServedKind::bounded_semaphore:
      return std::make_shared<ServedSemaphore>(loads<int>(arguments, "Manager.Semaphore"),
                                               kind == ServedKind::bounded_semaphore);
    case ServedKind::event:
      return std::make_shared<ServedEvent>();
    case ServedKind::queue:
    case ServedKind::joinable_queue:
      return std::make_shared<ServedQueue>(loads<int>(arguments, "Manager.Queue"),
                                           kind == ServedKind::joinable_queue);
    case ServedKind::user: {
      auto name = loads<std::string>(arguments, "Manager.make");
      for (const ServedTypeEntry& type : served_types())
        if (type.name == name) return std::make_shared<ServedUserObject>(type);
      throw TypeError("Manager.make: " + name +
                      " is not registered in the server (MP_MANAGER_TYPE)");
    }
  }
  throw ValueError("Manager: unknown object kind " + std::to_string(static_cast<int>(kind)));
}

class Server {
 public:
  Server(Listener listener, FileDescriptor creator, std::string directory)
      : listener_(std::move(listener)),
        creator_(std::move(creator)),
        stop_(check(
            "eventfd", [] { return ::eventfd(0, EFD_CLOEXEC); }, "Manager server")),
        directory_(std::move(directory)) {}

  [[noreturn]] void run() {
    for (;;) {
      pollfd watched[3] = {
          {listener_.fileno(), POLLIN, 0}, {stop_.get(), POLLIN, 0}, {creator_.get(), POLLIN, 0}};
      check(
          "poll", [&] { return ::poll(watched, 3, -1); }, "Manager server");
      if (watched[1].revents != 0 || watched[2].revents != 0) stop();
      if (watched[0].revents == 0) continue;
      try {
        if (auto connection = listener_.accept(std::chrono::milliseconds(0)))
          std::thread(&Server::serve, this, std::move(*connection), ++clients_).detach();
      } catch (const std::exception&) {
        // A failed handshake (wrong key, garbage, silence), a refused accept
        // or no thread to serve it (std::system_error) concerns that peer
        // only: its connection is closed, the others go on.
      }
    }
  }

 private:
  [[noreturn]] void stop() {
    listener_.close();  // removes the socket file
    if (!directory_.empty()) retry("rmdir", [&] { return ::rmdir(directory_.c_str()); });
    mp::exit(0);
  }

  void serve(Connection connection, std::uint64_t id) {
    read_ahead(connection);  // this thread's own
    ClientLink client{id, connection.fileno()};
    for (;;) {
      std::string request;
      try {
        request = connection.recv_bytes(max_request_bytes);
      } catch (const std::exception&) {
        break;  // the end, a frame cut short, or one too long: the stream is lost
      }
      std::string reply(1, '\0');
      bool stopping = false;
      try {
        stopping = handle(request, client, reply);
      } catch (const ClientGone&) {
        break;
      } catch (...) {
        reply.assign(1, '\1');
        capture_current_exception(reply);
      }
      try {
        connection.send_bytes(reply);
      } catch (const std::exception&) {
        break;
      }
      if (stopping) {
        std::uint64_t one = 1;
        retry("write", [&] { return ::write(stop_.get(), &one, sizeof one); });
        break;
      }
    }
    connection.close();
    for (const auto& object : all_objects()) object->client_gone(id);
  }

  // Appends the result to `reply`; returns whether the server must stop.
  bool handle(std::string_view request, const ClientLink& client, std::string& reply) {
    if (request.size() < request_header_bytes)
      throw SerializationError("Manager: a request of " + std::to_string(request.size()) +
                               " bytes is shorter than its header");
    std::uint64_t token = 0;
    std::memcpy(&token, request.data(), sizeof token);
    auto op = static_cast<ManagerOp>(request[sizeof token]);
    std::string_view arguments = request.substr(request_header_bytes);
    if (token == 0) {
      switch (op) {
        case ManagerOp::ping:
          return false;
        case ManagerOp::shutdown:
          return true;
        case ManagerOp::create: {
          if (arguments.empty()) throw SerializationError("Manager.create: no kind");
          auto object = make_served(static_cast<ServedKind>(arguments[0]), arguments.substr(1));
          std::lock_guard guard(mutex_);
          objects_.emplace(++tokens_, std::move(object));
          reply += dumps(tokens_, "Manager.create");
          return false;
        }
        default:
          throw ValueError("Manager: the server has no operation " +
                           std::to_string(static_cast<int>(op)));
      }
    }
    std::shared_ptr<Served> object;
    {
      std::lock_guard guard(mutex_);
      auto found = objects_.find(token);
      if (found == objects_.end())
        throw KeyError("Manager: no object with token " + std::to_string(token));
      object = found->second;
    }
    reply += object->call(op, arguments, client);
    return false;
  }

  std::vector<std::shared_ptr<Served>> all_objects() {
    std::lock_guard guard(mutex_);
    std::vector<std::shared_ptr<Served>> out;
    out.reserve(objects_.size());
    for (const auto& [token, object] : objects_) out.push_back(object);
    return out;
  }

  Listener listener_;
  FileDescriptor creator_;  // pidfd of the creating process
  FileDescriptor stop_;     // eventfd: a shutdown request was answered
  std::string directory_;   // private directory to remove, or empty
  std::uint64_t clients_ = 0;
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Served>> objects_;
  std::uint64_t tokens_ = 0;
};

std::string random_authkey() {
  std::string key(32, '\0');
  check(
      "getrandom", [&] { return ::getrandom(key.data(), key.size(), 0); }, "Manager authkey");
  return key;
}

// The server process's body: reports its bound address (or why it could
// not bind) through `report`, then serves until stopped.
[[noreturn]] void run_server(Connection report, pid_t creator, Address address, std::string authkey,
                             std::string directory, const std::function<void()>& initializer) {
  try {
    FileDescriptor creator_fd(static_cast<int>(check(
        "pidfd_open", [&] { return ::syscall(SYS_pidfd_open, creator, 0); }, "Manager server")));
    if (::getppid() != creator) mp::exit(0);  // the creator died before we watched it
    Listener listener(std::move(address), authkey, 128);
    if (initializer) initializer();
    std::string bound = std::string(1, '\0') + dumps(ProxyHandle(listener.address(), {}, 0), "Manager");
    // Built before the report: once the creator has the address, nothing
    // can fail here any more but serving itself.
    Server server(std::move(listener), std::move(creator_fd), std::move(directory));
    report.send_bytes(bound);
    report.close();
    server.run();
  } catch (const std::exception& error) {
    try {
      if (!report.closed()) report.send_bytes(std::string(1, '\1') + error.what());
    } catch (const std::exception&) {
      // The creator is gone: nobody to tell.
    }
  }
  mp::exit(1);
}

}  // namespace

bool register_served_type(ServedTypeEntry entry) {
  for (const ServedTypeEntry& type : served_types())
    if (type.name == entry.name) return true;
  served_types().push_back(std::move(entry));
  return true;
}

}  // namespace detail

// ---- proxies with out-of-line members ----

Object NamespaceProxy::get(const std::string& name) const {
  return handle_.invoke<Object>(detail::ManagerOp::namespace_get, "NamespaceProxy.get", name);
}
void NamespaceProxy::set(const std::string& name, const Object& value) const {
  handle_.invoke<void>(detail::ManagerOp::namespace_set, "NamespaceProxy.set", name, value);
}
bool NamespaceProxy::has(const std::string& name) const {
  return handle_.invoke<bool>(detail::ManagerOp::namespace_has, "NamespaceProxy.has", name);
}
void NamespaceProxy::remove(const std::string& name) const {
  handle_.invoke<void>(detail::ManagerOp::namespace_remove, "NamespaceProxy.remove", name);
}
std::string NamespaceProxy::repr() const {
  return handle_.invoke<std::string>(detail::ManagerOp::namespace_repr, "NamespaceProxy.repr");
}

bool SemaphoreProxy::acquire_until(const detail::Deadline& deadline) {
  return handle_.invoke<bool>(detail::ManagerOp::lock_acquire, "SemaphoreProxy.acquire",
                              detail::wire_timeout(deadline));
}
void SemaphoreProxy::release() {
  handle_.invoke<void>(detail::ManagerOp::lock_release, "SemaphoreProxy.release");
}
int SemaphoreProxy::get_value() const {
  return handle_.invoke<int>(detail::ManagerOp::semaphore_value, "SemaphoreProxy.get_value");
}

void EventProxy::set() const {
  handle_.invoke<void>(detail::ManagerOp::event_set, "EventProxy.set");
}
void EventProxy::clear() const {
  handle_.invoke<void>(detail::ManagerOp::event_clear, "EventProxy.clear");
}
bool EventProxy::is_set() const {
  return handle_.invoke<bool>(detail::ManagerOp::event_is_set, "EventProxy.is_set");
}
bool EventProxy::wait_until(const detail::Deadline& deadline) const {
  return handle_.invoke<bool>(detail::ManagerOp::event_wait, "EventProxy.wait",
                              detail::wire_timeout(deadline));
}

bool ConditionProxy::wait_until(const detail::Deadline& deadline) {
  return handle_.invoke<bool>(detail::ManagerOp::condition_wait, "ConditionProxy.wait",
                              detail::wire_timeout(deadline));
}
void ConditionProxy::notify(int n) {
  handle_.invoke<void>(detail::ManagerOp::condition_notify, "ConditionProxy.notify",
                       static_cast<std::int64_t>(n));
}
void ConditionProxy::notify_all() {
  handle_.invoke<void>(detail::ManagerOp::condition_notify, "ConditionProxy.notify_all",
                       std::numeric_limits<std::int64_t>::max());
}

int BarrierProxy::wait_until(const detail::Deadline& deadline) const {
  return handle_.invoke<int>(detail::ManagerOp::barrier_wait, "BarrierProxy.wait",
                             detail::wire_timeout(deadline));
}
void BarrierProxy::reset() const {
  handle_.invoke<void>(detail::ManagerOp::barrier_reset, "BarrierProxy.reset");
}
void BarrierProxy::abort() const {
  handle_.invoke<void>(detail::ManagerOp::barrier_abort, "BarrierProxy.abort");
}
std::tuple<int, int, bool> BarrierProxy::info() const {
  return handle_.invoke<std::tuple<int, int, bool>>(detail::ManagerOp::barrier_info,
                                                    "BarrierProxy.info");
}
int BarrierProxy::parties() const { return std::get<0>(info()); }
int BarrierProxy::n_waiting() const { return std::get<1>(info()); }
bool BarrierProxy::broken() const { return std::get<2>(info()); }

// ---- Manager ----

struct Manager::State {
  detail::ProxyHandle server;      // token 0: the server itself
  std::optional<Process> process;  // empty: connected, not owned
  pid_t creator = 0;
  std::string directory;  // the private directory, if we made one
};

Manager::Manager() : Manager(ManagerOptions{}) {}

Manager::Manager(ManagerOptions options) : state_(std::make_unique<State>()) {
  std::string authkey = options.authkey.empty() ? detail::random_authkey() : options.authkey;
  Address address;
  if (options.address) {
    address = *options.address;
  } else {
    char directory[] = "/tmp/mp-manager-XXXXXX";
    detail::check(
        "mkdtemp", [&] { return ::mkdtemp(directory) ? 0 : -1; }, "Manager");
    state_->directory = directory;
    address = unix_address(state_->directory + "/listener");
  }
  state_->creator = ::getpid();
  auto [reader, writer] = Pipe(false);
  state_->process.emplace(
      ProcessOptions{"SyncManager", true},
      [writer, creator = state_->creator, address, authkey, directory = state_->directory,
       initializer = std::move(options.initializer)]() {
        detail::run_server(writer, creator, address, authkey, directory, initializer);
      });
  state_->process->start();
  // The target (and its copy of the writer) stays in this process, so a
  // server that died is seen by its state, not by the end of the pipe.
  std::string report;
  while (report.empty()) {
    if (reader.poll(std::chrono::milliseconds(50)))
      report = reader.recv_bytes();
    else if (!state_->process->is_alive())
      break;
  }
  if (report.empty() || report[0] != 0) {
    state_->process->join(std::chrono::seconds(1));
    std::string reason =
        report.empty() ? "the server process died while starting" : report.substr(1);
    if (!state_->directory.empty())
      detail::retry("rmdir", [&] { return ::rmdir(state_->directory.c_str()); });
    throw ProcessError("Manager: cannot start the server: " + reason);
  }
  auto bound = detail::loads<detail::ProxyHandle>(std::string_view(report).substr(1), "Manager");
  state_->server = detail::ProxyHandle(bound.address(), std::move(authkey), 0);
}

Manager::Manager(std::unique_ptr<State> state) : state_(std::move(state)) {}
Manager::Manager(Manager&&) noexcept = default;
Manager& Manager::operator=(Manager&& other) noexcept {
  if (this != &other) {
    shutdown_quietly();
    state_ = std::move(other.state_);
  }
  return *this;
}

Manager::~Manager() { shutdown_quietly(); }

// For the noexcept paths: a server that cannot be stopped (its join or kill
// failing) stops itself once its creator is gone.
void Manager::shutdown_quietly() noexcept {
  try {
    shutdown();
  } catch (...) {
  }
}

Manager Manager::connect(Address address, std::string authkey) {
  auto state = std::make_unique<State>();
  state->server = detail::ProxyHandle(std::move(address), std::move(authkey), 0);
  state->server.call(detail::ManagerOp::ping, {}, "Manager.connect");
  return Manager(std::move(state));
}

void Manager::shutdown() {
  if (!state_ || !state_->process || state_->creator != ::getpid()) return;
  try {
    state_->server.call(detail::ManagerOp::shutdown, {}, "Manager.shutdown");
  } catch (const std::exception&) {
    // Already gone: the join below finds it ended.
  }
  Process& process = *state_->process;
  process.join(std::chrono::seconds(1));
  if (process.is_alive()) {
    process.kill();
    process.join();
  }
  const Address& address = state_->server.address();
  if (!state_->directory.empty()) {  // a killed server left them
    detail::retry("unlink", [&] { return ::unlink(address.path.c_str()); });
    detail::retry("rmdir", [&] { return ::rmdir(state_->directory.c_str()); });
  }
  detail::forget_connection(address, state_->server.authkey());
  state_->process.reset();
}

detail::ProxyHandle Manager::create(detail::ServedKind kind, std::string arguments) {
  if (!state_) throw ValueError("Manager: used after being moved from");
  return detail::create_served(state_->server, kind, std::move(arguments));
}

SemaphoreProxy Manager::Semaphore(int value) {
  return SemaphoreProxy(
      create(detail::ServedKind::semaphore, detail::dumps(value, "Manager.Semaphore")));
}
SemaphoreProxy Manager::BoundedSemaphore(int value) {
  return SemaphoreProxy(create(detail::ServedKind::bounded_semaphore,
                               detail::dumps(value, "Manager.BoundedSemaphore")));
}

BarrierProxy Manager::Barrier(int parties) {
  return BarrierProxy(
      create(detail::ServedKind::barrier, detail::dumps(parties, "Manager.Barrier")));
}

Address Manager::address() const { return state_->server.address(); }
const std::string& Manager::authkey() const { return state_->server.authkey(); }

}  // namespace mp
