// Compiled, never run: which task argument types mp::Pool refuses with its
// "process-shared mp object" message (detail/pool_task.hpp), for every handle
// of the library, and that ordinary values still pass. The compile_fail tests
// show the message itself for a few of them.
#include <mp/mp.hpp>

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace {

template <class T>
constexpr bool refused = mp::detail::holds_shared_handle<T>::value;

struct Point {
  double x = 0, y = 0;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(x, y);
  }
};

}  // namespace

static_assert(refused<mp::Lock>);
static_assert(refused<mp::RLock>);
static_assert(refused<mp::Semaphore>);
static_assert(refused<mp::BoundedSemaphore>);
static_assert(refused<mp::Condition>);
static_assert(refused<mp::Event>);
static_assert(refused<mp::Barrier>);
static_assert(refused<mp::Queue<int>>);
static_assert(refused<mp::SimpleQueue<std::string>>);
static_assert(refused<mp::JoinableQueue<Point>>);
static_assert(refused<mp::Value<int>>);
static_assert(refused<mp::RawValue<double>>);
static_assert(refused<mp::Array<int>>);
static_assert(refused<mp::RawArray<char>>);
// Every lock option of Value and Array (Python's lock=): the default RLock,
// lock=false (the same type, no lock at run time), a caller's Lock or RLock.
static_assert(refused<mp::Value<int, mp::Lock>>);
static_assert(refused<mp::Value<int, mp::RLock>>);
static_assert(refused<decltype(mp::Value(0, false))>);
static_assert(refused<decltype(mp::Value(0.0, std::declval<mp::Lock>()))>);
static_assert(refused<decltype(mp::Value(0L, std::declval<mp::RLock>()))>);
static_assert(refused<mp::Array<int, mp::Lock>>);
static_assert(refused<mp::Array<double, mp::RLock>>);
static_assert(refused<decltype(mp::Array<char>(std::size_t{4}, false))>);
static_assert(refused<std::vector<mp::Value<int, mp::Lock>>>);
static_assert(refused<std::tuple<int, mp::Array<char, mp::Lock>>>);
static_assert(refused<std::array<mp::RawValue<long>, 2>>);
static_assert(refused<std::optional<mp::RawArray<double>>>);
static_assert(refused<mp::Connection>);
static_assert(refused<mp::Listener>);
static_assert(refused<mp::SharedMemory>);
static_assert(refused<mp::Process>);
static_assert(refused<mp::Lock*>);
static_assert(refused<std::vector<mp::Lock>>);
static_assert(refused<std::tuple<int, mp::Queue<int>>>);
static_assert(refused<std::pair<mp::Connection, int>>);
static_assert(refused<std::array<mp::Event, 2>>);
static_assert(refused<std::optional<mp::Value<int>>>);
static_assert(refused<std::map<int, std::vector<mp::Lock>>>);

static_assert(!refused<int>);
static_assert(!refused<std::string>);
static_assert(!refused<Point>);
static_assert(!refused<std::vector<Point>>);
static_assert(!refused<std::tuple<int, std::string, double>>);
static_assert(!refused<std::map<std::string, std::vector<int>>>);
static_assert(!refused<std::variant<int, std::string>>);
static_assert(!refused<std::array<int, 3>>);
static_assert(!refused<mp::ValueError>);  // an exception, not a handle

// Manager proxies are handles that serialize (address, key, token): allowed.
static_assert(!refused<mp::DictProxy<int, std::string>>);
static_assert(!refused<mp::ListProxy<int>>);
static_assert(!refused<mp::NamespaceProxy>);
static_assert(!refused<mp::ValueProxy<double>>);
static_assert(!refused<mp::LockProxy>);
static_assert(!refused<mp::RLockProxy>);
static_assert(!refused<mp::SemaphoreProxy>);
static_assert(!refused<mp::EventProxy>);
static_assert(!refused<mp::QueueProxy<int>>);
static_assert(!refused<mp::JoinableQueueProxy<Point>>);
static_assert(!refused<std::tuple<mp::LockProxy, int>>);

// Containers of serializable mp values: their allocator and comparator
// (std::allocator<mp::Object>, std::less<mp::Object>) bring namespace mp
// into argument-dependent lookup, yet they are no handles.
static_assert(!refused<mp::Object>);
static_assert(!refused<std::vector<mp::Object>>);
static_assert(!refused<std::map<mp::Object, mp::Object>>);
static_assert(!refused<std::vector<mp::LockProxy>>);
static_assert(!refused<std::map<std::string, std::vector<mp::ValueProxy<int>>>>);
