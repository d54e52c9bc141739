// mp/object.hpp: Python values (None, bool, int, float, str, bytes, list,
// tuple, dict, set) and Python's pickle for them.
#pragma once

#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "mp/detail/own_encoding.hpp"
#include "mp/detail/repr.hpp"
#include "mp/errors.hpp"

namespace mp {

class Object;

// Python's None, as an argument: Object(mp::None).
struct NoneType {
  bool operator==(const NoneType&) const = default;
};
inline constexpr NoneType None{};

// Python's bytes: a byte string, distinct from str (which holds UTF-8 text).
class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(std::string data) : data_(std::move(data)) {}
  explicit Bytes(std::string_view data) : data_(data) {}
  explicit Bytes(const char* data) : data_(data) {}
  const std::string& data() const noexcept { return data_; }
  std::size_t size() const noexcept { return data_.size(); }
  bool operator==(const Bytes&) const = default;

 private:
  std::string data_;
};

// Python's list.
using List = std::vector<Object>;

// Python's tuple: a fixed sequence (Tuple{1, "a", 2.5}).
class Tuple {
 public:
  Tuple() = default;
  Tuple(std::initializer_list<Object> items);
  explicit Tuple(std::vector<Object> items);
  const std::vector<Object>& items() const noexcept { return items_; }
  std::size_t size() const noexcept;
  const Object& operator[](std::size_t index) const;  // IndexError when out of range
  std::vector<Object>::const_iterator begin() const noexcept;
  std::vector<Object>::const_iterator end() const noexcept;
  bool operator==(const Tuple& other) const;

 private:
  std::vector<Object> items_;
};

namespace detail {
// The hash index of Dict and Set: open addressing over the positions of an
// insertion-ordered vector, so iteration keeps Python's insertion order and a
// lookup costs one probe sequence. Small tables (up to 8) are scanned.
class OrderedIndex {
 public:
  // The position whose hash is `hash` and for which matches(position) holds.
  template <class Matches>
  std::optional<std::size_t> find(std::size_t hash, Matches matches) const {
    if (slots_.empty()) {
      for (std::size_t position = 0; position < hashes_.size(); ++position)
        if (hashes_[position] == hash && matches(position)) return position;
      return std::nullopt;
    }
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t slot = hash & mask;; slot = (slot + 1) & mask) {
      const std::uint32_t entry = slots_[slot];
      if (entry == 0) return std::nullopt;
      if (hashes_[entry - 1] == hash && matches(entry - 1)) return entry - 1;
    }
  }
  // Records the entry just appended at position size().
  void append(std::size_t hash);
  // Forgets the entry at `position`; later ones move down by one.
  void erase(std::size_t position);
  void reserve(std::size_t count);
  void clear() noexcept;

 private:
  void rebuild(std::size_t slot_count);
  std::vector<std::size_t> hashes_;
  std::vector<std::uint32_t> slots_;  // position + 1, 0 for a free slot; empty while small
};
}  // namespace detail

namespace detail {
struct ObjectAccess;
}  // namespace detail

// Python's dict: insertion ordered, keys hashable (None, bool, int, float,
// str, bytes, tuples of those); a list, dict or set as a key is mp::TypeError,
// as in Python. Keys compare as Python's do: 1, 1.0 and True are one key.
struct DictItem;

class Dict {
 public:
  using Item = DictItem;  // key, value
  Dict() = default;
  Dict(std::initializer_list<Item> items);

  std::size_t size() const noexcept;
  bool empty() const noexcept;
  const std::vector<Item>& items() const noexcept { return items_; }
  std::vector<Item>::const_iterator begin() const noexcept;
  std::vector<Item>::const_iterator end() const noexcept;

  bool contains(const Object& key) const;
  const Object* find(const Object& key) const;  // nullptr when absent
  const Object& at(const Object& key) const;    // mp::KeyError when absent
  // Python's d[key] = value: replaces the value of an equal key in place.
  void set(Object key, Object value);
  // Python's d[key] on the left of an assignment: inserts None when absent.
  Object& operator[](const Object& key);
  // Python's del d[key]; false when absent. Linear in the size.
  bool erase(const Object& key);
  void reserve(std::size_t count);

  bool operator==(const Dict& other) const;  // as Python: order does not matter

 private:
  friend struct detail::ObjectAccess;
  // set(), moving from `key` and `value` (which end None).
  void set_from(Object& key, Object& value);
  std::optional<std::size_t> position_of(const Object& key, std::size_t hash) const;
  std::vector<Item> items_;
  detail::OrderedIndex index_;
};

// Python's set: hashable elements, no duplicates. Iteration (and repr) is in
// insertion order; Python's order follows the hashes (randomized for str).
class Set {
 public:
  Set() = default;
  Set(std::initializer_list<Object> items);

  std::size_t size() const noexcept;
  bool empty() const noexcept;
  const std::vector<Object>& items() const noexcept { return items_; }
  std::vector<Object>::const_iterator begin() const noexcept;
  std::vector<Object>::const_iterator end() const noexcept;

  bool contains(const Object& item) const;
  bool add(Object item);  // false when an equal element was there
  bool erase(const Object& item);
  void reserve(std::size_t count);

  bool operator==(const Set& other) const;

 private:
  std::optional<std::size_t> position_of(const Object& item, std::size_t hash) const;
  std::vector<Object> items_;
  detail::OrderedIndex index_;
};

// Object: a Python value (Python: any object of the types above).
//
// Holds None, bool, int, float, str, bytes, list, tuple, dict or set, built
// from the matching C++ value (nullptr or mp::None, bool, any integer, double,
// std::string or a literal as str, Bytes, List, Tuple, Dict, Set). A value:
// copies are independent (they share storage until one is changed, so a copy
// costs one reference count; a str or bytes of up to 15 bytes is held inline,
// without an allocation, and copied). A moved-from Object is None.
//
// int: any size. Values in the int64 range are held as such; larger ones (a
// Python big int, a uint64 above INT64_MAX) as their two's-complement bytes,
// little-endian (int.to_bytes(n, 'little', signed=True)), so they round-trip
// through pickle exactly, compare and hash like Python's; as<integral>() of a
// value outside the requested type's range throws mp::OverflowError, and
// int_bytes()/from_int_bytes() reach any value. repr() of an int longer than
// 4300 digits throws mp::ValueError, as Python 3.11+ does.
// str: UTF-8 text; invalid UTF-8 (including surrogates) is mp::ValueError at
// construction, and size() is len(): code points.
//
// Equality is Python's ==: numbers compare by value across bool, int and
// float (True == 1 == 1.0; nan != nan); str != bytes; list != tuple; dict
// and set ignore order. hash() agrees with it, so 1 and 1.0 are one dict key.
// repr() is Python's repr(), and operator<< prints it (floats shortest
// round-trip: 0.1, 1e+16, nan, inf; strings with Python's choice of quotes
// and escapes). Differences: a set prints in insertion order; a string
// escapes the non-printable characters of Latin-1 and of Unicode's format,
// separator and private-use ranges, where Python consults the whole Unicode
// database.
// Limits: nesting deeper than 1000 (Python's default recursion limit) cannot
// be pickled or unpickled; a structure that contains itself cannot be built.
//
// Blocking: none. Thread safety: as a std::string: const use from several
// threads at once is safe, a change is not.
class Object {
 public:
  enum class Kind : std::uint8_t { none, boolean, integer, floating, str, bytes, list, tuple, dict, set };

  Object() noexcept : kind_(Kind::none) {}
  Object(std::nullptr_t) noexcept : kind_(Kind::none) {}
  Object(NoneType) noexcept : kind_(Kind::none) {}
  Object(bool value) noexcept : kind_(Kind::boolean) { scalar_.integer = value; }
  template <std::integral I>
    requires(!std::same_as<I, bool> && !std::same_as<I, char>)
  Object(I value) : kind_(Kind::integer) {
    if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(std::int64_t)) {
      if (value > static_cast<std::make_unsigned_t<std::int64_t>>(std::numeric_limits<std::int64_t>::max())) {
        *this = from_uint64(value);
        return;
      }
    }
    scalar_.integer = static_cast<std::int64_t>(value);
  }
  Object(double value) noexcept : kind_(Kind::floating) { scalar_.floating = value; }
  Object(std::string value);  // str; mp::ValueError if not UTF-8
  Object(std::string_view value);
  Object(const char* value) : Object(std::string_view(value)) {}
  Object(Bytes value);
  Object(List value);
  Object(Tuple value);
  Object(Dict value);
  Object(Set value);

  Object(const Object& other) : kind_(other.kind_), storage_(other.storage_), big_(other.big_) {
    copy_storage(other);
  }
  Object(Object&& other) noexcept : kind_(other.kind_), storage_(other.storage_), big_(other.big_) {
    take_storage(other);
  }
  Object& operator=(const Object& other) {
    if (this != &other) *this = Object(other);
    return *this;
  }
  Object& operator=(Object&& other) noexcept {
    if (this == &other) return *this;
    if (storage_ != Storage::scalar) {
      // `other` may live inside this value: free the old value only after taking it.
      Object old(std::move(*this));
      return *this = std::move(other);
    }
    kind_ = other.kind_, storage_ = other.storage_, big_ = other.big_;
    take_storage(other);
    return *this;
  }
  ~Object() { destroy_storage(); }

  // The int whose two's-complement little-endian bytes are `bytes` (Python's
  // int.from_bytes(bytes, 'little', signed=True)); empty is 0.
  static Object from_int_bytes(std::string_view bytes);
  // An int's bytes as above, the fewest that hold it; mp::TypeError otherwise.
  std::string int_bytes() const;

  Kind kind() const noexcept { return kind_; }
  bool is_none() const noexcept { return kind_ == Kind::none; }
  // Python's type(x).__name__: "NoneType", "bool", "int", "float", "str",
  // "bytes", "list", "tuple", "dict", "set".
  std::string_view type_name() const noexcept { return kind_name(kind_); }
  static std::string_view kind_name(Kind kind) noexcept;

  // The value as T, or mp::TypeError naming both types. T is one of: bool;
  // an integral type (from int or bool; mp::OverflowError outside T's range);
  // double (from float, int or bool); std::string (str); Bytes; List;
  // Tuple; Dict; Set. The held types are returned by reference.
  template <class T>
  decltype(auto) as() const;

  // len(): elements of a list, tuple, dict or set, code points of a str,
  // bytes of a bytes; mp::TypeError for the others.
  std::size_t size() const;
  // x[i] of a list or tuple (negative counts from the end; mp::IndexError),
  // x[key] of a dict (mp::KeyError); mp::TypeError for the others.
  const Object& operator[](std::int64_t index) const;
  const Object& operator[](const Object& key) const;
  // The same for assignment: a dict inserts None under a missing key; a
  // tuple cannot be changed (mp::TypeError).
  Object& operator[](std::int64_t index);
  Object& operator[](const Object& key);

  std::string repr() const;
  // Python's hash() for the hashable types (mp::TypeError "unhashable type"
  // for list, dict and set): equal objects hash equal. Not Python's numbers.
  std::size_t hash() const;

  friend bool operator==(const Object& a, const Object& b);

 private:
  friend struct detail::ObjectAccess;
  static Object from_uint64(std::uint64_t value);
  template <class T>
  const T& held(Kind kind) const;
  template <class T>
  T& held_for_change(Kind kind);
  [[noreturn]] void throw_type_error(std::string_view wanted) const;
  const std::string& held_big() const;
  std::int64_t integer_in_range(std::int64_t low, std::uint64_t high) const;
  double to_double() const;

  // Where the value lives: scalar_ (None, bool, an int64, float), text_ or
  // bytes_ (a str or bytes of at most inline_max bytes, so that the common
  // short keys and values cost no allocation: the short-string capacity of
  // libstdc++), or heap_ (longer str and bytes, big int, list, tuple, dict,
  // set: one shared box of the held C++ value, detail::Box<T>, copied before
  // a change when shared).
  enum class Storage : std::uint8_t { scalar, text, bytes, heap };
  static constexpr std::size_t inline_max = 15;

  void copy_storage(const Object& other) {
    switch (storage_) {
      case Storage::scalar: scalar_ = other.scalar_; break;
      case Storage::text: new (&text_) std::string(other.text_); break;
      case Storage::bytes: new (&bytes_) Bytes(other.bytes_); break;
      case Storage::heap: new (&heap_) std::shared_ptr<void>(other.heap_); break;
    }
  }
  // Moves other's value here (kind_, storage_ and big_ already copied) and leaves other None.
  void take_storage(Object& other) noexcept {
    switch (storage_) {
      case Storage::scalar: scalar_ = other.scalar_; break;
      case Storage::text: new (&text_) std::string(std::move(other.text_)); break;
      case Storage::bytes: new (&bytes_) Bytes(std::move(other.bytes_)); break;
      case Storage::heap: new (&heap_) std::shared_ptr<void>(std::move(other.heap_)); break;
    }
    other.destroy_storage();
    other.kind_ = Kind::none, other.storage_ = Storage::scalar, other.big_ = false;
  }
  void destroy_storage() noexcept {
    switch (storage_) {
      case Storage::scalar: break;
      case Storage::text: text_.~basic_string(); break;
      case Storage::bytes: bytes_.~Bytes(); break;
      case Storage::heap: heap_.~shared_ptr(); break;
    }
  }
  // Set the value of a new Object whose storage_ is still scalar. A str of
  // `text`, mp::ValueError if not UTF-8; a long one takes `owned` (the
  // caller's copy of the text, if it gives one) into its box.
  void hold_str(std::string_view text, std::string* owned);
  void hold_in_heap(std::shared_ptr<void> box) noexcept {
    new (&heap_) std::shared_ptr<void>(std::move(box));
    storage_ = Storage::heap;
  }

  Kind kind_;
  Storage storage_ = Storage::scalar;
  bool big_ = false;  // an int held as bytes in heap_
  union Scalar {
    std::int64_t integer;
    double floating;
  };
  // raw_ comes first and is zeroed so that every byte of the union starts
  // initialized: GCC 12 with sanitizers otherwise warns
  // (-Wmaybe-uninitialized) that a scalar Object's destructor may read
  // heap_'s control block, a path storage_ rules out.
  union {
    unsigned char raw_[sizeof(std::string)]{};
    Scalar scalar_;
    std::string text_;
    Bytes bytes_;
    std::shared_ptr<void> heap_;
  };
  static_assert(sizeof(Bytes) <= sizeof(raw_) && sizeof(std::shared_ptr<void>) <= sizeof(raw_));
};

namespace detail {

// What the unpickler records on each container it builds: how deep it nests,
// what it costs to walk (so memo references cannot multiply the work of
// later walks beyond the input's size), and whether a reference to it was
// handed out (from then on the pickle may not change it, so no container can
// come to contain itself).
struct LoadInfo {
  std::uint32_t depth = 0;
  bool shared = false;
  std::uint64_t cost = 1;
};

template <class T>
struct Box {
  template <class... Args>
  explicit Box(Args&&... args) : value(std::forward<Args>(args)...) {}
  T value;
  LoadInfo info;
};

// The unpickler's and the queue's access to an Object's storage.
struct ObjectAccess {
  template <class T>
  static Box<T>& box(const Object& object) {
    return *static_cast<Box<T>*>(object.heap_.get());
  }
  static bool is_big_int(const Object& object) noexcept { return object.big_; }
  static std::int64_t small_int(const Object& object) noexcept { return object.scalar_.integer; }
  static double floating(const Object& object) noexcept { return object.scalar_.floating; }
  // Dict::set without the copies of its by-value arguments.
  static void dict_set(Dict& dict, Object& key, Object& value) { dict.set_from(key, value); }
};

}  // namespace detail

struct DictItem {
  Object key;
  Object value;
};

inline Tuple::Tuple(std::initializer_list<Object> items) : items_(items) {}
inline Tuple::Tuple(std::vector<Object> items) : items_(std::move(items)) {}
inline bool Tuple::operator==(const Tuple& other) const { return items_ == other.items_; }
inline std::size_t Tuple::size() const noexcept { return items_.size(); }
inline std::vector<Object>::const_iterator Tuple::begin() const noexcept { return items_.begin(); }
inline std::vector<Object>::const_iterator Tuple::end() const noexcept { return items_.end(); }
inline std::size_t Dict::size() const noexcept { return items_.size(); }
inline bool Dict::empty() const noexcept { return items_.empty(); }
inline std::vector<Dict::Item>::const_iterator Dict::begin() const noexcept { return items_.begin(); }
inline std::vector<Dict::Item>::const_iterator Dict::end() const noexcept { return items_.end(); }
inline std::size_t Set::size() const noexcept { return items_.size(); }
inline bool Set::empty() const noexcept { return items_.empty(); }
inline std::vector<Object>::const_iterator Set::begin() const noexcept { return items_.begin(); }
inline std::vector<Object>::const_iterator Set::end() const noexcept { return items_.end(); }

template <class T>
const T& Object::held(Kind kind) const {
  if (kind_ != kind) throw_type_error(kind_name(kind));
  if constexpr (std::same_as<T, std::string>) {
    if (storage_ == Storage::text) return text_;
  } else if constexpr (std::same_as<T, Bytes>) {
    if (storage_ == Storage::bytes) return bytes_;
  }
  return detail::ObjectAccess::box<T>(*this).value;
}

template <class T>
decltype(auto) Object::as() const {
  if constexpr (std::same_as<T, bool>) {
    if (kind_ != Kind::boolean) throw_type_error("bool");
    return scalar_.integer != 0;
  } else if constexpr (std::integral<T>) {
    return static_cast<T>(integer_in_range(
        static_cast<std::int64_t>(std::numeric_limits<T>::min()),
        static_cast<std::uint64_t>(std::numeric_limits<T>::max())));
  } else if constexpr (std::same_as<T, double>) {
    return to_double();
  } else if constexpr (std::same_as<T, std::string>) {
    return held<std::string>(Kind::str);
  } else if constexpr (std::same_as<T, Bytes>) {
    return held<Bytes>(Kind::bytes);
  } else if constexpr (std::same_as<T, List>) {
    return held<List>(Kind::list);
  } else if constexpr (std::same_as<T, Tuple>) {
    return held<Tuple>(Kind::tuple);
  } else if constexpr (std::same_as<T, Dict>) {
    return held<Dict>(Kind::dict);
  } else if constexpr (std::same_as<T, Set>) {
    return held<Set>(Kind::set);
  } else {
    static_assert(!sizeof(T), "Object::as<T>: T is bool, an integer, double, std::string, Bytes, "
                              "List, Tuple, Dict or Set");
  }
}

inline bool operator!=(const Object& a, const Object& b) { return !(a == b); }

namespace pickle {

// pickle.dumps(obj, protocol=4): accepted by Python 3.4 and later. Nesting
// deeper than 1000 throws mp::SerializationError.
std::string dumps(const Object& object);
// The same, appended to `out` (a buffer that keeps its capacity).
void dump_into(std::string& out, const Object& object);

// pickle.loads(data) for pickles of protocols 2 to 5 (and the binary opcodes
// of 0 and 1) that hold the types above; a frozenset loads as a set, a
// bytearray as bytes. Protocol 2 spells bytes and sets, and protocol 3
// sets, as calls (_codecs.encode, builtins.set): those are refused like
// every call, so Python peers should use protocol 4 or 5 (the default of
// Python 3.8+ and of its Connection.send). Anything that names a class or a function (GLOBAL,
// STACK_GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ, NEWOBJ_EX, PERSID,
// BINPERSID, EXT1/2/4), out-of-band buffers (NEXT_BUFFER), text opcodes,
// a malformed or truncated pickle, a structure that contains itself or nests
// deeper than 1000, or trailing bytes: mp::SerializationError naming the
// opcode and its offset. Nothing is imported, called or executed. Memory
// stays proportional to the input: a length or memo index the rest of the
// input cannot back is refused before anything is allocated, and values
// referenced many times through the memo are shared, not copied; a pickle
// whose memo references would expand it beyond 2^20 + 16 × its size (values
// plus bytes of text) is refused, so walking the result (repr, dumps, ==)
// costs no more than that.
Object loads(std::string_view data);

}  // namespace pickle

// Queues, Connections and cereal archives carry an Object as its pickle, so a
// Connection message is exactly what Python's Connection.send(obj) writes.
template <>
struct detail::OwnEncoding<Object> {
  static void dump(std::string& out, const Object& object) { pickle::dump_into(out, object); }
  static Object load(std::string_view bytes) { return pickle::loads(bytes); }
};

}  // namespace mp
