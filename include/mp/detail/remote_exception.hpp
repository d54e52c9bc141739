// mp/detail/remote_exception.hpp: an exception caught in one process becomes
// a record of bytes, and the record becomes a Remote<E> in another (see
// RemoteError in mp/errors.hpp). The pool uses it for its tasks and worker
// initializers; anything else that reports another process's exception
// (a Manager call, a future) uses the same three calls:
//   capture_current_exception(out)  inside a catch block, in the thrower;
//   decode_exception_record(bytes)  then rethrowable(record), in the caller.
//
// Record (cereal): the demangled type name, the message (what()), and, for a
// registered type, its own fields as its codec wrote them (an optional
// string: absent when the type travels unregistered). The record
// comes from another process, so decoding trusts nothing: it goes through the
// bounded archive, and a record that does not decode, or whose fields do not
// fit its type, is a SerializationError, never a crash or a claimed-size
// allocation.
//
// Registered types live in a table filled at static initialization (the
// standard and mp:: types when the library is loaded, users' types by
// MP_REMOTE_EXCEPTION at namespace scope) and only read afterwards, so it
// needs no lock: a worker forked while another thread reads it cannot
// inherit a held lock.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <typeinfo>

#include "mp/detail/archive.hpp"
#include "mp/errors.hpp"

namespace mp::detail {

struct RemoteErrorAccess {
  static const std::string& message(const RemoteError& error) noexcept { return error.message_; }
};

// How a registered type crosses: save() writes what rebuilding it needs
// beyond its message and returns false if this value cannot be rebuilt (it
// then travels unregistered); load() rebuilds it from its message and that.
template <class E>
inline constexpr bool has_cereal_fields_v =
    cereal::traits::is_output_serializable<E, OutputArchive>::value &&
    cereal::traits::is_input_serializable<E, InputArchive>::value;

// The types whose constructor takes more than a message; the codecs below
// know what.
template <class E>
inline constexpr bool has_library_codec_v =
    std::is_base_of_v<OSError, E> || std::is_base_of_v<WorkerLost, E> ||
    std::is_same_v<E, BufferTooShort> || std::is_base_of_v<std::system_error, E>;

template <class E>
bool save_exception(OutputArchive& archive, const E& error) {
  if constexpr (std::is_base_of_v<OSError, E>) {
    archive(error.code());
  } else if constexpr (std::is_base_of_v<WorkerLost, E>) {
    archive(error.exitcode());
  } else if constexpr (std::is_same_v<E, BufferTooShort>) {
    archive(error.message());
  } else if constexpr (std::is_base_of_v<std::system_error, E>) {
    const std::error_category& category = error.code().category();
    if (category != std::generic_category() && category != std::system_category()) return false;
    archive(error.code().value(), category == std::generic_category());
  }
  if constexpr (has_cereal_fields_v<E>) archive(error);
  return true;
}

template <class E>
E load_exception(InputArchive& archive, const std::string& message) {
  E error = [&] {
    if constexpr (std::is_base_of_v<OSError, E>) {
      int code = 0;
      archive(code);
      return E(message, code);
    } else if constexpr (std::is_base_of_v<WorkerLost, E>) {
      int exitcode = 0;
      archive(exitcode);
      return E(message, exitcode);
    } else if constexpr (std::is_same_v<E, BufferTooShort>) {
      std::string whole;
      archive(whole);
      return E(message, std::move(whole));
    } else if constexpr (std::is_base_of_v<std::system_error, E>) {
      int value = 0;
      bool generic = false;
      archive(value, generic);
      // Its what() cannot be given back to it; Remote<E>::what() says it.
      return E(std::error_code(value, generic ? std::generic_category() : std::system_category()));
    } else if constexpr (std::is_constructible_v<E, const std::string&>) {
      return E(message);
    } else {
      return E();
    }
  }();
  if constexpr (has_cereal_fields_v<E>) archive(error);
  return error;
}

// One registered type.
struct RemoteExceptionType {
  const std::type_info* type;
  std::string name;  // demangled
  bool (*save)(OutputArchive& archive, const std::exception& error);
  std::exception_ptr (*load)(InputArchive& archive, std::string name, std::string message,
                             std::string what);
};

template <class E>
RemoteExceptionType remote_exception_type() {
  static_assert(std::is_base_of_v<std::exception, E>,
                "MP_REMOTE_EXCEPTION: the type must derive from std::exception");
  static_assert(!std::is_base_of_v<RemoteError, E>,
                "MP_REMOTE_EXCEPTION: register the thrown type E, not mp::Remote<E>");
  static_assert(!std::is_final_v<E>,
                "MP_REMOTE_EXCEPTION: the type must not be final (it is re-raised as mp::Remote<E>, "
                "which derives from it)");
  static_assert(std::is_copy_constructible_v<E>,
                "MP_REMOTE_EXCEPTION: the type must be copyable, as every exception type should be");
  static_assert(std::is_constructible_v<E, const std::string&> ||
                    std::is_default_constructible_v<E> || has_library_codec_v<E>,
                "MP_REMOTE_EXCEPTION: the type must be constructible from its message (a "
                "std::string) or by default; its other state crosses through a cereal serialize() "
                "member");
  return RemoteExceptionType{
      &typeid(E), type_name<E>(),
      [](OutputArchive& archive, const std::exception& error) {
        return save_exception(archive, dynamic_cast<const E&>(error));
      },
      [](InputArchive& archive, std::string name, std::string message, std::string what) {
        E original = load_exception<E>(archive, message);
        return std::make_exception_ptr(
            Remote<E>(std::move(original), std::move(name), std::move(message), std::move(what)));
      }};
}

// Adds a type to the table; a type registered again is left as it is.
// Returns true, for the static variable that MP_REMOTE_EXCEPTION defines.
bool register_remote_exception(RemoteExceptionType type);

// Appends the record of the exception being handled to `out`. Call it inside
// a catch block. A registered type whose fields cannot be saved travels as
// unregistered, with the reason added to its message.
void capture_current_exception(std::string& out);

struct ExceptionRecord {
  std::string type_name;
  std::string message;
  std::optional<std::string> fields;  // absent: rebuild it as unregistered
};

// Decodes a record that makes up all of `bytes`. Throws SerializationError
// naming `object` if it does not.
ExceptionRecord decode_exception_record(std::string_view bytes, std::string_view object);

// The exception a record stands for: a Remote<E> whose what() is the message,
// or, for an unregistered type, a Remote<Error> whose what() is "type:
// message". A non-empty `context` goes in front of "type: message" for every
// type ("Pool: the worker initializer threw "). Throws SerializationError
// naming `object` if the fields do not decode as the type's.
std::exception_ptr rethrowable(const ExceptionRecord& record, std::string_view object,
                               std::string_view context = {});

// For code that takes only mp::Error: a remote error as a plain
// Remote<Error> ("type: message", its type name kept), and an exception
// thrown in this process (a ThreadPool task's) as a plain mp::Error ("type:
// message", named by its own type), which is no RemoteError: nothing crossed
// a process.
Remote<Error> as_plain_remote_error(const RemoteError& error);
Error as_plain_local_error(const std::exception& error);

}  // namespace mp::detail

#define MP_REMOTE_EXCEPTION_CONCAT_(a, b) a##b
#define MP_REMOTE_EXCEPTION_NAME_(counter) MP_REMOTE_EXCEPTION_CONCAT_(mp_remote_exception_, counter)
// Lets a user's exception type keep its type across processes (see
// RemoteError in mp/errors.hpp). At namespace scope, once per type.
#define MP_REMOTE_EXCEPTION(Type)                                        \
  [[maybe_unused]] static const bool MP_REMOTE_EXCEPTION_NAME_(__COUNTER__) = \
      ::mp::detail::register_remote_exception(::mp::detail::remote_exception_type<Type>());
