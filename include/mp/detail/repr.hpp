// mp/detail/repr.hpp: printing mp objects as Python's repr() does. Every
// class with a `std::string repr() const` member (Process, Lock, RLock,
// Semaphore, BoundedSemaphore, Condition, Event, the queues, Connection,
// Object) prints it through this one operator<<: std::cout << process.
//
// std::format: GCC 12 (Debian 12's compiler) has no <format>, so there is no
// std::formatter here yet; std::format("{}", x.repr()) works wherever
// <format> exists.
#pragma once

#include <concepts>
#include <ostream>
#include <string>
#include <string_view>

namespace mp {

namespace detail {
// Appends Python's repr() of a str holding UTF-8 `text` (lib/object.cpp):
// quotes chosen as Python does, escapes for what is not printable.
void append_str_repr(std::string& out, std::string_view text);
}  // namespace detail

template <class T>
  requires requires(const T& object) {
    { object.repr() } -> std::convertible_to<std::string>;
  }
std::ostream& operator<<(std::ostream& out, const T& object) {
  return out << object.repr();
}

}  // namespace mp
