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

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mp/detail/archive.hpp"

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

template <class F>
inline constexpr bool is_serializable_callable_v =
    cereal::traits::is_output_serializable<F, OutputArchive>::value &&
    cereal::traits::is_input_serializable<F, InputArchive>::value &&
    std::is_default_constructible_v<F>;

template <class F>
void check_pool_callable() {
  static_assert(is_function_pointer_v<F> || is_stateless_callable_v<F> ||
                    is_serializable_callable_v<F>,
                "mp::Pool: this callable cannot run on the pool's workers. Workers are forked "
                "when the Pool is created, so a capturing lambda's captures would be stale or "
                "dangling there. Use a function, a captureless lambda, or a functor whose state "
                "has a cereal serialize() member, and pass the data as task arguments instead; "
                "or use mp::Process, whose child inherits everything at start().");
}

// The callable's part of a payload.
template <class F>
void save_callable(OutputArchive& archive, const F& f) {
  if constexpr (is_function_pointer_v<F>) {
    archive(reinterpret_cast<std::uintptr_t>(f));
  } else if constexpr (!is_stateless_callable_v<F>) {
    archive(f);
  }
}

template <class F>
F load_callable(InputArchive& archive) {
  if constexpr (is_function_pointer_v<F>) {
    std::uintptr_t address = 0;
    archive(address);
    return reinterpret_cast<F>(address);
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

template <class F, class... Args>
std::string encode_apply(const F& f, const std::tuple<Args...>& args) {
  std::string payload;
  OutputArchive archive(payload);
  save_callable(archive, f);
  archive(args);
  return payload;
}

// A chunk of map/starmap: payload = callable, vector<Item>; result =
// vector<R>. `Spread` says whether an item is a tuple of arguments (starmap).
template <class F, class Item, bool Spread>
void run_chunk(std::string_view payload, std::string& result) {
  InputArchive archive(payload);
  F f = load_callable<F>(archive);
  auto items = load_payload_part<std::vector<Item>>(archive);
  auto call = [&f](Item& item) {
    if constexpr (Spread) {
      return invoke_stored(f, item);
    } else {
      std::tuple<Item&> one(item);
      return invoke_stored(f, one);
    }
  };
  using Value = decltype(call(items.front()));
  std::vector<Value> values;
  values.reserve(items.size());
  for (Item& item : items) values.push_back(call(item));
  save_result(result, values);
}

template <class F, class Item>
std::string encode_chunk(const F& f, const std::vector<Item>& items) {
  std::string payload;
  OutputArchive archive(payload);
  save_callable(archive, f);
  archive(items);
  return payload;
}

}  // namespace mp::detail
