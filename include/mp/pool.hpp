// mp/pool.hpp: Pool, ThreadPool, AsyncResult, IMapIterator (Python:
// multiprocessing.pool).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mp/detail/deadline.hpp"
#include "mp/detail/pool_core.hpp"
#include "mp/detail/pool_job.hpp"
#include "mp/detail/pool_task.hpp"
#include "mp/detail/thread_pool_core.hpp"
#include "mp/errors.hpp"

namespace mp {

struct PoolOptions {
  std::optional<int> processes;          // default cpu_count()
  std::function<void()> initializer;     // runs once in every worker, replacements too
  std::optional<int> maxtasksperchild;   // a worker exits after this many tasks (chunks)
};

// The callbacks of the _async forms, passed as their first argument:
//   pool.apply_async(mp::Callbacks{on_value, on_error}, f, args...)
//   pool.map_async(mp::Callbacks{on_list, nullptr}, f, inputs)
// on_value gets the result (the whole vector for map_async; nothing for a void
// result), on_error gets the task's error. on_error takes either
// `const std::exception&`, and gets the error as it is (a Pool task's
// std::invalid_argument arrives as mp::Remote<std::invalid_argument>, see
// mp::RemoteError), or `const mp::Error&`, and gets an mp:: error as itself
// and a standard exception as a plain mp::Error named by its type
// ("std::invalid_argument: message"): from a Pool that is an
// mp::Remote<mp::Error>, from a ThreadPool an mp::Error that is no
// RemoteError. Either may be nullptr. They run
// in the pool's result thread, as in Python, and must be quick. A callback that
// throws does not hurt the pool: its exception becomes what get() throws.
template <class OnValue = std::nullptr_t, class OnError = std::nullptr_t>
struct Callbacks {
  OnValue callback;
  OnError error_callback;
};
template <class OnValue, class OnError>
Callbacks(OnValue, OnError) -> Callbacks<OnValue, OnError>;

namespace detail {
template <class Derived>
class PoolMethods;

// The input iterator of a range whose owner yields values with
// std::optional<R> next() (nullopt: exhausted).
template <class Owner, class R>
class NextIterator {
 public:
  using value_type = R;
  using difference_type = std::ptrdiff_t;
  NextIterator() = default;
  explicit NextIterator(Owner* owner) : owner_(owner) { ++*this; }
  R& operator*() const { return *current_; }
  NextIterator& operator++() {
    current_ = owner_->next();
    return *this;
  }
  void operator++(int) { ++*this; }
  bool operator==(std::default_sentinel_t) const { return !current_; }

 private:
  Owner* owner_ = nullptr;
  mutable std::optional<R> current_;
};
}  // namespace detail

// AsyncResult (Python: multiprocessing.pool.AsyncResult / ApplyResult / MapResult)
//
// Differs from Python: a task whose worker died fails with mp::WorkerLost
// instead of never becoming ready; a task cancelled by terminate() fails with
// mp::CancelledError instead of hanging get().
// Blocking: get() and wait() block until the result is in, spinning for up
// to 50 us first (the result of a short task is often that close), then
// sleeping; the timed forms use the monotonic clock; get(timeout) throws
// mp::TimeoutError.
template <class R>
class AsyncResult {
  using Stored = std::conditional_t<std::is_void_v<R>, detail::NoValue, R>;

 public:
  explicit AsyncResult(std::shared_ptr<detail::ResultState<Stored>> state)
      : state_(std::move(state)) {}

  R get() {
    wait();
    return take();
  }
  template <class Rep, class Period>
  R get(std::chrono::duration<Rep, Period> timeout) {
    if (!state_->wait_until(detail::Deadline::after(timeout)))
      throw TimeoutError("AsyncResult.get: the result is not ready after the timeout");
    return take();
  }
  void wait() { state_->wait_until(detail::Deadline::never()); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return state_->wait_until(detail::Deadline::after(timeout));
  }
  bool ready() const { return state_->ready(); }
  bool successful() const { return state_->successful(); }

 private:
  template <class Derived>
  friend class detail::PoolMethods;

  R take() {
    if constexpr (std::is_void_v<R>) {
      state_->value();
    } else {
      return state_->value();
    }
  }
  // apply(), map() and starmap() hold the only handle to their result and
  // read it once, so they take the value (a map's vector can be large) or
  // the error instead of copying it.
  R get_once() {
    wait();
    if constexpr (std::is_void_v<R>) {
      state_->take_once();
    } else {
      return state_->take_once();
    }
  }
  std::shared_ptr<detail::ResultState<Stored>> state_;
};

// IMapIterator (Python: multiprocessing.pool.IMapIterator)
//
// A lazy range over the results of imap (input order) or imap_unordered
// (completion order). Differs from Python: the input is consumed lazily from
// the consuming thread, at most a bounded window of chunks ahead of what has
// been taken, so an endless input works and memory stays bounded. A task's
// error is thrown when its position is reached; iteration can go on after it.
// next(timeout) throws mp::TimeoutError. A dead worker fails its chunk with
// mp::WorkerLost. The iterator must not outlive its Pool's join().
// `Core` is the pool's: PoolCore (Pool) or ThreadPoolCore (ThreadPool).
template <class R, class Core = detail::PoolCore>
class IMapIterator {
 public:
  using value_type = R;
  using Task = typename Core::Task;
  // Fills `tasks` with up to `chunks` more chunks; false once the input is done.
  using Feed = std::function<bool(std::vector<Task>& tasks, std::size_t chunks)>;

  IMapIterator(std::shared_ptr<Core> core, bool ordered, Feed feed, const char* method)
      : IMapIterator(std::move(core), std::make_shared<detail::StreamJob<R>>(ordered),
                     std::move(feed), method) {}
  // `stream` is where the chunks' outcomes arrive (a ThreadPool's tasks
  // deliver to it themselves).
  IMapIterator(std::shared_ptr<Core> core, std::shared_ptr<detail::StreamJob<R>> stream, Feed feed,
               const char* method)
      : core_(std::move(core)),
        stream_(std::move(stream)),
        feed_(std::move(feed)),
        window_(4 * static_cast<std::size_t>(core_->processes())),
        method_(method) {
    std::vector<Task> tasks;
    input_done_ = !feed_(tasks, window_);
    submitted_ = tasks.size();
    job_ = core_->submit(stream_, std::move(tasks), input_done_, method);
  }

  std::optional<R> next() { return next_before(detail::Deadline::never()); }
  template <class Rep, class Period>
  std::optional<R> next(std::chrono::duration<Rep, Period> timeout) {
    return next_before(detail::Deadline::after(timeout));
  }

  using iterator = detail::NextIterator<IMapIterator, R>;
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  std::optional<R> next_before(const detail::Deadline& deadline) {
    if (ready_.empty()) {
      if (input_done_ && taken_ == submitted_) return std::nullopt;
      auto outcome = stream_->take(deadline);
      if (!outcome) throw TimeoutError("IMapIterator.next: no result before the timeout");
      ++taken_;
      top_up();
      if (outcome->second) std::rethrow_exception(outcome->second);
      for (auto&& value : outcome->first)  // auto&&: vector<bool> yields proxies
        ready_.push_back(std::move(value));
      if (ready_.empty()) return next_before(deadline);
    }
    R value = std::move(ready_.front());
    ready_.pop_front();
    return value;
  }

  // Keeps `window_` chunks in flight, no more.
  void top_up() {
    if (input_done_ || submitted_ - taken_ >= window_) return;
    std::vector<Task> tasks;
    input_done_ = !feed_(tasks, window_ - (submitted_ - taken_));
    submitted_ += tasks.size();
    core_->add_tasks(job_, std::move(tasks), input_done_, method_);
  }

  std::shared_ptr<Core> core_;
  std::shared_ptr<detail::StreamJob<R>> stream_;
  Feed feed_;
  std::size_t window_;
  const char* method_;
  std::uint64_t job_ = 0;
  bool input_done_ = false;
  std::size_t submitted_ = 0;
  std::size_t taken_ = 0;
  std::deque<R> ready_;
};

namespace detail {

template <class T>
struct is_callbacks : std::false_type {};
template <class A, class B>
struct is_callbacks<Callbacks<A, B>> : std::true_type {};

template <class F>
concept PlainCallable = !is_callbacks<std::decay_t<F>>::value;

template <class R, class A, class B>
CallbackSet<R> to_callback_set(Callbacks<A, B> callbacks) {
  CallbackSet<R> set;
  if constexpr (!std::is_null_pointer_v<A>) set.on_value = std::move(callbacks.callback);
  if constexpr (!std::is_null_pointer_v<B>)
    set.on_error = error_callback_for(std::move(callbacks.error_callback));
  return set;
}

// Encodes a task; a value that cannot be serialized becomes a task that fails
// with that SerializationError in the worker, so the failure lands at the
// task's own position and everything else goes on.
void raise_serialization_error(std::string_view message, std::string& result);
template <class Encode>
PoolTask make_task(std::uint64_t index, Runner runner, Encode&& encode) {
  try {
    return PoolTask{index, runner, encode()};
  } catch (const std::exception& e) {
    std::string record;
    begin_task(record);
    record.append("Pool: cannot serialize the task: ").append(e.what());
    return PoolTask{index, &raise_serialization_error, std::move(record)};
  }
}

template <class Range>
using range_item_t = std::decay_t<std::ranges::range_reference_t<Range>>;

std::size_t default_chunksize(std::size_t items, int processes);

// imap's input, taken lazily: each call makes up to `chunks` more tasks of
// `chunksize` items, with make_task(chunk index, items), and says whether
// input is left. An rvalue range is moved into the feed; an lvalue range is
// referenced.
template <class Task, class Range, class MakeTask>
auto chunk_feed(Range&& inputs, std::size_t chunksize, const char* method, MakeTask make_task) {
  if (chunksize < 1) throw ValueError(std::string(method) + ": chunksize must be 1 or more, not 0");
  using Item = range_item_t<Range>;
  using Held =
      std::conditional_t<std::is_lvalue_reference_v<Range>, Range, std::remove_cvref_t<Range>>;
  struct Input {
    Held range;
    std::ranges::iterator_t<std::remove_reference_t<Held>> cursor;
    std::uint64_t next_chunk = 0;
  };
  auto input = std::make_shared<Input>(Input{std::forward<Range>(inputs), {}, 0});
  input->cursor = std::ranges::begin(input->range);
  return [input, chunksize, make_task = std::move(make_task)](std::vector<Task>& tasks,
                                                              std::size_t chunks) {
    auto end = std::ranges::end(input->range);
    while (chunks-- > 0 && input->cursor != end) {
      std::vector<Item> items;
      for (; items.size() < chunksize && input->cursor != end; ++input->cursor)
        items.emplace_back(*input->cursor);
      tasks.push_back(make_task(input->next_chunk++, std::move(items)));
    }
    return input->cursor != end;
  };
}

// The one task of an apply: f(args...) (Pool.apply_async, ProcessPoolExecutor.submit).
template <class F, class... Args>
PoolTask apply_task(const F& f, Args&&... args) {
  return make_task(0, &run_apply<F, std::decay_t<Args>...>, [&] {
    return encode_apply(f, std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...));
  });
}

// The feed of chunks of f over `inputs` (Pool.imap, ProcessPoolExecutor.map).
template <class F, class Range>
auto map_feed(F f, Range&& inputs, std::size_t chunksize, const char* method) {
  using Item = range_item_t<Range>;
  return chunk_feed<PoolTask>(
      std::forward<Range>(inputs), chunksize, method,
      [f](std::uint64_t chunk, const std::vector<Item>& items) {
        return make_task(chunk, &run_chunk<F, Item, false>,
                         [&] { return encode_chunk<Item>(f, items.begin(), items.size()); });
      });
}

// The names of a pool's methods in its messages.
struct PoolMethodNames {
  const char* apply_async;
  const char* map;
  const char* starmap;
  const char* imap;
  const char* imap_unordered;
};

// The call shapes Pool and ThreadPool share, as Python's ThreadPool shares
// Pool's: each forwards to the pool's own submit_apply, submit_map<Spread>
// and submit_stream, which check the call and submit it.
template <class Derived>
class PoolMethods {
 public:
  template <PlainCallable F, class... Args>
  auto apply(F f, Args&&... args) {
    return apply_async(std::move(f), std::forward<Args>(args)...).get_once();
  }

  template <PlainCallable F, class... Args>
  auto apply_async(F f, Args&&... args) {
    return apply_async(Callbacks<>{}, std::move(f), std::forward<Args>(args)...);
  }

  template <class A, class B, class F, class... Args>
  auto apply_async(Callbacks<A, B> callbacks, F f, Args&&... args) {
    return self().submit_apply(std::move(callbacks), std::move(f), std::forward<Args>(args)...);
  }

  template <PlainCallable F, class Range>
  auto map(F f, Range&& inputs, std::size_t chunksize = 0) {
    return map_async(std::move(f), std::forward<Range>(inputs), chunksize).get_once();
  }
  template <PlainCallable F, class Range>
  auto map_async(F f, Range&& inputs, std::size_t chunksize = 0) {
    return map_async(Callbacks<>{}, std::move(f), std::forward<Range>(inputs), chunksize);
  }
  template <class A, class B, class F, class Range>
  auto map_async(Callbacks<A, B> callbacks, F f, Range&& inputs, std::size_t chunksize = 0) {
    return self().template submit_map<false>(std::move(callbacks), std::move(f),
                                             std::forward<Range>(inputs), chunksize,
                                             Derived::method_names.map);
  }

  template <PlainCallable F, class Range>
  auto starmap(F f, Range&& tuples, std::size_t chunksize = 0) {
    return starmap_async(std::move(f), std::forward<Range>(tuples), chunksize).get_once();
  }
  template <PlainCallable F, class Range>
  auto starmap_async(F f, Range&& tuples, std::size_t chunksize = 0) {
    return starmap_async(Callbacks<>{}, std::move(f), std::forward<Range>(tuples), chunksize);
  }
  template <class A, class B, class F, class Range>
  auto starmap_async(Callbacks<A, B> callbacks, F f, Range&& tuples, std::size_t chunksize = 0) {
    return self().template submit_map<true>(std::move(callbacks), std::move(f),
                                            std::forward<Range>(tuples), chunksize,
                                            Derived::method_names.starmap);
  }

  template <class F, class Range>
  auto imap(F f, Range&& inputs, std::size_t chunksize = 1) {
    return self().submit_stream(std::move(f), std::forward<Range>(inputs), chunksize, true,
                                Derived::method_names.imap);
  }
  template <class F, class Range>
  auto imap_unordered(F f, Range&& inputs, std::size_t chunksize = 1) {
    return self().submit_stream(std::move(f), std::forward<Range>(inputs), chunksize, false,
                                Derived::method_names.imap_unordered);
  }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

// The submitting side of the pools whose tasks travel as messages (Pool on
// forked workers, mpi::Pool on MPI ranks): each call encodes its callable and
// items into PoolTask records and hands them to `Core`, which owns the
// workers (detail::PoolCore, detail::MpiCore). Derived names its methods in
// `method_names`.
template <class Derived, class Core>
class MessagePoolMethods : public PoolMethods<Derived> {
  friend class PoolMethods<Derived>;

 public:
  // The destructor is close() + join(); see each pool for what they wait for.
  ~MessagePoolMethods() {
    if (core_) core_->shutdown();
  }
  MessagePoolMethods(MessagePoolMethods&&) noexcept = default;
  MessagePoolMethods& operator=(MessagePoolMethods&& other) noexcept {
    if (this != &other) {
      if (core_) core_->shutdown();
      core_ = std::move(other.core_);
    }
    return *this;
  }

  void close() { core_->close(); }
  void terminate() { core_->terminate(); }
  void join() { core_->join(); }  // ValueError unless closed or terminated
  int processes() const { return core_->processes(); }

 protected:
  explicit MessagePoolMethods(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  std::shared_ptr<Core> core_;

 private:
  // Each call checks its callable and types first (each check with its own
  // message) and instantiates the rest only if they pass, so that no cereal
  // or std::apply error follows the message.
  template <class A, class B, class F, class... Args>
  auto submit_apply(Callbacks<A, B> callbacks, F f, Args&&... args) {
    if constexpr (check_pool_apply<F, std::decay_t<Args>...>())
      return submit_checked_apply(std::move(callbacks), std::move(f), std::forward<Args>(args)...);
  }
  template <class A, class B, class F, class... Args>
  auto submit_checked_apply(Callbacks<A, B> callbacks, F f, Args&&... args) {
    using R = task_result_t<F, std::decay_t<Args>...>;
    using Stored = std::conditional_t<std::is_void_v<R>, NoValue, R>;
    auto state = std::make_shared<ResultState<Stored>>();
    CallbackSet<R> callback_set = to_callback_set<R>(std::move(callbacks));
    PoolTask task = apply_task(f, std::forward<Args>(args)...);
    const char* method = Derived::method_names.apply_async;
    if constexpr (requires(Core& core, const Deadline& deadline) {
                    core.receive_own(std::uint64_t{}, deadline);
                  }) {
      // Only without callbacks: the waiter that receives its own result
      // runs the job's delivery, and callbacks run in the pool's thread.
      if (!callback_set.on_value && !callback_set.on_error) {
        const std::uint64_t id = core_->submit_awaited(
            std::make_shared<ApplyJob<R>>(state, std::move(callback_set)), std::move(task), method);
        state->set_help([core = std::weak_ptr<Core>(core_), id](const Deadline& deadline) {
          auto alive = core.lock();
          return alive && alive->receive_own(id, deadline);
        });
        return AsyncResult<R>(std::move(state));
      }
    }
    std::vector<PoolTask> tasks;
    tasks.push_back(std::move(task));
    core_->submit(std::make_shared<ApplyJob<R>>(state, std::move(callback_set)), std::move(tasks),
                  true, method);
    return AsyncResult<R>(std::move(state));
  }

  template <bool Spread, class A, class B, class F, class Range>
  auto submit_map(Callbacks<A, B> callbacks, F f, Range&& inputs, std::size_t chunksize,
                  const char* method) {
    if constexpr (check_pool_map<F, range_item_t<Range>, Spread>())
      return submit_checked_map<Spread>(std::move(callbacks), std::move(f),
                                        std::forward<Range>(inputs), chunksize, method);
  }
  template <bool Spread, class A, class B, class F, class Range>
  auto submit_checked_map(Callbacks<A, B> callbacks, F f, Range&& inputs, std::size_t chunksize,
                          const char* method) {
    using Item = range_item_t<Range>;
    using Value = chunk_result_t<F, Item, Spread>;
    // Chunks are encoded straight from a sized random-access range; any other
    // range is copied first, to count it.
    auto submit_all = [&](auto& all) {
      const std::size_t size = std::ranges::size(all);
      if (chunksize == 0) chunksize = default_chunksize(size, core_->processes());
      auto state = std::make_shared<ResultState<std::vector<Value>>>();
      auto job = std::make_shared<MapJob<Value>>(
          state, to_callback_set<std::vector<Value>>(std::move(callbacks)), size,
          chunksize);
      // Chunks go to the workers in batches as they are encoded, so that the
      // workers start on the first ones while the rest are being encoded.
      std::vector<PoolTask> tasks;
      std::size_t batch_bytes = 0;
      std::optional<std::uint64_t> id;
      auto send = [&](bool sealed) {
        if (!id)
          id = core_->submit(job, std::move(tasks), sealed, method);
        else
          core_->add_tasks(*id, std::move(tasks), sealed, method);
        tasks.clear();
        batch_bytes = 0;
      };
      for (std::size_t first = 0, chunk = 0; first < size; first += chunksize, ++chunk) {
        std::size_t count = std::min(size - first, chunksize);
        tasks.push_back(make_task(chunk, &run_chunk<F, Item, Spread>, [&] {
          return encode_chunk<Item>(
              f, std::ranges::begin(all) + static_cast<std::ptrdiff_t>(first), count);
        }));
        batch_bytes += tasks.back().record.size();
        if (batch_bytes >= submit_batch_bytes && first + count < size) send(false);
      }
      send(true);
      return AsyncResult<std::vector<Value>>(std::move(state));
    };
    if constexpr (std::ranges::random_access_range<Range> && std::ranges::sized_range<Range>) {
      return submit_all(inputs);
    } else {
      std::vector<Item> items(std::ranges::begin(inputs), std::ranges::end(inputs));
      return submit_all(items);
    }
  }

  template <class F, class Range>
  auto submit_stream(F f, Range&& inputs, std::size_t chunksize, bool ordered,
                     const char* method) {
    if constexpr (check_pool_map<F, range_item_t<Range>, false>())
      return submit_checked_stream(std::move(f), std::forward<Range>(inputs), chunksize, ordered,
                                   method);
  }
  template <class F, class Range>
  auto submit_checked_stream(F f, Range&& inputs, std::size_t chunksize, bool ordered,
                             const char* method) {
    using Value = chunk_result_t<F, range_item_t<Range>, false>;
    return IMapIterator<Value, Core>(
        core_, ordered,
        map_feed(std::move(f), std::forward<Range>(inputs), chunksize, method), method);
  }

};

}  // namespace detail

// Pool (Python: multiprocessing.pool.Pool)
//
// Workers are forked once, when the Pool is created, and serve many tasks.
// Callables travel by address (functions, captureless lambdas) or through
// cereal (functors with state); a capturing lambda does not compile (see
// detail/pool_task.hpp); arguments and results travel through cereal.
// A task that throws fails at its position with what it threw, re-raised as
// in Python: a standard, mp:: or MP_REMOTE_EXCEPTION type as itself and
// mp::RemoteError, any other as an mp::Error and mp::RemoteError naming it
// (see RemoteError in mp/errors.hpp).
//
// Differs from Python:
//  - a worker that dies mid-task (SIGKILL, segfault, _exit) fails exactly that
//    task with mp::WorkerLost within milliseconds; the tasks it had not begun
//    go to other workers; it is replaced; nothing hangs (Python hangs);
//  - a replacement that cannot be started (fork, memfd or pidfd failing) is
//    tried again every 50 ms while the other workers go on; with no worker
//    left, outstanding and later tasks fail with mp::OSError naming the cause
//    (Python's pool thread dies and the pool hangs);
//  - the destructor is close() + join(): outstanding work finishes (Python's
//    `with` calls terminate(), which silently drops it). Call terminate() to stop now;
//  - terminate() fails outstanding results with mp::CancelledError;
//  - imap consumes its input lazily with a bounded window;
//  - workers ignore SIGINT (the parent owns Ctrl-C) and die with the parent
//    (PR_SET_PDEATHSIG), so a SIGKILLed parent leaves no orphans;
//  - a throwing callback does not kill the pool: its error becomes the result.
// Blocking: apply/map/starmap block until done; join() waits for all submitted
// work. Thread-safe: several threads may submit to one pool.
class Pool : public detail::MessagePoolMethods<Pool, detail::PoolCore> {
 public:
  Pool() : Pool(PoolOptions{}) {}
  explicit Pool(int processes) : Pool(PoolOptions{processes, {}, {}}) {}
  explicit Pool(PoolOptions options);

  // close(), terminate(), join() (ValueError unless closed or terminated),
  // processes(): see MessagePoolMethods.
  std::vector<int> worker_pids() const;  // live workers, for diagnostics

 private:
  friend class detail::PoolMethods<Pool>;
  friend class detail::MessagePoolMethods<Pool, detail::PoolCore>;
  static constexpr detail::PoolMethodNames method_names{
      "Pool.apply_async", "Pool.map", "Pool.starmap", "Pool.imap", "Pool.imap_unordered"};
};

// ThreadPool (Python: multiprocessing.pool.ThreadPool, multiprocessing.dummy.Pool)
//
// Pool's methods, on threads of this process: apply, apply_async, map,
// map_async, starmap, starmap_async, imap, imap_unordered, close, terminate,
// join, with the same AsyncResult, IMapIterator and Callbacks. Nothing is
// serialized, so any callable works (capturing lambdas too), arguments and
// results need no cereal support and may be process-shared objects (a Lock,
// a Queue), and a task's exception reaches get() or the iterator as itself
// (catch std::invalid_argument, not RemoteError).
//
// Differs from Pool: an error callback taking `const std::exception&` gets
// any exception a task throws as it is (std::invalid_argument, not a
// Remote<>); one taking `const mp::Error&` gets an mp:: error as itself and
// any other standard exception as a plain mp::Error "std::invalid_argument:
// message", which is not an mp::RemoteError since the task ran in this
// process (a Remote<E> that a task itself caught from a Pool stays remote).
// Callbacks run in the pool's threads, one at a time, as Python runs them in
// its one result thread, and must not wait for other results of the pool.
// PoolOptions::maxtasksperchild is refused
// (Python's ThreadPool has no such argument: threads are not replaced). An
// initializer that throws makes the constructor throw it.
// Differs from Python: the destructor is close() + join() (as Pool's);
// terminate() cannot stop a running task (no thread can be killed): it
// cancels the tasks not begun (their results fail with mp::CancelledError)
// and waits for the running ones.
// Blocking: as Pool. Thread-safe: several threads may submit to one pool.
// join() from one of the pool's own threads throws mp::ValueError.
class ThreadPool : public detail::PoolMethods<ThreadPool> {
 public:
  ThreadPool() : ThreadPool(PoolOptions{}) {}
  explicit ThreadPool(int processes) : ThreadPool(PoolOptions{processes, {}, {}}) {}
  explicit ThreadPool(PoolOptions options);
  ~ThreadPool();
  ThreadPool(ThreadPool&&) noexcept = default;
  ThreadPool& operator=(ThreadPool&&) noexcept;

  void close();
  void terminate();
  void join();  // ValueError unless closed or terminated

  int processes() const;

 private:
  friend class detail::PoolMethods<ThreadPool>;
  static constexpr detail::PoolMethodNames method_names{
      "ThreadPool.apply_async", "ThreadPool.map", "ThreadPool.starmap", "ThreadPool.imap",
      "ThreadPool.imap_unordered"};
  using Task = detail::ThreadPoolCore::Task;

  static std::exception_ptr cancelled();

  template <class A, class B, class F, class... Args>
  auto submit_apply(Callbacks<A, B> callbacks, F f, Args&&... args) {
    if constexpr (detail::check_apply_call<true, F, std::decay_t<Args>...>()) {
      using R = detail::task_result_t<F, std::decay_t<Args>...>;
      using Stored = std::conditional_t<std::is_void_v<R>, detail::NoValue, R>;
      auto state = std::make_shared<detail::ResultState<Stored>>();
      auto job = std::make_shared<detail::ApplyJob<R>>(
          state, detail::to_callback_set<R>(std::move(callbacks)));
      // Shared, so that the task is copyable whatever the arguments are.
      auto call = std::make_shared<std::tuple<F, std::tuple<std::decay_t<Args>...>>>(
          std::move(f), std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...));
      std::vector<Task> tasks;
      tasks.push_back([job, call, core = core_.get()](bool run) {
        std::optional<Stored> value;
        std::exception_ptr error = run ? nullptr : cancelled();
        if (run) {
          try {
            value.emplace(detail::invoke_stored(std::get<0>(*call), std::get<1>(*call)));
          } catch (...) {
            error = std::current_exception();
          }
        }
        core->deliver([&] {
          if (error)
            job->task_failed(0, std::move(error));
          else
            job->task_returned(std::move(*value));
        });
      });
      core_->submit(job, std::move(tasks), true, method_names.apply_async);
      return AsyncResult<R>(std::move(state));
    }
  }

  // One chunk's task: computes its values and hands them, or its error, to
  // `deliver(chunk, values, error)` (under the pool's outcome lock for a map).
  template <bool Spread, class F, class Items, class Deliver>
  static Task chunk_task(std::shared_ptr<F> f, std::shared_ptr<Items> items, std::size_t first,
                         std::size_t count, std::uint64_t chunk, Deliver deliver) {
    return [f, items, first, count, chunk, deliver](bool run) {
      using Value = detail::chunk_result_t<F, typename Items::value_type, Spread>;
      std::vector<Value> values;
      std::exception_ptr error = run ? nullptr : cancelled();
      if (run) {
        try {
          values.reserve(count);
          for (std::size_t i = first; i < first + count; ++i)
            values.push_back(detail::call_with_item<Spread>(*f, (*items)[i]));
        } catch (...) {
          error = std::current_exception();
        }
      }
      deliver(chunk, std::move(values), std::move(error));
    };
  }

  template <bool Spread, class A, class B, class F, class Range>
  auto submit_map(Callbacks<A, B> callbacks, F f, Range&& inputs, std::size_t chunksize,
                  const char* method) {
    using Item = detail::range_item_t<Range>;
    if constexpr (detail::check_map_call<true, F, Item, Spread>()) {
      using Value = detail::chunk_result_t<F, Item, Spread>;
      // The items are copied, as Python lists them: the caller's range may
      // go away before the tasks run.
      auto items = std::make_shared<std::vector<Item>>(std::ranges::begin(inputs),
                                                       std::ranges::end(inputs));
      const std::size_t size = items->size();
      if (chunksize == 0) chunksize = detail::default_chunksize(size, processes());
      auto state = std::make_shared<detail::ResultState<std::vector<Value>>>();
      auto job = std::make_shared<detail::MapJob<Value>>(
          state,
          detail::to_callback_set<std::vector<Value>>(std::move(callbacks)),
          size, chunksize);
      auto shared_f = std::make_shared<F>(std::move(f));
      auto deliver = [job, core = core_.get()](std::uint64_t chunk, std::vector<Value> values,
                                               std::exception_ptr error) {
        core->deliver([&] {
          if (error)
            job->task_failed(chunk, std::move(error));
          else
            job->chunk_returned(chunk, std::move(values));
        });
      };
      std::vector<Task> tasks;
      for (std::size_t first = 0, chunk = 0; first < size; first += chunksize, ++chunk)
        tasks.push_back(chunk_task<Spread>(shared_f, items, first, std::min(size - first, chunksize),
                                           chunk, deliver));
      core_->submit(job, std::move(tasks), true, method);
      return AsyncResult<std::vector<Value>>(std::move(state));
    }
  }

  template <class F, class Range>
  auto submit_stream(F f, Range&& inputs, std::size_t chunksize, bool ordered,
                     const char* method) {
    using Item = detail::range_item_t<Range>;
    if constexpr (detail::check_map_call<true, F, Item, false>()) {
      using Value = detail::chunk_result_t<F, Item, false>;
      auto stream = std::make_shared<detail::StreamJob<Value>>(ordered);
      auto shared_f = std::make_shared<F>(std::move(f));
      auto deliver = [stream](std::uint64_t chunk, std::vector<Value> values,
                              std::exception_ptr error) {
        stream->arrive(chunk, {std::move(values), std::move(error)});
      };
      auto feed = detail::chunk_feed<Task>(
          std::forward<Range>(inputs), chunksize, method,
          [shared_f, deliver](std::uint64_t chunk, std::vector<Item>&& items) {
            auto held = std::make_shared<std::vector<Item>>(std::move(items));
            return chunk_task<false>(shared_f, held, 0, held->size(), chunk, deliver);
          });
      return IMapIterator<Value, detail::ThreadPoolCore>(core_, std::move(stream), std::move(feed),
                                                         method);
    }
  }

  std::shared_ptr<detail::ThreadPoolCore> core_;
};

}  // namespace mp
