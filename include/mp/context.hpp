// mp/context.hpp: get_context, set_start_method, get_start_method,
// get_all_start_methods (Python: multiprocessing.context).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "mp/connection.hpp"
#include "mp/pool.hpp"
#include "mp/process.hpp"
#include "mp/queues.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/synchronize.hpp"

namespace mp {

namespace detail {
template <class... A>
inline constexpr bool is_single_size_v = false;
template <class A>
inline constexpr bool is_single_size_v<A> = std::is_integral_v<std::remove_cvref_t<A>>;
}  // namespace detail

// Context (Python: multiprocessing.context.ForkContext, what
// get_context("fork") returns)
//
// The factories of the multiprocessing module under their Python names, so
// that a port of `ctx = mp.get_context("fork"); q = ctx.Queue(); p =
// ctx.Process(target=f, args=(q,))` reads `auto ctx = mp::get_context("fork");
// auto q = ctx.Queue<int>(); auto p = ctx.Process(f, q);`. Each forwards its
// arguments to the constructor of the mp class of the same name, so it takes
// exactly what that constructor takes and blocks or throws as it does.
//
// Differs from Python: "fork" is the only start method (see get_context), so
// there is one context, and objects of any context mix freely.
class Context {
 public:
  std::string get_start_method() const { return "fork"; }

  template <class... A>
  mp::Process Process(A&&... a) const {
    return mp::Process(std::forward<A>(a)...);
  }
  template <class... A>
  mp::Pool Pool(A&&... a) const {
    return mp::Pool(std::forward<A>(a)...);
  }
  template <class T>
  mp::Queue<T> Queue(std::size_t maxsize = 0) const {
    return mp::Queue<T>(maxsize);
  }
  template <class T>
  mp::JoinableQueue<T> JoinableQueue(std::size_t maxsize = 0) const {
    return mp::JoinableQueue<T>(maxsize);
  }
  template <class T>
  mp::SimpleQueue<T> SimpleQueue() const {
    return {};
  }
  std::pair<Connection, Connection> Pipe(bool duplex = true) const { return mp::Pipe(duplex); }
  mp::Lock Lock() const { return {}; }
  mp::RLock RLock() const { return {}; }
  template <class... A>
  mp::Semaphore Semaphore(A&&... a) const {
    return mp::Semaphore(std::forward<A>(a)...);
  }
  template <class... A>
  mp::BoundedSemaphore BoundedSemaphore(A&&... a) const {
    return mp::BoundedSemaphore(std::forward<A>(a)...);
  }
  template <class... A>
  mp::Condition Condition(A&&... a) const {
    return mp::Condition(std::forward<A>(a)...);
  }
  mp::Event Event() const { return {}; }
  template <class... A>
  mp::Barrier Barrier(A&&... a) const {
    return mp::Barrier(std::forward<A>(a)...);
  }
  template <class T, class... A>
  mp::Value<T> Value(A&&... a) const {
    return mp::Value<T>(std::forward<A>(a)...);
  }
  template <class T, class... A>
  mp::RawValue<T> RawValue(A&&... a) const {
    return mp::RawValue<T>(std::forward<A>(a)...);
  }
  // A size is converted here, at the caller's, so that an int size does not
  // warn inside this header under -Wsign-conversion.
  template <class T>
  mp::Array<T> Array(std::size_t size) const {
    return mp::Array<T>(size);
  }
  template <class T>
  mp::Array<T> Array(std::initializer_list<T> init) const {
    return mp::Array<T>(init);
  }
  template <class T, class... A>
    requires(!detail::is_single_size_v<A...>)
  mp::Array<T> Array(A&&... a) const {
    return mp::Array<T>(std::forward<A>(a)...);
  }
  template <class T>
  mp::RawArray<T> RawArray(std::size_t size) const {
    return mp::RawArray<T>(size);
  }
  template <class T>
  mp::RawArray<T> RawArray(std::initializer_list<T> init) const {
    return mp::RawArray<T>(init);
  }
  template <class T, class... A>
    requires(!detail::is_single_size_v<A...>)
  mp::RawArray<T> RawArray(A&&... a) const {
    return mp::RawArray<T>(std::forward<A>(a)...);
  }

  ProcessInfo current_process() const { return mp::current_process(); }
  std::optional<ProcessInfo> parent_process() const { return mp::parent_process(); }
  std::vector<int> active_children() const { return mp::active_children(); }
  int cpu_count() const { return mp::cpu_count(); }
};

// get_context (Python: multiprocessing.get_context). No method, or "fork",
// gives the fork context. "spawn" and "forkserver" throw mp::ValueError
// saying why mp has no such method and what to use; any other name throws
// mp::ValueError as Python does ("cannot find context for ...").
Context get_context(std::optional<std::string_view> method = std::nullopt);

// set_start_method (Python: multiprocessing.set_start_method). Only "fork"
// is accepted (others: as get_context). As in Python, a second call without
// `force` throws, here mp::ProcessError (Python: RuntimeError, "context has
// already been set"); a refused method leaves the setting as it was.
void set_start_method(std::string_view method, bool force = false);

// get_start_method (Python: multiprocessing.get_start_method): "fork", or
// nullopt when allow_none and set_start_method was never called (as Python).
std::optional<std::string> get_start_method(bool allow_none);
std::string get_start_method();

// get_all_start_methods (Python: multiprocessing.get_all_start_methods): the
// methods mp can use: {"fork"} (Python on Linux: fork, spawn, forkserver).
std::vector<std::string> get_all_start_methods();

}  // namespace mp
