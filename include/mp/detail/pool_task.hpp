// mp/detail/pool_task.hpp: how a callable and its arguments reach a pool
// worker, and how its result comes back.
//
// Workers are forked from this very program, so code addresses are the same on
// both sides: a task names the function that runs it by address (a "runner",
// one template instantiation per callable and argument types). Only data
// travels, through cereal:
//  - a function pointer travels as its address;
//  - an empty callable (captureless lambda, stateless functor) is default-
//    constructed in the worker;
//  - a functor with state travels through its cereal serialize/save/load;
//  - anything else (a capturing lambda) does not compile: its captures would
//    dangle or be stale in a worker that was forked before it existed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mp/detail/archive.hpp"
#include "mp/detail/pool_messages.hpp"

namespace mp::detail {

// Runs one task in a worker: decodes `payload`, calls the callable, appends the
// encoded result to `result`. Throws whatever the callable throws.
using Runner = void (*)(std::string_view payload, std::string& result);

template <class F>
inline constexpr bool is_function_pointer_v =
    std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>;

template <class F>
inline constexpr bool is_stateless_callable_v =
    std::is_empty_v<F> && std::is_default_constructible_v<F>;

template <class T>
inline constexpr bool is_cereal_serializable_v =
    cereal::traits::is_output_serializable<T, OutputArchive>::value &&
    cereal::traits::is_input_serializable<T, InputArchive>::value;

template <class F>
inline constexpr bool is_serializable_callable_v =
    is_cereal_serializable_v<F> && std::is_default_constructible_v<F>;

template <class F>
constexpr bool check_pool_callable() {
  constexpr bool travels =
      is_function_pointer_v<F> || is_stateless_callable_v<F> || is_serializable_callable_v<F>;
  static_assert(travels,
                "mp::Pool: this callable cannot run on the pool's workers. Workers are forked "
                "when the Pool is created, so a capturing lambda's captures would be stale or "
                "dangling there. Use a function, a captureless lambda, or a functor whose state "
                "has a cereal serialize() member, and pass the data as task arguments instead; "
                "or use mp::Process, whose child inherits everything at start(), or "
                "mp::ThreadPool, whose threads share this process.");
  return travels;
}

}  // namespace mp::detail

namespace mp {
// Found by argument-dependent lookup only, so only for a type of namespace mp
// or a template instantiated with one. Declared, never defined or called.
template <class T>
std::true_type declared_in_namespace_mp(const T&);
}  // namespace mp

// Outside namespace mp, so that ordinary lookup cannot find the probe.
namespace mp_adl_probe {
template <class T, class = void>
struct in_namespace_mp : std::false_type {};
template <class T>
struct in_namespace_mp<T, std::void_t<decltype(declared_in_namespace_mp(std::declval<const T&>()))>>
    : std::true_type {};
}  // namespace mp_adl_probe

namespace mp::detail {

// A process-shared handle (Lock, Queue, Value, Connection, SharedMemory...):
// an mp class that cereal cannot write, not an exception. Containers, tuples
// and other templates holding one count too.
template <class T>
inline constexpr bool is_shared_handle_v =
    std::is_class_v<T> && mp_adl_probe::in_namespace_mp<T>::value &&
    !is_cereal_serializable_v<T> && !std::is_base_of_v<std::exception, T>;

template <class T>
struct holds_shared_handle : std::bool_constant<is_shared_handle_v<T>> {};
template <class T>
struct holds_shared_handle<T*> : holds_shared_handle<std::remove_cv_t<T>> {};
template <class T, std::size_t N>
struct holds_shared_handle<std::array<T, N>> : holds_shared_handle<std::remove_cv_t<T>> {};
template <template <class...> class Template, class... Params>
struct holds_shared_handle<Template<Params...>>
    : std::bool_constant<is_shared_handle_v<Template<Params...>> ||
                         (holds_shared_handle<std::remove_cv_t<Params>>::value || ...)> {};

// A container's allocator, comparator and hash are about its elements only:
// std::allocator<mp::Object> brings namespace mp into lookup, yet is no handle.
template <class T>
struct holds_shared_handle<std::allocator<T>> : holds_shared_handle<std::remove_cv_t<T>> {};
template <class T>
struct holds_shared_handle<std::less<T>> : holds_shared_handle<std::remove_cv_t<T>> {};
template <class T>
struct holds_shared_handle<std::hash<T>> : holds_shared_handle<std::remove_cv_t<T>> {};
template <class T>
struct holds_shared_handle<std::equal_to<T>> : holds_shared_handle<std::remove_cv_t<T>> {};

template <class... Args>
constexpr bool check_no_shared_handles() {
  constexpr bool none = !(holds_shared_handle<Args>::value || ...);
  static_assert(none,
                "mp::Pool: a task argument is (or holds) a process-shared mp object (Lock, RLock, "
                "Semaphore, Condition, Event, Queue, Value, Array, Connection, Listener, "
                "SharedMemory...), which cannot be copied into a message to a worker (Python: "
                "\"Lock objects should only be shared between processes through inheritance\"). "
                "Create it before the Pool: the workers are forked then and inherit it. Let the "
                "task reach it through a global or static variable (or a container of them, "
                "passing the index as the argument), or set it up in PoolOptions::initializer; "
                "Pool callables capture nothing, so a lambda cannot carry it. mp::ThreadPool "
                "takes such arguments as they are.");
  return none;
}

// Whether `f` can be called with the elements of a tuple-like Item, as
// starmap calls it.
template <class F, class Item, std::size_t... I>
constexpr bool applicable(std::index_sequence<I...>) {
  return std::is_invocable_v<F&, std::tuple_element_t<I, Item>&...>;
}
template <class F, class Item, class = void>
struct is_applicable : std::false_type {};
template <class F, class Item>
struct is_applicable<F, Item, std::void_t<decltype(std::tuple_size<Item>::value)>>
    : std::bool_constant<applicable<F, Item>(std::make_index_sequence<std::tuple_size_v<Item>>())> {};

// Checked before anything else is instantiated, so that a wrong call reads
// as one message first, not as errors from inside std::apply. `Threads`
// chooses the pool the message names (ThreadPool, or Pool); the text after
// the method's name is the same for both.
#define MP_DETAIL_APPLY_CALL_MESSAGE                                                    \
  ".apply: the function cannot be called with these arguments: apply(f, args...) calls " \
  "f(args...) with each argument as an lvalue of its decayed type; check their number "   \
  "and types"
#define MP_DETAIL_STARMAP_CALL_MESSAGE                                                     \
  ".starmap: the function cannot be called with the elements of an item: starmap(f, "     \
  "tuples) calls f(a, b, ...) for each item (a, b, ...), which must be a std::tuple, "      \
  "std::pair or std::array matching f's parameters"
#define MP_DETAIL_MAP_CALL_MESSAGE                                                          \
  ".map: the function cannot be called with one item of the range: map(f, items) calls "    \
  "f(item) with each item as an lvalue; for a function of several arguments use starmap "   \
  "with a range of tuples"
template <bool Threads, class F, class... Args>
constexpr bool check_apply_call() {
  constexpr bool callable = std::is_invocable_v<F&, Args&...>;
  if constexpr (Threads)
    static_assert(callable, "mp::ThreadPool" MP_DETAIL_APPLY_CALL_MESSAGE);
  else
    static_assert(callable, "mp::Pool" MP_DETAIL_APPLY_CALL_MESSAGE);
  return callable;
}
template <bool Threads, class F, class Item, bool Spread>
constexpr bool check_map_call() {
  constexpr bool callable = [] {
    if constexpr (Spread)
      return is_applicable<F, Item>::value;
    else
      return std::is_invocable_v<F&, Item&>;
  }();
  if constexpr (Spread && Threads)
    static_assert(callable, "mp::ThreadPool" MP_DETAIL_STARMAP_CALL_MESSAGE);
  else if constexpr (Spread)
    static_assert(callable, "mp::Pool" MP_DETAIL_STARMAP_CALL_MESSAGE);
  else if constexpr (Threads)
    static_assert(callable, "mp::ThreadPool" MP_DETAIL_MAP_CALL_MESSAGE);
  else
    static_assert(callable, "mp::Pool" MP_DETAIL_MAP_CALL_MESSAGE);
  return callable;
}
#undef MP_DETAIL_APPLY_CALL_MESSAGE
#undef MP_DETAIL_STARMAP_CALL_MESSAGE
#undef MP_DETAIL_MAP_CALL_MESSAGE

// Everything a Pool call requires of its callable and argument types, each
// with its own message. A Pool method instantiates its body only if they
// hold, so that no cereal or std::apply error follows the message.
template <class F, class... Args>
constexpr bool check_pool_apply() {
  return check_pool_callable<F>() && check_no_shared_handles<Args...>() &&
         check_apply_call<false, F, Args...>();
}
template <class F, class Item, bool Spread>
constexpr bool check_pool_map() {
  return check_pool_callable<F>() && check_no_shared_handles<Item>() &&
         check_map_call<false, F, Item, Spread>();
}

// The callable's part of a payload.
template <class F>
void save_callable(OutputArchive& archive, const F& f) {
  if constexpr (is_function_pointer_v<F>) {
    archive(encode_code_address(reinterpret_cast<std::uintptr_t>(f)));
  } else if constexpr (!is_stateless_callable_v<F>) {
    archive(f);
  }
}

template <class F>
F load_callable(InputArchive& archive) {
  if constexpr (is_function_pointer_v<F>) {
    std::uint64_t code = 0;
    archive(code);
    return reinterpret_cast<F>(decode_code_address(code));
  } else {
    F f{};
    if constexpr (!is_stateless_callable_v<F>) archive(f);
    return f;
  }
}

// A void result travels as this placeholder. It costs one byte on the wire,
// because the bounded archive refuses containers that claim more elements than
// they have bytes.
struct NoValue {
  template <class Archive>
  void serialize(Archive& archive) {
    std::uint8_t nothing = 0;
    archive(nothing);
  }
  bool operator==(const NoValue&) const = default;
};

template <class F, class... Args>
using task_result_t = std::invoke_result_t<F&, Args&...>;

template <class F, class... Args>
using stored_result_t =
    std::conditional_t<std::is_void_v<task_result_t<F, Args...>>, NoValue, task_result_t<F, Args...>>;

template <class F, class Tuple>
auto invoke_stored(F& f, Tuple& args) {
  if constexpr (std::is_void_v<decltype(std::apply(f, args))>) {
    std::apply(f, args);
    return NoValue{};
  } else {
    return std::apply(f, args);
  }
}

// One item of a map (f(item)) or of a starmap (f(elements of item...)).
template <bool Spread, class F, class Item>
auto call_with_item(F& f, Item& item) {
  if constexpr (Spread) {
    return invoke_stored(f, item);
  } else {
    std::tuple<Item&> one(item);
    return invoke_stored(f, one);
  }
}

// What one item of a chunk gives.
template <class F, class Item, bool Spread>
using chunk_result_t =
    decltype(call_with_item<Spread>(std::declval<F&>(), std::declval<Item&>()));

template <class Value>
void save_result(std::string& out, const Value& value) {
  dump_into(out, value, "Pool worker: result");
}

template <class Value>
Value load_payload_part(InputArchive& archive) {
  Value value{};
  archive(value);
  return value;
}

// apply: payload = callable, tuple<Args...>; result = R.
template <class F, class... Args>
void run_apply(std::string_view payload, std::string& result) {
  InputArchive archive(payload);
  F f = load_callable<F>(archive);
  auto args = load_payload_part<std::tuple<Args...>>(archive);
  save_result(result, invoke_stored(f, args));
}

// apply's task record.
template <class F, class... Args>
std::string encode_apply(const F& f, const std::tuple<Args...>& args) {
  std::string record;
  begin_task(record);
  OutputArchive archive(record);
  save_callable(archive, f);
  archive(args);
  return record;
}

// Items of a chunk and its results travel exactly as cereal writes a
// std::vector of them (a count, then the elements), but are encoded and
// decoded one by one, straight from the caller's range and straight into the
// map's result vector, without an intermediate vector on either side. Numbers
// (not bool, whose bytes must be checked) are raw bytes in that format, so
// they are copied as a block.
template <class T>
inline constexpr bool is_raw_v = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

// The bytes after what `archive` has read of `payload`.
inline std::string_view rest_of(std::string_view payload, const InputArchive& archive) {
  return payload.substr(payload.size() - archive.remaining());
}

// A chunk of map/starmap: payload = callable, vector<Item>; result =
// vector<R>. `Spread` says whether an item is a tuple of arguments (starmap).
template <class F, class Item, bool Spread>
void run_chunk(std::string_view payload, std::string& result) {
  InputArchive archive(payload);
  F f = load_callable<F>(archive);
  const std::size_t count = load_element_count<std::vector<Item>>(archive);
  auto call = [&f](Item& item) { return call_with_item<Spread>(f, item); };
  using Value = decltype(call(std::declval<Item&>()));
  const char* raw_items = nullptr;
  if constexpr (is_raw_v<Item>) {
    std::string_view rest = rest_of(payload, archive);
    if (rest.size() != count * sizeof(Item))
      throw SerializationError("Pool worker: a chunk of " + std::to_string(count) + " " +
                               type_name<Item>() + " has " + std::to_string(rest.size()) +
                               " bytes");
    raw_items = rest.data();
  }
  auto next_item = [&](std::size_t i) {
    Item item{};
    if constexpr (is_raw_v<Item>)
      std::memcpy(&item, raw_items + i * sizeof(Item), sizeof(Item));
    else
      archive(item);
    return item;
  };
  if constexpr (is_raw_v<Value>) {
    cereal::size_type size = count;
    const std::size_t start = result.size();
    result.resize(start + sizeof size + count * sizeof(Value));
    char* out = result.data() + start;
    std::memcpy(out, &size, sizeof size);
    out += sizeof size;
    for (std::size_t i = 0; i < count; ++i, out += sizeof(Value)) {
      Item item = next_item(i);
      Value value = call(item);
      std::memcpy(out, &value, sizeof(Value));
    }
  } else {
    OutputArchive out(result);
    out(cereal::make_size_tag(static_cast<cereal::size_type>(count)));
    for (std::size_t i = 0; i < count; ++i) {
      Item item = next_item(i);
      auto value = call(item);  // what the user's code throws goes out as it is
      try {
        out(value);
      } catch (const std::exception& e) {
        throw SerializationError("Pool worker: result: cannot serialize " +
                                 type_name<std::vector<Value>>() + ": " + e.what());
      }
    }
  }
}

// A chunk's task record: `count` items of `first`, an iterator of a range of Item.
template <class Item, class F, class It>
std::string encode_chunk(const F& f, It first, std::size_t count) {
  std::string record;
  begin_task(record);
  OutputArchive archive(record);
  save_callable(archive, f);
  archive(cereal::make_size_tag(static_cast<cereal::size_type>(count)));
  if constexpr (is_raw_v<Item> && std::contiguous_iterator<It> &&
                std::is_same_v<std::iter_value_t<It>, Item>) {
    record.append(reinterpret_cast<const char*>(std::to_address(first)), count * sizeof(Item));
  } else {
    for (std::size_t i = 0; i < count; ++i, ++first) {
      const Item& item = *first;
      archive(item);
    }
  }
  return record;
}

// Decodes a chunk's results (a vector<Value> as cereal writes it) into `out`,
// which has room for `room` values. Throws SerializationError naming `object`
// if they are malformed or too many.
template <class Value, class Out>
void load_chunk_results(std::string_view payload, Out out, std::size_t room,
                        std::string_view object) {
  try {
    InputArchive archive(payload);
    const std::size_t count = load_element_count<std::vector<Value>>(archive);
    if (count > room)
      throw SerializationError(std::to_string(count) + " results for " + std::to_string(room) +
                               " items");
    if constexpr (is_raw_v<Value>) {
      std::string_view rest = rest_of(payload, archive);
      if (rest.size() != count * sizeof(Value))
        throw SerializationError(std::to_string(rest.size()) + " bytes for " +
                                 std::to_string(count) + " values");
      std::memcpy(std::to_address(out), rest.data(), rest.size());
    } else {
      for (std::size_t i = 0; i < count; ++i, ++out) {
        Value value{};
        archive(value);
        *out = std::move(value);
      }
      if (archive.remaining() != 0)
        throw SerializationError(std::to_string(archive.remaining()) + " bytes left over");
    }
  } catch (const std::exception& e) {
    throw SerializationError(std::string(object) + ": cannot deserialize " +
                             type_name<std::vector<Value>>() + ": " + e.what());
  }
}

}  // namespace mp::detail
