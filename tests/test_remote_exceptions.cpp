// Exceptions across processes (API.md "Exceptions across processes"): a pool
// task's standard, mp:: or registered exception is re-raised in the caller as
// both its own type and mp::RemoteError; others stay RemoteError; a failure
// record that does not decode is a SerializationError. Every task runs in a
// real forked worker.
#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <exception>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <vector>

#include "mp/detail/remote_exception.hpp"
#include "mp/pool.hpp"

using namespace std::chrono_literals;

namespace test_remote {

// A user type with fields, registered.
struct QuotaExceeded : std::runtime_error {
  using std::runtime_error::runtime_error;
  int limit = 0;
  std::vector<std::string> users;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(limit, users);
  }
};

// A user type built only by default, deriving from an mp:: error, registered.
struct Exhausted : mp::ValueError {
  Exhausted() : mp::ValueError("exhausted") {}
};

// A user type that is not registered.
struct Unregistered : std::logic_error {
  using std::logic_error::logic_error;
};

// A registered type whose fields are written as one thing and read as
// another, so that its record does not decode on the receiving side.
struct Lopsided : std::runtime_error {
  using std::runtime_error::runtime_error;
  template <class Archive>
  void save(Archive& archive) const {
    archive(std::uint8_t{7});
  }
  template <class Archive>
  void load(Archive& archive) {
    std::uint64_t wide = 0;
    archive(wide);
  }
};

// A registered type whose fields refuse to be saved: it travels unregistered.
struct Unsaveable : std::runtime_error {
  using std::runtime_error::runtime_error;
  template <class Archive>
  void save(Archive&) const {
    throw std::runtime_error("Unsaveable refuses");
  }
  template <class Archive>
  void load(Archive&) {}
};

// An error category that is neither the generic nor the system one.
struct PrinterCategory : std::error_category {
  const char* name() const noexcept override { return "printer"; }
  std::string message(int) const override { return "out of paper"; }
};
const PrinterCategory printer_category;

}  // namespace test_remote

MP_REMOTE_EXCEPTION(test_remote::Unsaveable)
MP_REMOTE_EXCEPTION(test_remote::QuotaExceeded)
MP_REMOTE_EXCEPTION(test_remote::Exhausted)
MP_REMOTE_EXCEPTION(test_remote::Lopsided)
MP_REMOTE_EXCEPTION(test_remote::QuotaExceeded)  // again: harmless

namespace {

using namespace test_remote;

constexpr auto patience = 60s;  // the bound on every wait: a bug fails, never hangs

// One kind of failure per number; the message says which.
enum Kind : int {
  logic_error, invalid_argument, domain_error, length_error, out_of_range, runtime_error,
  range_error, overflow_error, underflow_error, bad_alloc, system_error, mp_error, value_error,
  timeout_error, os_error, file_not_found, worker_lost, buffer_too_short, quota_exceeded,
  exhausted, unregistered, not_an_exception, nested_remote, nested_unregistered, lopsided,
  unsaveable, other_category, kinds
};

std::string message_of(int kind) { return "failure number " + std::to_string(kind); }

int fail(int kind) {
  const std::string message = message_of(kind);
  switch (kind) {
    case logic_error: throw std::logic_error(message);
    case invalid_argument: throw std::invalid_argument(message);
    case domain_error: throw std::domain_error(message);
    case length_error: throw std::length_error(message);
    case out_of_range: throw std::out_of_range(message);
    case runtime_error: throw std::runtime_error(message);
    case range_error: throw std::range_error(message);
    case overflow_error: throw std::overflow_error(message);
    case underflow_error: throw std::underflow_error(message);
    case bad_alloc: throw std::bad_alloc();
    case system_error: throw std::system_error(std::make_error_code(std::errc::timed_out), message);
    case mp_error: throw mp::Error(message);
    case value_error: throw mp::ValueError(message);
    case timeout_error: throw mp::TimeoutError(message);
    case os_error: throw mp::OSError(message, EAGAIN);
    case file_not_found: throw mp::FileNotFoundError(message, ENOENT);
    case worker_lost: throw mp::WorkerLost(message, -9);
    case buffer_too_short: throw mp::BufferTooShort(message, "the whole message");
    case quota_exceeded: {
      QuotaExceeded error(message);
      error.limit = 42;
      error.users = {"ann", "bob"};
      throw error;
    }
    case exhausted: throw Exhausted();
    case unregistered: throw Unregistered(message);
    case not_an_exception: throw kind;
    // An exception re-raised from another process and thrown on from here
    // keeps its first type and message.
    case nested_remote:
      throw mp::Remote<std::out_of_range>(std::out_of_range("inner"), "std::out_of_range", message,
                                          message);
    case nested_unregistered:
      throw mp::Remote<mp::Error>(mp::Error("Elsewhere: " + message), "Elsewhere", message,
                                  "Elsewhere: " + message);
    case lopsided: throw Lopsided(message);
    case unsaveable: throw Unsaveable(message);
    case other_category: throw std::system_error(3, printer_category, message);
  }
  return kind;
}

// A Remote<E> has one std::exception base, so catching it as std::exception
// is not ambiguous (an ambiguous base is simply not caught).
static_assert(std::is_convertible_v<mp::Remote<std::invalid_argument>*, std::exception*>);
static_assert(std::is_convertible_v<mp::Remote<mp::ValueError>*, std::exception*>);
static_assert(std::is_convertible_v<mp::Remote<mp::ValueError>*, mp::Error*>);
static_assert(!std::is_convertible_v<mp::RemoteError*, std::exception*>);

// The exception pool.apply(fail, kind) throws.
std::exception_ptr failure_of(mp::Pool& pool, int kind) {
  try {
    pool.apply(fail, kind);
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

// Checks that `error` is caught as E, as mp::RemoteError and as
// std::exception, each with `what` and `type_name`.
template <class E>
void check_arrives_as(const std::exception_ptr& error, const std::string& type_name,
                      const std::string& what) {
  CAPTURE(type_name);
  REQUIRE(error);
  try {
    std::rethrow_exception(error);
  } catch (const E& e) {
    CHECK(std::string(e.what()) == what);
  } catch (...) {
    FAIL("not caught as " << type_name);
  }
  try {
    std::rethrow_exception(error);
  } catch (const mp::RemoteError& e) {
    CHECK(e.type_name() == type_name);
    CHECK(std::string(e.what()) == what);
  } catch (...) {
    FAIL("not caught as mp::RemoteError");
  }
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()) == what);
  } catch (...) {
    FAIL("not caught as std::exception");
  }
}

template <class E>
E caught_as(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const E& e) {
    return e;
  } catch (...) {
  }
  FAIL("not caught as the type asked for");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("each standard exception arrives as itself and as RemoteError, what() unchanged") {
  mp::Pool pool(2);
  check_arrives_as<std::logic_error>(failure_of(pool, logic_error), "std::logic_error",
                                     message_of(logic_error));
  check_arrives_as<std::invalid_argument>(failure_of(pool, invalid_argument),
                                          "std::invalid_argument", message_of(invalid_argument));
  check_arrives_as<std::domain_error>(failure_of(pool, domain_error), "std::domain_error",
                                      message_of(domain_error));
  check_arrives_as<std::length_error>(failure_of(pool, length_error), "std::length_error",
                                      message_of(length_error));
  check_arrives_as<std::out_of_range>(failure_of(pool, out_of_range), "std::out_of_range",
                                      message_of(out_of_range));
  check_arrives_as<std::runtime_error>(failure_of(pool, runtime_error), "std::runtime_error",
                                       message_of(runtime_error));
  check_arrives_as<std::range_error>(failure_of(pool, range_error), "std::range_error",
                                     message_of(range_error));
  check_arrives_as<std::overflow_error>(failure_of(pool, overflow_error), "std::overflow_error",
                                        message_of(overflow_error));
  check_arrives_as<std::underflow_error>(failure_of(pool, underflow_error),
                                         "std::underflow_error", message_of(underflow_error));
  check_arrives_as<std::bad_alloc>(failure_of(pool, bad_alloc), "std::bad_alloc",
                                   std::bad_alloc().what());
  std::exception_ptr system = failure_of(pool, system_error);
  check_arrives_as<std::system_error>(system, "std::system_error",
                                      std::system_error(std::make_error_code(std::errc::timed_out),
                                                        message_of(system_error))
                                          .what());
  CHECK(caught_as<std::system_error>(system).code() == std::errc::timed_out);
  // The standard hierarchy holds: an invalid_argument is a logic_error.
  check_arrives_as<std::logic_error>(failure_of(pool, invalid_argument), "std::invalid_argument",
                                     message_of(invalid_argument));
  // A standard exception is not an mp::Error: it is the standard type.
  CHECK_THROWS_AS(std::rethrow_exception(failure_of(pool, invalid_argument)),
                  std::invalid_argument);
}

TEST_CASE("mp:: errors arrive as themselves and as RemoteError, with their fields") {
  mp::Pool pool(2);
  check_arrives_as<mp::Error>(failure_of(pool, mp_error), "mp::Error", message_of(mp_error));
  check_arrives_as<mp::ValueError>(failure_of(pool, value_error), "mp::ValueError",
                                   message_of(value_error));
  check_arrives_as<mp::TimeoutError>(failure_of(pool, timeout_error), "mp::TimeoutError",
                                     message_of(timeout_error));
  check_arrives_as<mp::ProcessError>(failure_of(pool, timeout_error), "mp::TimeoutError",
                                     message_of(timeout_error));
  std::exception_ptr os = failure_of(pool, os_error);
  check_arrives_as<mp::OSError>(os, "mp::OSError", message_of(os_error));
  CHECK(caught_as<mp::OSError>(os).code() == EAGAIN);
  std::exception_ptr missing = failure_of(pool, file_not_found);
  check_arrives_as<mp::FileNotFoundError>(missing, "mp::FileNotFoundError",
                                          message_of(file_not_found));
  CHECK(caught_as<mp::OSError>(missing).code() == ENOENT);
  std::exception_ptr lost = failure_of(pool, worker_lost);
  check_arrives_as<mp::WorkerLost>(lost, "mp::WorkerLost", message_of(worker_lost));
  CHECK(caught_as<mp::WorkerLost>(lost).exitcode() == -9);
  std::exception_ptr short_buffer = failure_of(pool, buffer_too_short);
  check_arrives_as<mp::BufferTooShort>(short_buffer, "mp::BufferTooShort",
                                       message_of(buffer_too_short));
  CHECK(caught_as<mp::BufferTooShort>(short_buffer).message() == "the whole message");
}

TEST_CASE("MP_REMOTE_EXCEPTION: a user type arrives as itself with its fields") {
  mp::Pool pool(2);
  std::exception_ptr quota = failure_of(pool, quota_exceeded);
  check_arrives_as<QuotaExceeded>(quota, "test_remote::QuotaExceeded", message_of(quota_exceeded));
  QuotaExceeded caught = caught_as<QuotaExceeded>(quota);
  CHECK(caught.limit == 42);
  CHECK(caught.users == std::vector<std::string>{"ann", "bob"});
  check_arrives_as<std::runtime_error>(quota, "test_remote::QuotaExceeded",
                                       message_of(quota_exceeded));
  // Built by default, and an mp::ValueError as well.
  check_arrives_as<Exhausted>(failure_of(pool, exhausted), "test_remote::Exhausted", "exhausted");
  check_arrives_as<mp::ValueError>(failure_of(pool, exhausted), "test_remote::Exhausted",
                                   "exhausted");
}

TEST_CASE("an unregistered type, or no std::exception at all, stays a RemoteError naming it") {
  mp::Pool pool(2);
  const std::string unregistered_what =
      "test_remote::Unregistered: " + message_of(unregistered);
  std::exception_ptr error = failure_of(pool, unregistered);
  check_arrives_as<mp::Error>(error, "test_remote::Unregistered", unregistered_what);
  CHECK_THROWS_AS(std::rethrow_exception(error), mp::Remote<mp::Error>);
  try {
    std::rethrow_exception(error);
  } catch (const std::logic_error&) {
    FAIL("an unregistered type is not rebuilt as its base");
  } catch (const mp::RemoteError&) {
  }
  check_arrives_as<mp::Error>(failure_of(pool, not_an_exception), "unknown exception",
                              "unknown exception: something that is not a std::exception was thrown");
}

TEST_CASE("a registered type whose value cannot be described travels as unregistered, nothing lost") {
  mp::Pool pool(2);
  check_arrives_as<mp::Error>(
      failure_of(pool, unsaveable), "test_remote::Unsaveable",
      "test_remote::Unsaveable: " + message_of(unsaveable) +
          " (its fields could not be serialized: Unsaveable refuses)");
  const std::string printer_what =
      std::system_error(3, printer_category, message_of(other_category)).what();
  check_arrives_as<mp::Error>(failure_of(pool, other_category), "std::system_error",
                              "std::system_error: " + printer_what);
}

TEST_CASE("an exception re-raised from another process and thrown on keeps its first type and message") {
  mp::Pool pool(2);
  check_arrives_as<std::out_of_range>(failure_of(pool, nested_remote), "std::out_of_range",
                                      message_of(nested_remote));
  check_arrives_as<mp::Error>(failure_of(pool, nested_unregistered), "Elsewhere",
                              "Elsewhere: " + message_of(nested_unregistered));
}

TEST_CASE("map, imap, starmap and the async forms rethrow typed errors at their positions") {
  mp::Pool pool(2);
  // Kinds by position: the map fails with the lowest failing position's error.
  std::vector<int> positions{kinds, kinds, out_of_range, kinds, invalid_argument, kinds};
  auto ok_or_fail = [](int kind) { return kind == kinds ? 7 : fail(kind); };
  for (std::size_t chunksize : {std::size_t{1}, std::size_t{2}, std::size_t{0}}) {
    CAPTURE(chunksize);
    CHECK_THROWS_WITH_AS(pool.map(ok_or_fail, positions, chunksize), message_of(out_of_range).c_str(),
                         std::out_of_range);
    CHECK_THROWS_AS(pool.map_async(ok_or_fail, positions, chunksize).get(patience), std::out_of_range);
  }
  std::vector<std::tuple<int>> tuples{{kinds}, {length_error}};
  CHECK_THROWS_AS(pool.starmap(ok_or_fail, tuples), std::length_error);
  CHECK_THROWS_AS(pool.starmap_async(ok_or_fail, tuples).get(patience), std::length_error);
  CHECK_THROWS_AS(pool.apply_async(fail, overflow_error).get(patience), std::overflow_error);

  // imap: each position gives its value or its own typed error, in order,
  // and no position is lost or added.
  auto it = pool.imap(ok_or_fail, positions);
  std::vector<std::string> seen;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    try {
      std::optional<int> value = it.next(patience);
      seen.push_back(value ? std::to_string(*value) : "end");
    } catch (const std::out_of_range&) {
      seen.push_back("out_of_range");
    } catch (const std::invalid_argument&) {
      seen.push_back("invalid_argument");
    }
  }
  CHECK(seen == std::vector<std::string>{"7", "7", "out_of_range", "7", "invalid_argument", "7"});
  CHECK(it.next(patience) == std::nullopt);

  // imap_unordered: the same outcomes, in some order.
  auto unordered = pool.imap_unordered(ok_or_fail, positions);
  int values = 0, typed_errors = 0;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    try {
      values += unordered.next(patience).has_value();
    } catch (const std::logic_error& e) {
      typed_errors += dynamic_cast<const mp::RemoteError*>(&e) != nullptr;
    }
  }
  CHECK(values == 4);
  CHECK(typed_errors == 2);
  CHECK(unordered.next(patience) == std::nullopt);
  CHECK(pool.apply(ok_or_fail, int{kinds}) == 7);  // the pool goes on
}

TEST_CASE("error callbacks: std::exception& gets the typed error, mp::Error& the plain RemoteError") {
  mp::Pool pool(2);
  std::mutex mutex;
  std::vector<std::string> typed, plain;
  auto on_any = [&](const std::exception& e) {
    std::lock_guard lock(mutex);
    bool is_invalid_argument = dynamic_cast<const std::invalid_argument*>(&e) != nullptr;
    typed.push_back(std::string(is_invalid_argument ? "invalid_argument " : "other ") + e.what());
  };
  auto on_mp_error = [&](const mp::Error& e) {
    std::lock_guard lock(mutex);
    auto* remote = dynamic_cast<const mp::RemoteError*>(&e);
    plain.push_back((remote ? remote->type_name() + " | " : std::string("not remote | ")) + e.what());
  };
  CHECK_THROWS_AS(pool.apply_async(mp::Callbacks{nullptr, on_any}, fail, invalid_argument).get(patience),
                  std::invalid_argument);
  CHECK_THROWS_AS(
      pool.apply_async(mp::Callbacks{nullptr, on_mp_error}, fail, invalid_argument).get(patience),
      std::invalid_argument);
  CHECK_THROWS_AS(pool.map_async(mp::Callbacks{nullptr, on_mp_error}, fail,
                                 std::vector<int>{value_error})
                      .get(patience),
                  mp::ValueError);
  std::function<void(const mp::Error&)> empty;
  CHECK_THROWS_AS(pool.apply_async(mp::Callbacks{nullptr, empty}, fail, out_of_range).get(patience),
                  std::out_of_range);
  std::lock_guard lock(mutex);
  CHECK(typed == std::vector<std::string>{"invalid_argument " + message_of(invalid_argument)});
  CHECK(plain == std::vector<std::string>{
                     "std::invalid_argument | std::invalid_argument: " + message_of(invalid_argument),
                     "mp::ValueError | " + message_of(value_error)});
}

TEST_CASE("an initializer's exception keeps its type too") {
  mp::Pool pool(mp::PoolOptions{1, [] { throw std::domain_error("no licence"); }, {}});
  try {
    pool.apply_async(fail, kinds).get(patience);
    FAIL("no exception");
  } catch (const std::domain_error& e) {
    CHECK(std::string(e.what()) ==
          "Pool: the worker initializer threw std::domain_error: no licence");
    auto* remote = dynamic_cast<const mp::RemoteError*>(&e);
    REQUIRE(remote);
    CHECK(remote->type_name() == "std::domain_error");
  }
  pool.terminate();
  pool.join();
}

TEST_CASE("a failure record whose fields do not decode fails its task with SerializationError") {
  mp::Pool pool(2);
  std::exception_ptr error = failure_of(pool, lopsided);
  REQUIRE(error);
  try {
    std::rethrow_exception(error);
  } catch (const mp::RemoteError&) {
    FAIL("a record that does not decode became a RemoteError");
  } catch (const mp::SerializationError& e) {
    CHECK(std::string(e.what()).find("test_remote::Lopsided") != std::string::npos);
  }
  CHECK(pool.apply(fail, int{kinds}) == kinds);  // the pool goes on
}

TEST_CASE("hostile exception records: SerializationError, never a crash or a claimed allocation") {
  using mp::detail::decode_exception_record;
  using mp::detail::rethrowable;
  auto encode = [](const std::string& type, const std::string& message,
                   const std::optional<std::string>& fields) {
    std::string out;
    mp::detail::OutputArchive archive(out);
    archive(type, message, fields);
    return out;
  };
  const std::string honest = encode("std::invalid_argument", "bad", "");
  CHECK_THROWS_WITH_AS(std::rethrow_exception(rethrowable(decode_exception_record(honest, "test"), "test")),
                       "bad", std::invalid_argument);
  // The fields' presence flag must be a bool.
  std::string not_a_flag = honest;
  not_a_flag[not_a_flag.size() - 1 - sizeof(std::uint64_t)] = 7;
  CHECK_THROWS_AS(decode_exception_record(not_a_flag, "test"), mp::SerializationError);
  CHECK_NOTHROW(decode_exception_record(honest, "test"));
  for (std::size_t cut = 0; cut < honest.size(); ++cut)
    CHECK_THROWS_AS(decode_exception_record(std::string_view(honest).substr(0, cut), "test"),
                    mp::SerializationError);
  CHECK_THROWS_AS(decode_exception_record(honest + "x", "test"), mp::SerializationError);
  // A length that claims far more than the record holds is refused before
  // anything is allocated for it.
  std::string huge = honest;
  const std::uint64_t claim = std::uint64_t{1} << 60;
  std::memcpy(huge.data(), &claim, sizeof claim);
  CHECK_THROWS_AS(decode_exception_record(huge, "test"), mp::SerializationError);

  auto rebuild = [&](const std::string& type, const std::optional<std::string>& fields) {
    return rethrowable(decode_exception_record(encode(type, "m", fields), "test"), "test");
  };
  CHECK_THROWS_AS(rebuild("mp::OSError", "ab"), mp::SerializationError);         // truncated code
  CHECK_THROWS_AS(rebuild("mp::OSError", std::string(12, '\0')), mp::SerializationError);  // left over
  CHECK_THROWS_AS(rebuild("std::system_error", std::string(4, '\0') + '\x07'),
                  mp::SerializationError);  // a bool that is not one
  CHECK_THROWS_AS(rebuild("test_remote::QuotaExceeded", std::string(4, '\0') + std::string(8, '\xff')),
                  mp::SerializationError);  // a vector claiming 2^64 - 1 users
  CHECK_THROWS_AS(rebuild("mp::BufferTooShort", ""), mp::SerializationError);
  // A type this program does not know: its fields cannot be read, its name
  // and message still arrive.
  std::exception_ptr unknown = rebuild("Elsewhere", "fields");
  CHECK_THROWS_WITH_AS(std::rethrow_exception(unknown), "Elsewhere: m", mp::Remote<mp::Error>);
  CHECK_NOTHROW(rebuild("mp::OSError", std::string(4, '\0')));
  // Sent without fields: rebuilt as unregistered, named.
  CHECK_THROWS_WITH_AS(std::rethrow_exception(rebuild("mp::OSError", std::nullopt)),
                       "mp::OSError: m", mp::Remote<mp::Error>);
}
