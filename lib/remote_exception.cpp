// lib/remote_exception.cpp: the table of exception types that keep their type
// across processes, and the records that carry an exception from the process
// that caught it to the one that re-raises it (detail/remote_exception.hpp).
//
// Invariants: the table is written only during static initialization (the
// library's types when the library is loaded, users' types by
// MP_REMOTE_EXCEPTION), so reading it needs no lock; capturing never loses
// an exception (a type that cannot be described travels by name and
// message); decoding never trusts the record (bounded archive, all bytes
// accounted for) and fails only with SerializationError.
#include "mp/detail/remote_exception.hpp"

#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <typeindex>
#include <unordered_map>

namespace mp::detail {
namespace {

struct Table {
  std::unordered_map<std::type_index, RemoteExceptionType> by_type;
  std::unordered_map<std::string, const RemoteExceptionType*> by_name;

  void add(RemoteExceptionType type) {
    auto [it, added] = by_type.emplace(*type.type, std::move(type));
    if (added) by_name.emplace(it->second.name, &it->second);
  }

  template <class... E>
  void add_all() {
    (add(remote_exception_type<E>()), ...);
  }

  Table() {
    add_all<std::logic_error, std::invalid_argument, std::domain_error, std::length_error,
            std::out_of_range, std::runtime_error, std::range_error, std::overflow_error,
            std::underflow_error, std::bad_alloc, std::system_error>();
    add_all<Error, ProcessError, TimeoutError, BufferTooShort, AuthenticationError, Empty, Full,
            EOFError, BrokenBarrierError, ValueError, TypeError, IndexError, KeyError,
            OverflowError, WorkerLost, BrokenProcessPool, CancelledError,
            SerializationError, OSError, FileExistsError, FileNotFoundError>();
  }

  const RemoteExceptionType* find(const std::type_info& type) const {
    auto it = by_type.find(type);
    return it == by_type.end() ? nullptr : &it->second;
  }
  const RemoteExceptionType* find(const std::string& name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
  }
};

Table& table() {
  static Table instance;
  return instance;
}

// Built when the library is loaded, so that no process, least of all a
// worker forked while another thread held glibc's exit-handler lock, builds
// it (and registers its destructor under that lock) on its first failure.
[[maybe_unused]] const Table& built_at_start = table();

// The record of `error`, known to the table as `type` (or not at all).
void append_record(std::string& out, const std::string& name, std::string message,
                   const RemoteExceptionType* type, const std::exception* error) {
  std::optional<std::string> fields;
  if (type && error) {
    try {
      OutputArchive archive(fields.emplace());
      if (!type->save(archive, *error)) fields.reset();
    } catch (const std::exception& e) {
      fields.reset();
      message += " (its fields could not be serialized: " + std::string(e.what()) + ")";
    }
  }
  OutputArchive archive(out);
  archive(name, message, fields);
}

// An exception rebuilt as an mp::Error, whatever its type was.
Remote<Error> plain(std::string name, std::string message, std::string what) {
  return Remote<Error>(Error(what), std::move(name), std::move(message), std::move(what));
}

std::string type_and_message(std::string_view context, const std::string& name,
                             const std::string& message) {
  return std::string(context) + name + ": " + message;
}

}  // namespace

bool register_remote_exception(RemoteExceptionType type) {
  table().add(std::move(type));
  return true;
}

void capture_current_exception(std::string& out) {
  const Table& types = table();
  try {
    throw;
  } catch (const RemoteError& remote) {
    // Re-raised again from here (a pool inside a pool's task): it goes on as
    // the type it was first thrown as, not as mp::Remote<E>.
    append_record(out, remote.type_name(), RemoteErrorAccess::message(remote),
                  types.find(remote.type_name()), dynamic_cast<const std::exception*>(&remote));
  } catch (const std::exception& e) {
    const RemoteExceptionType* type = types.find(typeid(e));
    append_record(out, type ? type->name : demangle(typeid(e).name()), e.what(), type, &e);
  } catch (...) {
    append_record(out, "unknown exception", "something that is not a std::exception was thrown",
                  nullptr, nullptr);
  }
}

ExceptionRecord decode_exception_record(std::string_view bytes, std::string_view object) {
  ExceptionRecord record;
  try {
    InputArchive archive(bytes);
    archive(record.type_name, record.message, record.fields);
    if (archive.remaining() != 0)
      throw SerializationError(std::to_string(archive.remaining()) + " bytes left over");
  } catch (const std::exception& e) {
    throw SerializationError(std::string(object) + ": the exception record does not decode: " +
                             e.what());
  }
  return record;
}

std::exception_ptr rethrowable(const ExceptionRecord& record, std::string_view object,
                               std::string_view context) {
  const RemoteExceptionType* type = table().find(record.type_name);
  // A type this program does not know (a peer of another build) cannot be
  // rebuilt, nor can one sent without its fields: the name and message can.
  if (!type || !record.fields)
    return std::make_exception_ptr(plain(record.type_name, record.message,
                                         type_and_message(context, record.type_name, record.message)));
  std::string what =
      context.empty() ? record.message : type_and_message(context, record.type_name, record.message);
  try {
    InputArchive archive(*record.fields);
    std::exception_ptr error = type->load(archive, record.type_name, record.message, what);
    if (archive.remaining() != 0)
      throw SerializationError(std::to_string(archive.remaining()) + " bytes left over");
    return error;
  } catch (const std::exception& e) {
    throw SerializationError(std::string(object) + ": the fields of a remote " + record.type_name +
                             " do not decode: " + e.what());
  }
}

Remote<Error> as_plain_remote_error(const RemoteError& error) {
  std::string message = RemoteErrorAccess::message(error);
  // A what() that is more than the message already names the type (and any
  // context, such as the pool's initializer); keep it.
  std::string what = message != error.what() ? std::string(error.what())
                                             : type_and_message({}, error.type_name(), message);
  return plain(error.type_name(), std::move(message), std::move(what));
}

Error as_plain_local_error(const std::exception& error) {
  return Error(type_and_message({}, demangle(typeid(error).name()), error.what()));
}

}  // namespace mp::detail
