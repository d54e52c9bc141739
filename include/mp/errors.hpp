// mp/errors.hpp: the exception hierarchy (Python: multiprocessing's exceptions,
// queue.Empty/Full, EOFError, ValueError, threading.BrokenBarrierError).
//
// Every error the library raises derives from mp::Error, itself a
// std::runtime_error. what() always names the object and what went wrong, e.g.
// "Queue.put: queue is closed". The one exception to the rule: an exception
// re-raised from another process is what was thrown there, a standard
// exception too, and an mp::RemoteError (see below). Python's AssertionError misuse cases map to
// ProcessError or ValueError; Python's OSError cases map to mp::OSError, which
// keeps the errno.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace mp {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// multiprocessing.ProcessError: misuse of a process (start twice, join before start).
class ProcessError : public Error {
 public:
  using Error::Error;
};

// multiprocessing.TimeoutError (not the builtin one): AsyncResult::get(timeout), imap next(timeout).
class TimeoutError : public ProcessError {
 public:
  using ProcessError::ProcessError;
};

// multiprocessing.BufferTooShort: recv_bytes_into's buffer was too small. The
// message has been consumed; message() returns all of it.
class BufferTooShort : public ProcessError {
 public:
  BufferTooShort(const std::string& what, std::string message)
      : ProcessError(what), message_(std::move(message)) {}
  const std::string& message() const noexcept { return message_; }

 private:
  std::string message_;
};

// multiprocessing.AuthenticationError: the authkey handshake failed.
class AuthenticationError : public ProcessError {
 public:
  using ProcessError::ProcessError;
};

// queue.Empty: get(timeout) or get_nowait() found nothing.
class Empty : public Error {
 public:
  using Error::Error;
};

// queue.Full: put(timeout) or put_nowait() found no room.
class Full : public Error {
 public:
  using Error::Error;
};

// EOFError: recv() when the peer has closed and nothing is left.
class EOFError : public Error {
 public:
  using Error::Error;
};

// threading.BrokenBarrierError.
class BrokenBarrierError : public Error {
 public:
  using Error::Error;
};

// ValueError: released too often, task_done() too often, use after close(), bad arguments.
class ValueError : public Error {
 public:
  using Error::Error;
};

// TypeError, IndexError, KeyError, OverflowError: misuse of an mp::Object
// (as<T>() of another type, an index or key that is not there, an int that
// does not fit the requested C++ type), as Python raises them.
class TypeError : public Error {
 public:
  using Error::Error;
};

class IndexError : public Error {
 public:
  using Error::Error;
};

class KeyError : public Error {
 public:
  using Error::Error;
};

class OverflowError : public Error {
 public:
  using Error::Error;
};

namespace detail {
struct RemoteErrorAccess;
}

// An exception thrown in another process (a pool task, its worker's
// initializer) and re-raised here: Python re-raises the worker's exception
// object itself. RemoteError is what every such exception has in common:
// type_name() is the demangled type that was thrown ("std::invalid_argument"),
// what() its message.
//
// It is a mixin, not an exception on its own: what the caller catches is a
// Remote<E>, both the thrown type E and RemoteError, for E among
//  - the standard exceptions of <stdexcept> (std::logic_error,
//    std::invalid_argument, std::domain_error, std::length_error,
//    std::out_of_range, std::runtime_error, std::range_error,
//    std::overflow_error, std::underflow_error), std::bad_alloc and
//    std::system_error (its code() too, for the generic and system
//    categories);
//  - every mp:: error above and below (mp::Error itself included), with its
//    own fields (OSError::code(), WorkerLost::exitcode(),
//    BufferTooShort::message());
//  - a user's type registered with MP_REMOTE_EXCEPTION(Type) at namespace
//    scope (mp/detail/remote_exception.hpp, included by mp/mp.hpp). The type
//    derives from std::exception, is not final, is copyable, and is
//    constructible from its message (a std::string) or else by default; its
//    other state crosses if it has a cereal serialize() member, which must
//    serialize its own fields only, not the std::exception base:
//      struct QuotaExceeded : std::runtime_error {
//        using std::runtime_error::runtime_error;
//        int limit = 0;
//        template <class Archive> void serialize(Archive& archive) { archive(limit); }
//      };
//      MP_REMOTE_EXCEPTION(QuotaExceeded)
// So `catch (const std::invalid_argument&)`, `catch (const mp::RemoteError&)`
// and `catch (const std::exception&)` all catch a task's std::invalid_argument,
// and what() is its message, unchanged. Any other type (or something that is
// not a std::exception) arrives as Remote<mp::Error>: an mp::Error and a
// RemoteError whose what() is "type: message".
// RemoteError has no std::exception base of its own, so that a Remote<E> has
// exactly one and `catch (const std::exception&)` is never ambiguous; hence a
// remote standard exception is not an mp::Error (it is the standard type).
class RemoteError {
 public:
  virtual ~RemoteError() = default;
  const std::string& type_name() const noexcept { return type_name_; }
  virtual const char* what() const noexcept { return what_.c_str(); }

 protected:
  RemoteError(std::string type_name, std::string message, std::string what)
      : type_name_(std::move(type_name)), message_(std::move(message)), what_(std::move(what)) {}
  RemoteError(const RemoteError&) = default;
  RemoteError& operator=(const RemoteError&) = default;

 private:
  friend struct detail::RemoteErrorAccess;
  std::string type_name_;
  std::string message_;  // what() in the other process, to send on unchanged
  std::string what_;
};

// The exception E thrown in another process, re-raised here (see RemoteError).
template <class E>
class Remote final : public E, public RemoteError {
 public:
  Remote(E original, std::string type_name, std::string message, std::string what)
      : E(std::move(original)),
        RemoteError(std::move(type_name), std::move(message), std::move(what)) {}
  // Both bases' what(): the remote message, even where E cannot be rebuilt
  // with it (std::bad_alloc, std::system_error).
  const char* what() const noexcept override { return RemoteError::what(); }
};

// The worker running a task died (Python's Pool hangs here). exitcode() is the
// worker's exit code, negative for death by signal.
class WorkerLost : public Error {
 public:
  WorkerLost(const std::string& what, int exitcode) : Error(what), exitcode_(exitcode) {}
  int exitcode() const noexcept { return exitcode_; }

 private:
  int exitcode_;
};

// concurrent.futures.process.BrokenProcessPool: the worker running a
// ProcessPoolExecutor task died, or the executor's pool is broken (its
// initializer failed, no worker can be started; exitcode() is then 1).
// Unlike Python's, an executor whose worker died replaces it and stays usable.
class BrokenProcessPool : public WorkerLost {
 public:
  using WorkerLost::WorkerLost;
};

// concurrent.futures.CancelledError: the task never ran because its pool was
// terminated (Python leaves such results unready forever), or its future was
// cancelled.
class CancelledError : public Error {
 public:
  using Error::Error;
};

// pickle.PicklingError: a value cannot be serialized, or a message does not
// deserialize as the requested type.
class SerializationError : public Error {
 public:
  using Error::Error;
};

// OSError: a system call failed. code() is the errno value.
class OSError : public Error {
 public:
  OSError(const std::string& what, int code) : Error(what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

// FileExistsError and FileNotFoundError (SharedMemory create/attach).
class FileExistsError : public OSError {
 public:
  using OSError::OSError;
};

class FileNotFoundError : public OSError {
 public:
  using OSError::OSError;
};

}  // namespace mp
