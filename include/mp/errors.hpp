// mp/errors.hpp: the exception hierarchy (Python: multiprocessing's exceptions,
// queue.Empty/Full, EOFError, ValueError, threading.BrokenBarrierError).
//
// Every error the library raises derives from mp::Error, itself a
// std::runtime_error. what() always names the object and what went wrong, e.g.
// "Queue.put: queue is closed". Python's AssertionError misuse cases map to
// ProcessError or ValueError; Python's OSError cases map to mp::OSError, which
// keeps the errno.
#pragma once

#include <stdexcept>
#include <string>

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

// A pool task threw. type_name() is the demangled type of what was thrown
// ("std::runtime_error"); what() contains its message.
class RemoteError : public Error {
 public:
  RemoteError(const std::string& what, std::string type_name)
      : Error(what), type_name_(std::move(type_name)) {}
  const std::string& type_name() const noexcept { return type_name_; }

 private:
  std::string type_name_;
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

// concurrent.futures.CancelledError: the task never ran because its pool was
// terminated (Python leaves such results unready forever).
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
