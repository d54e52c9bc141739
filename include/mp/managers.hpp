// mp/managers.hpp: Manager and its proxies (Python: multiprocessing.managers).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mp/connection.hpp"
#include "mp/detail/archive.hpp"
#include "mp/detail/deadline.hpp"
#include "mp/detail/sync_lock_word.hpp"
#include "mp/errors.hpp"
#include "mp/object.hpp"

namespace mp {

namespace detail {

// The requests a proxy sends. One enum for every kind, so a request names
// its operation in one byte; an object asked for an operation of another
// kind answers TypeError.
enum class ManagerOp : std::uint8_t {
  create,
  shutdown,
  ping,
  dict_get,
  dict_find,
  dict_set,
  dict_pop,
  dict_pop_default,
  dict_contains,
  dict_keys,
  dict_values,
  dict_items,
  dict_update,
  size,
  clear,
  list_append,
  list_extend,
  list_get,
  list_set,
  list_pop,
  list_copy,
  list_reverse,
  namespace_get,
  namespace_set,
  namespace_has,
  namespace_remove,
  namespace_repr,
  value_get,
  value_set,
  lock_acquire,
  lock_release,
  lock_locked,
  lock_owner_died,
  lock_mark_consistent,
  semaphore_value,
  condition_wait,
  condition_notify,
  barrier_wait,
  barrier_reset,
  barrier_abort,
  barrier_info,
  event_set,
  event_clear,
  event_is_set,
  event_wait,
  queue_put,
  queue_get,
  queue_task_done,
  queue_join,
  queue_info,
  user_call,
};

// What Manager::...() asks the server to create.
enum class ServedKind : std::uint8_t {
  dict,
  list,
  namespace_,
  value,
  lock,
  rlock,
  semaphore,
  bounded_semaphore,
  event,
  queue,
  joinable_queue,
  user,
  condition,
  barrier,
};

// A timeout as it travels: nanoseconds left, -1 for none.
std::int64_t wire_timeout(const Deadline& deadline) noexcept;

// What every proxy is: the server's address, its key, and the token of one
// object there. Copies (and copies in other processes, through cereal) reach
// the same object. Each thread of each process talks to a server over its
// own connection, opened at its first call and kept (a forked child never
// uses its parent's: it opens its own).
class ProxyHandle {
 public:
  ProxyHandle() = default;
  ProxyHandle(Address address, std::string authkey, std::uint64_t token)
      : address_(std::move(address)), authkey_(std::move(authkey)), token_(token) {}
  const Address& address() const noexcept { return address_; }
  const std::string& authkey() const noexcept { return authkey_; }
  std::uint64_t token() const noexcept { return token_; }
  bool operator==(const ProxyHandle& other) const {
    return token_ == other.token_ && address_ == other.address_;
  }

  template <class Archive>
  void save(Archive& archive) const {
    archive(address_.family == Address::Family::unix_socket, address_.host, address_.port,
            address_.path, authkey_, token_);
  }
  template <class Archive>
  void load(Archive& archive) {
    bool unix_socket = false;
    archive(unix_socket, address_.host, address_.port, address_.path, authkey_, token_);
    address_.family = unix_socket ? Address::Family::unix_socket : Address::Family::tcp;
  }

  // One request, its reply's payload; an error the server raised is
  // rethrown here as Remote<E>.
  std::string call(ManagerOp op, std::string_view arguments, std::string_view method) const;

  template <class R, class... Args>
  R invoke(ManagerOp op, std::string_view method, const Args&... arguments) const {
    std::string reply = call(op, dumps(std::tuple<Args...>(arguments...), method), method);
    if constexpr (!std::is_void_v<R>) return loads<R>(reply, method);
  }

 private:
  Address address_;
  std::string authkey_;
  std::uint64_t token_ = 0;
};

// What every proxy class derives from: its handle, which is all it
// serializes.
class Proxy {
 public:
  Proxy() = default;
  explicit Proxy(ProxyHandle handle) : handle_(std::move(handle)) {}
  const ProxyHandle& handle() const noexcept { return handle_; }
  template <class Archive>
  void serialize(Archive& archive) {
    archive(handle_);
  }

 protected:
  ProxyHandle handle_;
};

// Asks the server at `handle`'s address for a new object; returns its handle.
ProxyHandle create_served(const ProxyHandle& server, ServedKind kind, std::string arguments);

// Member function traits, for the registered user types below.
template <class M>
struct member_function;
template <class R, class C, class... A>
struct member_function<R (C::*)(A...)> {
  using result = R;
  using arguments = std::tuple<std::decay_t<A>...>;
};
template <class R, class C, class... A>
struct member_function<R (C::*)(A...) const> : member_function<R (C::*)(A...)> {};

// A registered user type, as the server sees it.
struct ServedTypeEntry {
  std::string name;
  std::shared_ptr<void> (*make)();
  // Calls method number `index` of `object` with the encoded arguments and
  // returns the encoded result.
  std::string (*call)(void* object, std::size_t index, std::string_view arguments);
  std::size_t methods;
};
bool register_served_type(ServedTypeEntry entry);

template <class T, class Methods, std::size_t... I>
std::string call_method(T& object, const Methods& methods, std::size_t index,
                        std::string_view arguments, std::index_sequence<I...>) {
  std::string reply;
  (void)((index == I
              ? (
                    reply =
                        [&] {
                          auto method = std::get<I>(methods);
                          using Traits = member_function<decltype(method)>;
                          auto decoded =
                              loads<typename Traits::arguments>(arguments, "Manager: user call");
                          if constexpr (std::is_void_v<typename Traits::result>) {
                            std::apply([&](auto&... a) { (object.*method)(a...); }, decoded);
                            return std::string();
                          } else {
                            return dumps(
                                std::apply([&](auto&... a) { return (object.*method)(a...); },
                                           decoded),
                                "Manager: user call");
                          }
                        }(),
                    true)
              : false) ||
         ...);
  return reply;
}

template <class T>
ServedTypeEntry served_type_entry() {
  constexpr std::size_t count =
      std::tuple_size_v<decltype(mp_manager_methods(static_cast<T*>(nullptr)))>;
  return ServedTypeEntry{
      type_name<T>(), [] { return std::static_pointer_cast<void>(std::make_shared<T>()); },
      [](void* object, std::size_t index, std::string_view arguments) {
        return call_method(*static_cast<T*>(object), mp_manager_methods(static_cast<T*>(nullptr)),
                           index, arguments, std::make_index_sequence<count>());
      },
      count};
}

// The position of `method` in T's registered list; the list's size if absent.
template <class T, class M>
std::size_t served_method_index(M method) {
  auto methods = mp_manager_methods(static_cast<T*>(nullptr));
  std::size_t found = std::tuple_size_v<decltype(methods)>;
  std::size_t position = 0;
  std::apply(
      [&](auto... registered) {
        (([&] {
           if constexpr (std::is_same_v<decltype(registered), M>)
             if (found == std::tuple_size_v<decltype(methods)> && registered == method)
               found = position;
           ++position;
         }()),
         ...);
      },
      methods);
  return found;
}

}  // namespace detail

struct ManagerOptions {
  std::optional<Address> address;     // empty: a Unix socket in a private temporary directory
  std::string authkey;                // empty: 32 random bytes
  std::function<void()> initializer;  // run in the server process before it serves
};

// DictProxy (Python: a manager's dict(), a DictProxy)
//
// A dict held by the server; each call is one atomic request. Keys are
// compared by their serialized bytes (equal for equal ints, strings, tuples,
// Objects of one type; Python's 1 == 1.0 == True are three keys here).
// Iteration order is insertion order, as Python's. get(k) and pop(k) of a
// missing key throw Remote<KeyError>.
template <class K, class V>
class DictProxy : public detail::Proxy {
 public:
  using Proxy::Proxy;

  V get(const K& key) const {
    return detail::loads<V>(
        handle_.invoke<std::string>(detail::ManagerOp::dict_get, "DictProxy.get", encode(key)),
        "DictProxy.get");
  }
  V get(const K& key, V fallback) const {
    auto found = handle_.invoke<std::optional<std::string>>(detail::ManagerOp::dict_find,
                                                            "DictProxy.get", encode(key));
    return found ? detail::loads<V>(*found, "DictProxy.get") : std::move(fallback);
  }
  void set(const K& key, const V& value) const {
    handle_.invoke<void>(detail::ManagerOp::dict_set, "DictProxy.set", encode(key),
                         detail::dumps(value, "DictProxy.set"));
  }
  V pop(const K& key) const {
    return detail::loads<V>(
        handle_.invoke<std::string>(detail::ManagerOp::dict_pop, "DictProxy.pop", encode(key)),
        "DictProxy.pop");
  }
  V pop(const K& key, V fallback) const {
    auto found = handle_.invoke<std::optional<std::string>>(detail::ManagerOp::dict_pop_default,
                                                            "DictProxy.pop", encode(key));
    return found ? detail::loads<V>(*found, "DictProxy.pop") : std::move(fallback);
  }
  bool contains(const K& key) const {
    return handle_.invoke<bool>(detail::ManagerOp::dict_contains, "DictProxy.contains",
                                encode(key));
  }
  std::size_t size() const {
    return handle_.invoke<std::uint64_t>(detail::ManagerOp::size, "DictProxy.size");
  }
  std::vector<K> keys() const {
    return decode_all<K>(detail::ManagerOp::dict_keys, "DictProxy.keys");
  }
  std::vector<V> values() const {
    return decode_all<V>(detail::ManagerOp::dict_values, "DictProxy.values");
  }
  std::vector<std::pair<K, V>> items() const {
    return decode_all<std::pair<K, V>>(detail::ManagerOp::dict_items, "DictProxy.items");
  }
  // Any range of (key, value) pairs: a std::map, a vector of pairs, another
  // dict's items(). One request.
  template <class Range>
  void update(const Range& pairs) const {
    std::vector<std::pair<std::string, std::string>> encoded;
    for (const auto& [key, value] : pairs)
      encoded.emplace_back(encode(key),
                           detail::dumps(static_cast<const V&>(value), "DictProxy.update"));
    handle_.invoke<void>(detail::ManagerOp::dict_update, "DictProxy.update", encoded);
  }
  void clear() const { handle_.invoke<void>(detail::ManagerOp::clear, "DictProxy.clear"); }
  std::map<K, V> copy() const {
    auto pairs = items();
    return std::map<K, V>(pairs.begin(), pairs.end());
  }

 private:
  static std::string encode(const K& key) { return detail::dumps(key, "DictProxy key"); }
  // items arrive as one std::string per element (each its own encoding).
  template <class T>
  std::vector<T> decode_all(detail::ManagerOp op, const char* method) const {
    std::vector<T> out;
    if constexpr (std::is_same_v<T, std::pair<K, V>>) {
      for (auto& [key, value] :
           handle_.invoke<std::vector<std::pair<std::string, std::string>>>(op, method))
        out.emplace_back(detail::loads<K>(key, method), detail::loads<V>(value, method));
    } else {
      for (auto& encoded : handle_.invoke<std::vector<std::string>>(op, method))
        out.push_back(detail::loads<T>(encoded, method));
    }
    return out;
  }
};

// ListProxy (Python: a manager's list(), a ListProxy). Indices may be
// negative, counting from the end, as Python's; one out of range throws
// Remote<IndexError>.
template <class T>
class ListProxy : public detail::Proxy {
 public:
  using Proxy::Proxy;

  void append(const T& item) const {
    handle_.invoke<void>(detail::ManagerOp::list_append, "ListProxy.append",
                         detail::dumps(item, "ListProxy.append"));
  }
  template <class Range>
  void extend(const Range& items) const {
    std::vector<std::string> encoded;
    for (const auto& item : items)
      encoded.push_back(detail::dumps(static_cast<const T&>(item), "ListProxy.extend"));
    handle_.invoke<void>(detail::ManagerOp::list_extend, "ListProxy.extend", encoded);
  }
  T get(std::int64_t index) const {
    return detail::loads<T>(
        handle_.invoke<std::string>(detail::ManagerOp::list_get, "ListProxy.get", index),
        "ListProxy.get");
  }
  void set(std::int64_t index, const T& item) const {
    handle_.invoke<void>(detail::ManagerOp::list_set, "ListProxy.set", index,
                         detail::dumps(item, "ListProxy.set"));
  }
  T pop(std::int64_t index = -1) const {
    return detail::loads<T>(
        handle_.invoke<std::string>(detail::ManagerOp::list_pop, "ListProxy.pop", index),
        "ListProxy.pop");
  }
  std::size_t size() const {
    return handle_.invoke<std::uint64_t>(detail::ManagerOp::size, "ListProxy.size");
  }
  void reverse() const {
    handle_.invoke<void>(detail::ManagerOp::list_reverse, "ListProxy.reverse");
  }
  std::vector<T> copy() const {
    std::vector<T> out;
    for (auto& encoded :
         handle_.invoke<std::vector<std::string>>(detail::ManagerOp::list_copy, "ListProxy.copy"))
      out.push_back(detail::loads<T>(encoded, "ListProxy.copy"));
    return out;
  }
};

// NamespaceProxy (Python: a manager's Namespace()): named attributes holding
// mp::Object. get() of a missing name throws Remote<KeyError> (Python:
// AttributeError). repr() is Python's: Namespace(a=1, b='x'), names sorted.
class NamespaceProxy : public detail::Proxy {
 public:
  using Proxy::Proxy;
  Object get(const std::string& name) const;
  void set(const std::string& name, const Object& value) const;
  bool has(const std::string& name) const;
  void remove(const std::string& name) const;  // Python: del ns.name
  std::string repr() const;
};

// ValueProxy (Python: a manager's Value(typecode, value)): get() and set(v),
// each one request. A read-modify-write needs a LockProxy around it, as in
// Python.
template <class T>
class ValueProxy : public detail::Proxy {
 public:
  using Proxy::Proxy;
  T get() const {
    return detail::loads<T>(
        handle_.invoke<std::string>(detail::ManagerOp::value_get, "ValueProxy.get"),
        "ValueProxy.get");
  }
  void set(const T& value) const {
    handle_.invoke<void>(detail::ManagerOp::value_set, "ValueProxy.set",
                         detail::dumps(value, "ValueProxy.set"));
  }
};

// LockProxy / RLockProxy (Python: a manager's Lock() / RLock(), the
// server's threading locks): the members of mp::Lock / mp::RLock.
// The holder is the connection of the calling thread: an RLockProxy is
// recursive per thread of a process, and its release() by another thread
// throws Remote<ValueError>; a LockProxy may be released by anyone.
// Blocking: acquire() waits forever, acquire(timeout) at most timeout (on the
// server's monotonic clock), acquire(false) not at all.
// Peer death (better than Python, which keeps the lock held forever): when
// the holder's process dies (or its thread ends), the server sees its
// connection close and releases the lock; the next acquirer gets it with
// owner_died() true until someone calls mark_consistent().
template <class Self>
class LockProxyBase : public detail::Proxy, public detail::Lockable<Self> {
 public:
  using Proxy::Proxy;
  using detail::Lockable<Self>::acquire;
  bool acquire_until(const detail::Deadline& deadline) {
    return handle_.invoke<bool>(detail::ManagerOp::lock_acquire, "LockProxy.acquire",
                                detail::wire_timeout(deadline));
  }
  void release() { handle_.invoke<void>(detail::ManagerOp::lock_release, "LockProxy.release"); }
  bool locked() const {
    return handle_.invoke<bool>(detail::ManagerOp::lock_locked, "LockProxy.locked");
  }
  bool owner_died() const {
    return handle_.invoke<bool>(detail::ManagerOp::lock_owner_died, "LockProxy.owner_died");
  }
  void mark_consistent() {
    handle_.invoke<void>(detail::ManagerOp::lock_mark_consistent, "LockProxy.mark_consistent");
  }
};

class LockProxy : public LockProxyBase<LockProxy> {
  using LockProxyBase::LockProxyBase;
};
class RLockProxy : public LockProxyBase<RLockProxy> {
  using LockProxyBase::LockProxyBase;
};

// ConditionProxy (Python: a manager's Condition(), over a new RLock): the
// lock members of RLockProxy plus wait, notify, notify_all. wait() and
// notify without holding the lock throw Remote<ValueError>. notify(n) wakes
// n of the waiters (one that began waiting after it may take a wake-up in
// place of an earlier one); wait(timeout) returns false on timeout, after
// reacquiring the lock. A waiter that dies is forgotten; a holder that dies
// releases the lock (owner_died()), as RLockProxy.
class ConditionProxy : public LockProxyBase<ConditionProxy> {
 public:
  using LockProxyBase::LockProxyBase;
  bool wait() { return wait_until(detail::Deadline::never()); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(detail::Deadline::after(timeout));
  }
  bool wait_until(const detail::Deadline& deadline);
  void notify(int n = 1);
  void notify_all();
};

// BarrierProxy (Python: a manager's Barrier(parties)): wait() returns the
// arrival index (0 .. parties-1); a timeout, abort() or reset() during a wait
// throws Remote<BrokenBarrierError> in the waiters. Differs from Python: a
// waiter that dies breaks the barrier (Python would leave the others
// waiting for a party that never comes).
class BarrierProxy : public detail::Proxy {
 public:
  using Proxy::Proxy;
  int wait() const { return wait_until(detail::Deadline::never()); }
  template <class Rep, class Period>
  int wait(std::chrono::duration<Rep, Period> timeout) const {
    return wait_until(detail::Deadline::after(timeout));
  }
  int wait_until(const detail::Deadline& deadline) const;
  void reset() const;
  void abort() const;
  int parties() const;
  int n_waiting() const;
  bool broken() const;

 private:
  std::tuple<int, int, bool> info() const;  // parties, waiting, broken
};

// SemaphoreProxy (Python: a manager's Semaphore() / BoundedSemaphore()):
// acquire as LockProxy's, release() adds one (a bounded one above its
// initial value throws Remote<ValueError>), get_value(). A unit held by a
// dead client is lost, as with mp::Semaphore.
class SemaphoreProxy : public detail::Proxy, public detail::Lockable<SemaphoreProxy> {
 public:
  using Lockable::acquire;
  using Proxy::Proxy;
  bool acquire_until(const detail::Deadline& deadline);
  void release();
  int get_value() const;
};

// EventProxy (Python: a manager's Event()): set, clear, is_set, wait.
class EventProxy : public detail::Proxy {
 public:
  using Proxy::Proxy;
  void set() const;
  void clear() const;
  bool is_set() const;
  bool wait() const { return wait_until(detail::Deadline::never()); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return wait_until(detail::Deadline::after(timeout));
  }
  bool wait_until(const detail::Deadline& deadline) const;
};

// QueueProxy / JoinableQueueProxy (Python: a manager's Queue() /
// JoinableQueue()): Queue<T>'s members; put on a full queue and get on an
// empty one wait on the server (Full / Empty as Remote<Full> / Remote<Empty>
// when the wait ends without room or item).
template <class T>
class QueueProxy : public detail::Proxy {
 public:
  using Proxy::Proxy;
  void put(const T& item) const { put_until(item, detail::Deadline::never()); }
  template <class Rep, class Per>
  void put(const T& item, std::chrono::duration<Rep, Per> timeout) const {
    put_until(item, detail::Deadline::after(timeout));
  }
  void put(const T& item, bool block) const {
    put_until(item, block ? detail::Deadline::never() : detail::Deadline::now());
  }
  void put_nowait(const T& item) const { put_until(item, detail::Deadline::now()); }
  T get() const { return get_until(detail::Deadline::never()); }
  template <class Rep, class Per>
  T get(std::chrono::duration<Rep, Per> timeout) const {
    return get_until(detail::Deadline::after(timeout));
  }
  T get(bool block) const {
    return get_until(block ? detail::Deadline::never() : detail::Deadline::now());
  }
  T get_nowait() const { return get_until(detail::Deadline::now()); }
  std::size_t qsize() const { return info().first; }
  bool empty() const { return qsize() == 0; }
  bool full() const {
    auto [size, maxsize] = info();
    return maxsize > 0 && size >= maxsize;
  }

 protected:
  void put_until(const T& item, const detail::Deadline& deadline) const {
    handle_.invoke<void>(detail::ManagerOp::queue_put, "QueueProxy.put",
                         detail::dumps(item, "QueueProxy.put"), detail::wire_timeout(deadline));
  }
  T get_until(const detail::Deadline& deadline) const {
    return detail::loads<T>(
        handle_.invoke<std::string>(detail::ManagerOp::queue_get, "QueueProxy.get",
                                    detail::wire_timeout(deadline)),
        "QueueProxy.get");
  }
  std::pair<std::uint64_t, std::uint64_t> info() const {
    return handle_.invoke<std::pair<std::uint64_t, std::uint64_t>>(detail::ManagerOp::queue_info,
                                                                   "QueueProxy.qsize");
  }
};

template <class T>
class JoinableQueueProxy : public QueueProxy<T> {
 public:
  using QueueProxy<T>::QueueProxy;
  // Remote<ValueError> when called more often than items were put.
  void task_done() const {
    this->handle_.template invoke<void>(detail::ManagerOp::queue_task_done,
                                        "JoinableQueueProxy.task_done");
  }
  void join() const { join_until(detail::Deadline::never()); }
  template <class Rep, class Per>
  bool join(std::chrono::duration<Rep, Per> timeout) const {
    return join_until(detail::Deadline::after(timeout));
  }

 private:
  bool join_until(const detail::Deadline& deadline) const {
    return this->handle_.template invoke<bool>(
        detail::ManagerOp::queue_join, "JoinableQueueProxy.join", detail::wire_timeout(deadline));
  }
};

// ObjectProxy<T>: an instance of a user type T served by the manager (Python:
// BaseManager.register('Maths', MathsClass) then manager.Maths()). T is
// registered once, at namespace scope, with the member functions a proxy may
// call:
//   struct Maths { int add(int x, int y) { return x + y; } ... };
//   MP_MANAGER_TYPE(Maths, &Maths::add, &Maths::mul)
//   auto maths = manager.make<Maths>();       // default-constructed on the server
//   int seven = maths.call(&Maths::add, 3, 4);
// Arguments and results travel through cereal; calls to one object are
// serialized by the server (one at a time), so T needs no lock of its own.
// An exception thrown by the method comes back as Remote<E>. A member
// function that was not registered throws mp::ValueError at the call.
// Registration happens at static initialization, so the server (forked
// from the same program) knows every registered type; a program connected
// with Manager::connect can call the types its own binary registered under
// the same names.
template <class T>
class ObjectProxy : public detail::Proxy {
 public:
  using Proxy::Proxy;

  template <class M, class... Args>
  typename detail::member_function<M>::result call(M method, Args&&... arguments) const {
    using Traits = detail::member_function<M>;
    std::size_t index = detail::served_method_index<T>(method);
    if (index == std::tuple_size_v<decltype(mp_manager_methods(static_cast<T*>(nullptr)))>)
      throw ValueError("ObjectProxy<" + detail::type_name<T>() +
                       ">.call: this member function is not registered with MP_MANAGER_TYPE");
    std::string reply = handle_.invoke<std::string>(
        detail::ManagerOp::user_call, "ObjectProxy.call", static_cast<std::uint64_t>(index),
        detail::dumps(typename Traits::arguments(std::forward<Args>(arguments)...),
                      "ObjectProxy.call"));
    if constexpr (!std::is_void_v<typename Traits::result>)
      return detail::loads<typename Traits::result>(reply, "ObjectProxy.call");
  }
};

// Manager (Python: multiprocessing.Manager() / managers.SyncManager)
//
// Manager() forks a server process that holds the objects its proxies reach;
// it listens on a Unix socket in a private temporary directory (or on
// options.address: TCP, or a Unix path) behind Python's authkey handshake.
// Manager::connect(address, authkey) reaches a running server from any
// process (another program, another host for TCP); such a Manager does not
// own the server. Any process that has a proxy (a forked child, a Pool
// worker that got it as a task argument, a connected program) may call it.
//
// The server: one thread per client connection (each thread of each client
// process has one), so a client that stalls, sends garbage, forges a frame
// length or dies mid-call costs its own thread only; handshakes run side by
// side (Listener), a failed one is dropped. Each request is one atomic
// operation on one object; a blocking one (acquire, wait, get) waits on the
// server, checking every 100 ms that its client is still connected.
// Errors thrown on the server come back typed (Remote<E>).
//
// Lifetime: shutdown() (or the destructor of the creating Manager, in the
// creating process) stops the server and waits for it (SIGKILL after 1 s);
// its socket and directory are removed. A server whose creating process dies
// (even by SIGKILL) stops within about 100 ms (it watches a pidfd of its
// creator): no orphan. Calls after the server stopped throw mp::OSError or
// mp::EOFError.
//
// Differs from Python: objects live until the server stops (Python frees one
// when its last proxy goes); proxies carry the authkey when serialized (as
// task arguments, through pipes of this machine), so a connected process
// needs no key of its own; the server's objects are type-erased bytes, so
// Manager::connect works from another program without registration.
class Manager {
 public:
  Manager();  // local, AF_UNIX, random authkey
  explicit Manager(ManagerOptions options);
  ~Manager();
  Manager(Manager&&) noexcept;
  Manager& operator=(Manager&&) noexcept;

  // Another process or host: checks the key with one request.
  static Manager connect(Address address, std::string authkey);

  template <class K, class V>
  DictProxy<K, V> dict() {
    return DictProxy<K, V>(create(detail::ServedKind::dict, {}));
  }
  template <class T>
  ListProxy<T> list() {
    return ListProxy<T>(create(detail::ServedKind::list, {}));
  }
  NamespaceProxy Namespace() { return NamespaceProxy(create(detail::ServedKind::namespace_, {})); }
  template <class T>
  ValueProxy<T> Value(T initial) {
    return ValueProxy<T>(
        create(detail::ServedKind::value, detail::dumps(initial, "Manager.Value")));
  }
  LockProxy Lock() { return LockProxy(create(detail::ServedKind::lock, {})); }
  RLockProxy RLock() { return RLockProxy(create(detail::ServedKind::rlock, {})); }
  SemaphoreProxy Semaphore(int value = 1);
  SemaphoreProxy BoundedSemaphore(int value = 1);
  EventProxy Event() { return EventProxy(create(detail::ServedKind::event, {})); }
  ConditionProxy Condition() { return ConditionProxy(create(detail::ServedKind::condition, {})); }
  BarrierProxy Barrier(int parties);
  template <class T>
  QueueProxy<T> Queue(int maxsize = 0) {
    return QueueProxy<T>(
        create(detail::ServedKind::queue, detail::dumps(maxsize, "Manager.Queue")));
  }
  template <class T>
  JoinableQueueProxy<T> JoinableQueue(int maxsize = 0) {
    return JoinableQueueProxy<T>(create(detail::ServedKind::joinable_queue,
                                        detail::dumps(maxsize, "Manager.JoinableQueue")));
  }
  // A registered user type (MP_MANAGER_TYPE), default-constructed on the server.
  template <class T>
  ObjectProxy<T> make() {
    return ObjectProxy<T>(
        create(detail::ServedKind::user, detail::dumps(detail::type_name<T>(), "Manager.make")));
  }

  Address address() const;
  const std::string& authkey() const;
  // Stops the server this Manager started (a connected one only forgets it).
  // Idempotent. Proxies then fail with mp::OSError or mp::EOFError.
  void shutdown();

 private:
  struct State;
  explicit Manager(std::unique_ptr<State> state);
  void shutdown_quietly() noexcept;
  detail::ProxyHandle create(detail::ServedKind kind, std::string arguments);
  std::unique_ptr<State> state_;
};

}  // namespace mp

// Registers a user type and the member functions its ObjectProxy may call
// (see ObjectProxy). At namespace scope, in the type's own namespace, once.
#define MP_MANAGER_TYPE_CONCAT_(a, b) a##b
#define MP_MANAGER_TYPE_NAME_(counter) MP_MANAGER_TYPE_CONCAT_(mp_manager_type_, counter)
#define MP_MANAGER_TYPE(Type, ...)                                                                \
  [[maybe_unused]] inline auto mp_manager_methods(Type*) { return std::make_tuple(__VA_ARGS__); } \
  [[maybe_unused]] static const bool MP_MANAGER_TYPE_NAME_(__COUNTER__) =                         \
      ::mp::detail::register_served_type(::mp::detail::served_type_entry<Type>());
