// mp/detail/pool_job.hpp: what the parent keeps for each submitted job until
// its results are in: the decoded values, the first error, the callbacks, and
// the waiting of AsyncResult and IMapIterator.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "mp/detail/archive.hpp"
#include "mp/detail/deadline.hpp"
#include "mp/detail/futex.hpp"
#include "mp/detail/pool_task.hpp"
#include "mp/detail/remote_exception.hpp"
#include "mp/errors.hpp"

namespace mp::detail {

// A job as the pool's result thread sees it. Both calls happen in that thread,
// never under the pool's lock, so they may run user callbacks.
class Job {
 public:
  virtual ~Job() = default;
  virtual void task_succeeded(std::uint64_t task, std::string_view payload) = 0;
  virtual void task_failed(std::uint64_t task, std::exception_ptr error) = 0;
};

// Callbacks of the _async forms. on_value gets the result (nothing for void
// results, the whole vector for map_async); on_error gets the task's error
// (error_callback_for adapts the user's callback to it).
// Both run in the pool's result thread. If one throws, that exception becomes
// the job's outcome and the pool goes on.
template <class R>
struct ValueCallbackOf {
  using type = std::function<void(const R&)>;
};
template <>
struct ValueCallbackOf<void> {
  using type = std::function<void()>;
};

template <class R>
struct CallbackSet {
  typename ValueCallbackOf<R>::type on_value;
  std::function<void(const std::exception&)> on_error;
};

// A user's error callback takes `const std::exception&` (every error, as its
// own type) or `const mp::Error&`, the form from before remote standard
// exceptions kept their type: that form gets an mp::Error as itself, a remote
// standard exception as the Remote<mp::Error> it used to be, and a ThreadPool
// task's own standard exception as a plain mp::Error (not remote).
template <class OnError>
std::function<void(const std::exception&)> error_callback_for(OnError on_error) {
  if constexpr (std::is_invocable_v<OnError&, const std::exception&>) {
    return on_error;
  } else {
    static_assert(std::is_invocable_v<OnError&, const mp::Error&>,
                  "mp::Callbacks: the error_callback must take const std::exception& or const "
                  "mp::Error&");
    if constexpr (std::is_constructible_v<bool, const OnError&>) {
      if (!static_cast<bool>(on_error)) return {};  // an empty std::function
    }
    return [on_error = std::move(on_error)](const std::exception& e) mutable {
      if (auto* error = dynamic_cast<const mp::Error*>(&e))
        on_error(*error);
      else if (auto* remote = dynamic_cast<const RemoteError*>(&e))
        on_error(as_plain_remote_error(*remote));
      else
        on_error(as_plain_local_error(e));
    };
  }
}

// Calls the callback that fits the outcome; returns the outcome to store (the
// callback's own exception, if it threw).
template <class R, class Stored>
std::exception_ptr run_callbacks(const CallbackSet<R>& callbacks, const Stored* value,
                                 std::exception_ptr error) {
  try {
    if (error) {
      if (callbacks.on_error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          callbacks.on_error(e);
        }
      }
    } else if (callbacks.on_value) {
      if constexpr (std::is_void_v<R>) {
        callbacks.on_value();
      } else {
        callbacks.on_value(*value);
      }
    }
  } catch (...) {
    return std::current_exception();
  }
  return error;
}

// A ThreadPool's results never travel, so they need no cereal support; a
// process pool refuses such a result type at compile time
// (check_pool_result). So only jobs whose type cereal reads ever get a
// payload: the other branch is a broken invariant, not an input error.
template <class Stored>
inline constexpr bool decodable = is_cereal_serializable_v<Stored>;
[[noreturn]] inline void payload_without_codec() { std::abort(); }

// One task's result, decoded; or why it does not decode.
template <class Stored>
std::pair<std::optional<Stored>, std::exception_ptr> decode_result(std::string_view payload,
                                                                   const char* context) {
  if constexpr (decodable<Stored>) {
    try {
      return {loads<Stored>(payload, context), nullptr};
    } catch (...) {
      return {std::nullopt, std::current_exception()};
    }
  } else {
    payload_without_codec();
  }
}

// The shared state behind an AsyncResult: filled once by the result thread.
template <class Stored>
class ResultState {
 public:
  void set(std::optional<Stored> value, std::exception_ptr error) {
    {
      std::lock_guard lock(mutex_);
      value_ = std::move(value);
      error_ = std::move(error);
      ready_ = true;
      ready_flag_.store(true, std::memory_order_release);
    }
    ready_changed_.notify_all();
  }

  // What wait_until tries while it spins when its caller names no help of
  // its own: set at most once, by the submitting thread before it hands the
  // state on (mpi::Pool's apply receives its own result with it). It is
  // given the waiter's deadline, which it must not overrun.
  void set_help(std::function<bool(const Deadline&)> help) { help_ = std::move(help); }

  bool wait_until(const Deadline& deadline) {
    return wait_until(deadline, [this, &deadline] { return help_ && help_(deadline); });
  }
  // `help` is tried now and then while the waiter spins; it returns whether
  // it did anything (a future's result() delivers its own result with it).
  // `stop_helping` runs once the spin is over, before the waiter sleeps.
  template <class Help, class StopHelping = void (*)()>
  bool wait_until(const Deadline& deadline, Help help, StopHelping stop_helping = [] {}) {
    const bool spun = spin_until_ready(deadline, help);
    stop_helping();
    if (spun) return true;
    std::unique_lock lock(mutex_);
    if (deadline.infinite()) {
      ready_changed_.wait(lock, [&] { return ready_; });
      return true;
    }
    return ready_changed_.wait_until(lock, deadline.time_point(), [&] { return ready_; });
  }

  bool ready() const {
    std::lock_guard lock(mutex_);
    return ready_;
  }

  bool successful() const {
    std::lock_guard lock(mutex_);
    if (!ready_) throw ValueError("AsyncResult.successful: the result is not ready");
    return !error_;
  }

  // Only once ready: the error, null if it succeeded.
  std::exception_ptr error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

  // Only once ready.
  Stored& value() {
    std::lock_guard lock(mutex_);
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }

  // Only once ready, by the one reader of a result read once (apply, map,
  // starmap): moves the value out, or the error, so that the reader's
  // thread holds the exception's last reference. A pool thread drops its
  // job, and with it this state, after publishing; if the state still held
  // the exception, that thread could free it after the reader caught it and
  // read what(), ordered only by libstdc++'s reference count, whose atomics
  // are inside the uninstrumented libstdc++.so, so ThreadSanitizer reports
  // a race on the exception's text.
  Stored take_once() {
    std::exception_ptr error;
    {
      std::lock_guard lock(mutex_);
      if (!error_) return std::move(*value_);
      error = std::move(error_);
    }
    std::rethrow_exception(error);
  }

 private:
  // A waiter spins for up to result_spin before it sleeps: the result of a
  // short task is often that close, and a sleeping thread pays a wake-up
  // (tens of microseconds on an idle VM CPU) on top of the worker's and the
  // result thread's (measured: sequential apply_async().get() about 2.5x
  // faster). Spins at most once per result.
  static constexpr std::chrono::microseconds result_spin{50};
  template <class Help>
  bool spin_until_ready(const Deadline& deadline, Help& help) const {
    const auto until = std::min(std::chrono::steady_clock::now() + result_spin, deadline.time_point());
    do {
      for (int turn = 0; turn < 64; ++turn) {
        if (ready_flag_.load(std::memory_order_acquire)) return true;
        cpu_relax();
      }
      if (help() && ready_flag_.load(std::memory_order_acquire)) return true;
    } while (std::chrono::steady_clock::now() < until);
    return ready_flag_.load(std::memory_order_acquire);
  }

  mutable std::mutex mutex_;
  std::condition_variable ready_changed_;
  std::atomic<bool> ready_flag_{false};  // ready_, for the spin, which takes no lock
  bool ready_ = false;
  std::optional<Stored> value_;
  std::exception_ptr error_;
  std::function<bool(const Deadline&)> help_;
};

// apply_async: one task, one value.
template <class R>
class ApplyJob final : public Job {
 public:
  using Stored = std::conditional_t<std::is_void_v<R>, NoValue, R>;

  ApplyJob(std::shared_ptr<ResultState<Stored>> state, CallbackSet<R> callbacks)
      : state_(std::move(state)), callbacks_(std::move(callbacks)) {}

  void task_succeeded(std::uint64_t, std::string_view payload) override {
    auto [value, error] = decode_result<Stored>(payload, "Pool: task result");
    if (error)
      task_failed(0, std::move(error));
    else
      task_returned(std::move(*value));
  }

  void task_failed(std::uint64_t, std::exception_ptr error) override {
    state_->set(std::nullopt, run_callbacks<R, Stored>(callbacks_, nullptr, std::move(error)));
  }

  // The value itself, from a task that ran in this process (ThreadPool).
  void task_returned(Stored value) {
    std::exception_ptr callback_error = run_callbacks(callbacks_, &value, nullptr);
    state_->set(std::move(value), callback_error);
  }

 private:
  std::shared_ptr<ResultState<Stored>> state_;
  CallbackSet<R> callbacks_;
};

// map_async/starmap_async: chunks of one vector; ready when every chunk is in,
// failed with the error at the lowest failing position (Python waits for all
// chunks too, and does not fail fast).
template <class R>
class MapJob final : public Job {
 public:
  using Stored = std::conditional_t<std::is_void_v<R>, NoValue, R>;
  using Vector = std::vector<Stored>;

  MapJob(std::shared_ptr<ResultState<Vector>> state,
         CallbackSet<std::vector<Stored>> callbacks, std::size_t items,
         std::size_t chunksize)
      : state_(std::move(state)),
        callbacks_(std::move(callbacks)),
        items_(items),
        chunksize_(chunksize),
        chunks_left_(chunksize == 0 ? 0 : (items + chunksize - 1) / chunksize) {
    if (chunks_left_ == 0) finish();
  }

  void task_succeeded(std::uint64_t chunk, std::string_view payload) override {
    if constexpr (!decodable<Stored>) payload_without_codec();
    try {
      // Made here, in the result thread, when the first chunk is in: the
      // submitting thread is meanwhile busy encoding and sending chunks.
      if (values_.size() != items_) values_.resize(items_);
      std::size_t first = chunk * chunksize_;
      if (first > values_.size())
        throw SerializationError("Pool.map: a result for a chunk that does not exist");
      if constexpr (decodable<Stored>)
        load_chunk_results<Stored>(payload, values_.begin() + static_cast<std::ptrdiff_t>(first),
                                   values_.size() - first, "Pool.map: chunk result");
    } catch (...) {
      task_failed(chunk, std::current_exception());
      return;
    }
    if (--chunks_left_ == 0) finish();
  }

  // A chunk's values themselves, from tasks that ran in this process
  // (ThreadPool); `values` has the chunk's size.
  void chunk_returned(std::uint64_t chunk, Vector values) {
    if (values_.size() != items_) values_.resize(items_);
    std::move(values.begin(), values.end(),
              values_.begin() + static_cast<std::ptrdiff_t>(chunk * chunksize_));
    if (--chunks_left_ == 0) finish();
  }

  void task_failed(std::uint64_t chunk, std::exception_ptr error) override {
    // Moved, here and in finish(): the job, which a pool thread may drop
    // after the reader caught the error, keeps no reference to it (see
    // ResultState::take_once).
    if (!error_ || chunk < error_chunk_) {
      error_ = std::move(error);
      error_chunk_ = chunk;
    }
    if (--chunks_left_ == 0) finish();
  }

 private:
  void finish() {
    if (error_) {
      state_->set(std::nullopt, run_callbacks<Vector, Vector>(callbacks_, nullptr, std::move(error_)));
    } else {
      std::exception_ptr callback_error = run_callbacks(callbacks_, &values_, nullptr);
      state_->set(std::move(values_), callback_error);
    }
  }

  std::shared_ptr<ResultState<Vector>> state_;
  CallbackSet<std::vector<Stored>> callbacks_;
  Vector values_;
  std::size_t items_;
  std::size_t chunksize_;
  std::size_t chunks_left_;
  std::exception_ptr error_;
  std::uint64_t error_chunk_ = 0;
};

// imap/imap_unordered: chunk outcomes handed to one consumer, in chunk order
// or in arrival order.
template <class Stored>
class StreamJob final : public Job {
 public:
  using Outcome = std::pair<std::vector<Stored>, std::exception_ptr>;

  explicit StreamJob(bool ordered) : ordered_(ordered) {}

  void task_succeeded(std::uint64_t chunk, std::string_view payload) override {
    Outcome outcome;
    if constexpr (decodable<Stored>) {
      try {
        outcome.first = loads<std::vector<Stored>>(payload, "Pool.imap: chunk result");
      } catch (...) {
        outcome.second = std::current_exception();
      }
    } else {
      payload_without_codec();
    }
    arrive(chunk, std::move(outcome));
  }

  void task_failed(std::uint64_t chunk, std::exception_ptr error) override {
    arrive(chunk, Outcome{{}, std::move(error)});
  }

  // A chunk's outcome, as it is (ThreadPool); from any thread.
  void arrive(std::uint64_t chunk, Outcome outcome) {
    {
      std::lock_guard lock(mutex_);
      arrived_.emplace(chunk, std::move(outcome));
    }
    arrival_.notify_all();
  }

  // The next chunk's outcome, or nullopt at the deadline.
  std::optional<Outcome> take(const Deadline& deadline) {
    std::unique_lock lock(mutex_);
    auto available = [&] {
      return ordered_ ? arrived_.count(next_chunk_) > 0 : !arrived_.empty();
    };
    if (deadline.infinite()) {
      arrival_.wait(lock, available);
    } else if (!arrival_.wait_until(lock, deadline.time_point(), available)) {
      return std::nullopt;
    }
    auto it = ordered_ ? arrived_.find(next_chunk_) : arrived_.begin();
    Outcome outcome = std::move(it->second);
    arrived_.erase(it);
    ++next_chunk_;
    return outcome;
  }

 private:
  const bool ordered_;
  std::mutex mutex_;
  std::condition_variable arrival_;
  std::map<std::uint64_t, Outcome> arrived_;
  std::uint64_t next_chunk_ = 0;
};

}  // namespace mp::detail
