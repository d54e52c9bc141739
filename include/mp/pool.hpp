// mp/pool.hpp: Pool, AsyncResult, IMapIterator (Python: multiprocessing.pool).
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
// result), on_error gets the task's mp::Error. Either may be nullptr. They run
// in the pool's result thread, as in Python, and must be quick. A callback that
// throws does not hurt the pool: its exception becomes what get() throws.
template <class OnValue = std::nullptr_t, class OnError = std::nullptr_t>
struct Callbacks {
  OnValue callback;
  OnError error_callback;
};
template <class OnValue, class OnError>
Callbacks(OnValue, OnError) -> Callbacks<OnValue, OnError>;

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
  friend class Pool;

  R take() {
    if constexpr (std::is_void_v<R>) {
      state_->value();
    } else {
      return state_->value();
    }
  }
  // apply(), map() and starmap() hold the only handle to their result and
  // read it once, so they take the value instead of copying it (a map's
  // vector can be large).
  R get_once() {
    wait();
    if constexpr (std::is_void_v<R>) {
      state_->value();
    } else {
      return std::move(state_->value());
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
template <class R>
class IMapIterator {
 public:
  using value_type = R;
  // Fills `tasks` with up to `chunks` more encoded chunks; false once the input is done.
  using Feed = std::function<bool(std::vector<detail::PoolTask>& tasks, std::size_t chunks)>;

  IMapIterator(std::shared_ptr<detail::PoolCore> core, bool ordered, Feed feed,
               const char* method)
      : core_(std::move(core)),
        stream_(std::make_shared<detail::StreamJob<R>>(ordered)),
        feed_(std::move(feed)),
        window_(4 * static_cast<std::size_t>(core_->processes())),
        method_(method) {
    std::vector<detail::PoolTask> tasks;
    input_done_ = !feed_(tasks, window_);
    submitted_ = tasks.size();
    job_ = core_->submit(stream_, std::move(tasks), input_done_, method);
  }

  std::optional<R> next() { return next_before(detail::Deadline::never()); }
  template <class Rep, class Period>
  std::optional<R> next(std::chrono::duration<Rep, Period> timeout) {
    return next_before(detail::Deadline::after(timeout));
  }

  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(IMapIterator* owner) : owner_(owner) { ++*this; }
    R& operator*() const { return *current_; }
    iterator& operator++() {
      current_ = owner_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !current_; }

   private:
    IMapIterator* owner_ = nullptr;
    mutable std::optional<R> current_;
  };
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
      for (auto& value : outcome->first) ready_.push_back(std::move(value));
      if (ready_.empty()) return next_before(deadline);
    }
    R value = std::move(ready_.front());
    ready_.pop_front();
    return value;
  }

  // Keeps `window_` chunks in flight, no more.
  void top_up() {
    if (input_done_ || submitted_ - taken_ >= window_) return;
    std::vector<detail::PoolTask> tasks;
    input_done_ = !feed_(tasks, window_ - (submitted_ - taken_));
    submitted_ += tasks.size();
    core_->add_tasks(job_, std::move(tasks), input_done_, method_);
  }

  std::shared_ptr<detail::PoolCore> core_;
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
  if constexpr (!std::is_null_pointer_v<B>) set.on_error = std::move(callbacks.error_callback);
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

// What one item of a chunk gives: f(item), or std::apply(f, item) for starmap.
template <class F, class Item, bool Spread>
struct ChunkResult {
  using type = decltype(invoke_stored(std::declval<F&>(), std::declval<std::tuple<Item&>&>()));
};
template <class F, class Item>
struct ChunkResult<F, Item, true> {
  using type = decltype(invoke_stored(std::declval<F&>(), std::declval<Item&>()));
};
template <class F, class Item, bool Spread>
using chunk_result_t = typename ChunkResult<F, Item, Spread>::type;

std::size_t default_chunksize(std::size_t items, int processes);

}  // namespace detail

// Pool (Python: multiprocessing.pool.Pool)
//
// Workers are forked once, when the Pool is created, and serve many tasks.
// Callables travel by address (functions, captureless lambdas) or through
// cereal (functors with state); a capturing lambda does not compile (see
// detail/pool_task.hpp); arguments and results travel through cereal.
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
class Pool {
 public:
  Pool() : Pool(PoolOptions{}) {}
  explicit Pool(int processes) : Pool(PoolOptions{processes, {}, {}}) {}
  explicit Pool(PoolOptions options);
  ~Pool();
  Pool(Pool&&) noexcept = default;
  Pool& operator=(Pool&&) noexcept;

  template <detail::PlainCallable F, class... Args>
  auto apply(F f, Args&&... args) {
    return apply_async(std::move(f), std::forward<Args>(args)...).get_once();
  }

  template <detail::PlainCallable F, class... Args>
  auto apply_async(F f, Args&&... args) {
    return apply_async(Callbacks<>{}, std::move(f), std::forward<Args>(args)...);
  }

  template <class A, class B, class F, class... Args>
  auto apply_async(Callbacks<A, B> callbacks, F f, Args&&... args) {
    if constexpr (detail::check_pool_apply<F, std::decay_t<Args>...>())
      return submit_apply(std::move(callbacks), std::move(f), std::forward<Args>(args)...);
  }

  template <detail::PlainCallable F, class Range>
  auto map(F f, Range&& inputs, std::size_t chunksize = 0) {
    return map_async(std::move(f), std::forward<Range>(inputs), chunksize).get_once();
  }
  template <detail::PlainCallable F, class Range>
  auto map_async(F f, Range&& inputs, std::size_t chunksize = 0) {
    return map_async(Callbacks<>{}, std::move(f), std::forward<Range>(inputs), chunksize);
  }
  template <class A, class B, class F, class Range>
  auto map_async(Callbacks<A, B> callbacks, F f, Range&& inputs, std::size_t chunksize = 0) {
    return submit_map<false>(std::move(callbacks), std::move(f), std::forward<Range>(inputs),
                             chunksize, "Pool.map");
  }

  template <detail::PlainCallable F, class Range>
  auto starmap(F f, Range&& tuples, std::size_t chunksize = 0) {
    return starmap_async(std::move(f), std::forward<Range>(tuples), chunksize).get_once();
  }
  template <detail::PlainCallable F, class Range>
  auto starmap_async(F f, Range&& tuples, std::size_t chunksize = 0) {
    return starmap_async(Callbacks<>{}, std::move(f), std::forward<Range>(tuples), chunksize);
  }
  template <class A, class B, class F, class Range>
  auto starmap_async(Callbacks<A, B> callbacks, F f, Range&& tuples, std::size_t chunksize = 0) {
    return submit_map<true>(std::move(callbacks), std::move(f), std::forward<Range>(tuples),
                            chunksize, "Pool.starmap");
  }

  template <class F, class Range>
  auto imap(F f, Range&& inputs, std::size_t chunksize = 1) {
    return submit_stream(std::move(f), std::forward<Range>(inputs), chunksize, true, "Pool.imap");
  }
  template <class F, class Range>
  auto imap_unordered(F f, Range&& inputs, std::size_t chunksize = 1) {
    return submit_stream(std::move(f), std::forward<Range>(inputs), chunksize, false,
                         "Pool.imap_unordered");
  }

  void close();
  void terminate();
  void join();  // ValueError unless closed or terminated

  int processes() const;
  std::vector<int> worker_pids() const;  // live workers, for diagnostics

 private:
  // Each public method checks its callable and types first (each check with
  // its own message) and instantiates these only if they pass, so that no
  // cereal or std::apply error follows the message.
  template <class A, class B, class F, class... Args>
  auto submit_apply(Callbacks<A, B> callbacks, F f, Args&&... args) {
    using R = detail::task_result_t<F, std::decay_t<Args>...>;
    using Stored = std::conditional_t<std::is_void_v<R>, detail::NoValue, R>;
    auto state = std::make_shared<detail::ResultState<Stored>>();
    auto job = std::make_shared<detail::ApplyJob<R>>(
        state, detail::to_callback_set<R>(std::move(callbacks)));
    std::vector<detail::PoolTask> tasks;
    tasks.push_back(detail::make_task(0, &detail::run_apply<F, std::decay_t<Args>...>, [&] {
      return detail::encode_apply(f, std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...));
    }));
    core_->submit(std::move(job), std::move(tasks), true, "Pool.apply_async");
    return AsyncResult<R>(std::move(state));
  }

  template <bool Spread, class A, class B, class F, class Range>
  auto submit_map(Callbacks<A, B> callbacks, F f, Range&& inputs, std::size_t chunksize,
                  const char* method) {
    if constexpr (detail::check_pool_map<F, detail::range_item_t<Range>, Spread>())
      return submit_checked_map<Spread>(std::move(callbacks), std::move(f),
                                        std::forward<Range>(inputs), chunksize, method);
  }
  template <bool Spread, class A, class B, class F, class Range>
  auto submit_checked_map(Callbacks<A, B> callbacks, F f, Range&& inputs, std::size_t chunksize,
                          const char* method) {
    using Item = detail::range_item_t<Range>;
    using Value = detail::chunk_result_t<F, Item, Spread>;
    // Chunks are encoded straight from a sized random-access range; any other
    // range is copied first, to count it.
    auto submit_all = [&](auto& all) {
      const std::size_t size = std::ranges::size(all);
      if (chunksize == 0) chunksize = detail::default_chunksize(size, processes());
      auto state = std::make_shared<detail::ResultState<std::vector<Value>>>();
      auto job = std::make_shared<detail::MapJob<Value>>(
          state, detail::to_callback_set<std::vector<Value>>(std::move(callbacks)), size,
          chunksize);
      // Chunks go to the workers in batches as they are encoded, so that the
      // workers start on the first ones while the rest are being encoded.
      std::vector<detail::PoolTask> tasks;
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
        tasks.push_back(detail::make_task(chunk, &detail::run_chunk<F, Item, Spread>, [&] {
          return detail::encode_chunk<Item>(
              f, std::ranges::begin(all) + static_cast<std::ptrdiff_t>(first), count);
        }));
        batch_bytes += tasks.back().record.size();
        if (batch_bytes >= detail::submit_batch_bytes && first + count < size) send(false);
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
    if constexpr (detail::check_pool_map<F, detail::range_item_t<Range>, false>())
      return submit_checked_stream(std::move(f), std::forward<Range>(inputs), chunksize, ordered,
                                   method);
  }
  template <class F, class Range>
  auto submit_checked_stream(F f, Range&& inputs, std::size_t chunksize, bool ordered,
                             const char* method) {
    if (chunksize < 1)
      throw ValueError(std::string(method) + ": chunksize must be 1 or more, not 0");
    using Item = detail::range_item_t<Range>;
    using Value = detail::chunk_result_t<F, Item, false>;
    // An rvalue range is moved into the feed; an lvalue range is referenced.
    using Held = std::conditional_t<std::is_lvalue_reference_v<Range>, Range,
                                    std::remove_cvref_t<Range>>;
    struct Input {
      Held range;
      std::ranges::iterator_t<std::remove_reference_t<Held>> cursor;
      std::uint64_t next_chunk = 0;
    };
    auto input = std::make_shared<Input>(Input{std::forward<Range>(inputs), {}, 0});
    input->cursor = std::ranges::begin(input->range);
    auto feed = [input, f, chunksize](std::vector<detail::PoolTask>& tasks, std::size_t chunks) {
      auto end = std::ranges::end(input->range);
      while (chunks-- > 0 && input->cursor != end) {
        std::vector<Item> items;
        for (; items.size() < chunksize && input->cursor != end; ++input->cursor)
          items.emplace_back(*input->cursor);
        tasks.push_back(detail::make_task(
            input->next_chunk++, &detail::run_chunk<F, Item, false>,
            [&] { return detail::encode_chunk<Item>(f, items.begin(), items.size()); }));
      }
      return input->cursor != end;
    };
    return IMapIterator<Value>(core_, ordered, std::move(feed), method);
  }

  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace mp
