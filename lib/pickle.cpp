// lib/pickle.cpp: Python's pickle for mp::Object (pickle.dumps with protocol
// 4, pickle.loads of protocols 2 to 5), driven by one table of opcodes.
//
// Invariants of loads: nothing is ever imported, called or executed: an
// opcode that names a class or a function is refused by the table before
// its argument is read. Memory stays proportional to the input: every
// length and memo index is checked against the bytes left before anything
// is allocated, the stack and the marks grow by at most one entry per
// opcode, and memo references share a value instead of copying it. Each
// container built carries its nesting depth and its walking cost (LoadInfo);
// both are bounded, so the result can be walked (repr, ==, dumps, its
// destructor) without deep recursion and without work exponential in the
// input. A container handed out twice (BINGET, DUP) is never changed again,
// so no container can come to hold itself.
#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>

#include "mp/object.hpp"

namespace mp::pickle {

namespace {

using detail::Box;
using detail::LoadInfo;
using detail::ObjectAccess;
using Kind = Object::Kind;

constexpr std::uint32_t max_depth = 1000;  // Python's default recursion limit

// ---- dumps -----------------------------------------------------------------

// An opcode and its little-endian argument, in one append (byte by byte
// appends were a fifth of the time of dumps).
template <class Int>
void append_op(std::string& out, char op, Int value, std::size_t width) {
  char bytes[9] = {op};
  const auto bits = static_cast<std::uint64_t>(value);
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(bytes + 1, &bits, 8);
  } else {
    for (std::size_t i = 0; i < 8; ++i) bytes[1 + i] = static_cast<char>((bits >> (8 * i)) & 0xFF);
  }
  out.append(bytes, 1 + width);
}

// One opcode for a length-prefixed string: 1-, 4- or 8-byte length.
void append_counted(std::string& out, std::string_view data, char short_op, char op4, char op8) {
  if (data.size() < 256)
    append_op(out, short_op, data.size(), 1);
  else if (data.size() <= 0xFFFFFFFFu)
    append_op(out, op4, data.size(), 4);
  else
    append_op(out, op8, data.size(), 8);
  out.append(data);
}

void dump_value(std::string& out, const Object& object, std::uint32_t depth);

template <class Range>
void dump_marked(std::string& out, const Range& items, std::uint32_t depth) {
  out += '(';
  for (const Object& item : items) dump_value(out, item, depth);
}

void dump_value(std::string& out, const Object& object, std::uint32_t depth) {
  if (depth > max_depth)
    throw SerializationError("pickle.dumps: the object nests deeper than " + std::to_string(max_depth));
  switch (object.kind()) {
    case Kind::none: out += 'N'; break;
    case Kind::boolean: out += object.as<bool>() ? '\x88' : '\x89'; break;
    case Kind::integer: {
      if (!ObjectAccess::is_big_int(object)) {
        const std::int64_t value = ObjectAccess::small_int(object);
        if (value >= 0 && value < 256) return append_op(out, 'K', value, 1);
        if (value >= 0 && value < 65536) return append_op(out, 'M', value, 2);
        if (value >= INT32_MIN && value <= INT32_MAX) return append_op(out, 'J', value, 4);
      }
      const std::string bytes = object.int_bytes();
      if (bytes.size() < 256)
        append_op(out, '\x8a', bytes.size(), 1);
      else
        append_op(out, '\x8b', bytes.size(), 4);
      out += bytes;
      break;
    }
    case Kind::floating: {
      // BINFLOAT is big-endian.
      append_op(out, 'G', __builtin_bswap64(std::bit_cast<std::uint64_t>(object.as<double>())), 8);
      break;
    }
    case Kind::str: append_counted(out, object.as<std::string>(), '\x8c', 'X', '\x8d'); break;
    case Kind::bytes: append_counted(out, object.as<Bytes>().data(), 'C', 'B', '\x8e'); break;
    case Kind::list: {
      out += ']';
      const List& items = object.as<List>();
      if (items.empty()) break;
      dump_marked(out, items, depth + 1);
      out += 'e';
      break;
    }
    case Kind::tuple: {
      const Tuple& tuple = object.as<Tuple>();
      if (tuple.size() == 0) {
        out += ')';
      } else if (tuple.size() <= 3) {
        for (const Object& item : tuple) dump_value(out, item, depth + 1);
        out += static_cast<char>(0x84 + tuple.size());  // TUPLE1, TUPLE2, TUPLE3
      } else {
        dump_marked(out, tuple, depth + 1);
        out += 't';
      }
      break;
    }
    case Kind::dict: {
      out += '}';
      const Dict& dict = object.as<Dict>();
      if (dict.empty()) break;
      out += '(';
      for (const Dict::Item& item : dict) {
        dump_value(out, item.key, depth + 1);
        dump_value(out, item.value, depth + 1);
      }
      out += 'u';
      break;
    }
    case Kind::set: {
      out += '\x8f';
      const Set& set = object.as<Set>();
      if (set.empty()) break;
      dump_marked(out, set, depth + 1);
      out += '\x90';
      break;
    }
  }
}

// ---- loads -----------------------------------------------------------------

enum class Action : std::uint8_t {
  unknown, refuse_callable, refuse_buffer, refuse_text,
  proto, frame, stop, none, new_true, new_false, binint1, binint2, binint, long1, long4,
  binfloat, short_binunicode, binunicode, binunicode8, short_binstring, binstring,
  short_binbytes, binbytes, binbytes8, bytearray8,
  empty_list, empty_tuple, empty_dict, empty_set, mark, append, appends, setitem, setitems,
  additems, frozenset, tuple, tuple1, tuple2, tuple3, list, dict, pop, pop_mark, dup,
  binput, long_binput, memoize, binget, long_binget,
};

struct Opcode {
  unsigned char code;
  const char* name;
  Action action;
};

constexpr Opcode opcodes[] = {
    {0x80, "PROTO", Action::proto},
    {0x95, "FRAME", Action::frame},
    {'.', "STOP", Action::stop},
    {'N', "NONE", Action::none},
    {0x88, "NEWTRUE", Action::new_true},
    {0x89, "NEWFALSE", Action::new_false},
    {'K', "BININT1", Action::binint1},
    {'M', "BININT2", Action::binint2},
    {'J', "BININT", Action::binint},
    {0x8a, "LONG1", Action::long1},
    {0x8b, "LONG4", Action::long4},
    {'G', "BINFLOAT", Action::binfloat},
    {0x8c, "SHORT_BINUNICODE", Action::short_binunicode},
    {'X', "BINUNICODE", Action::binunicode},
    {0x8d, "BINUNICODE8", Action::binunicode8},
    {'U', "SHORT_BINSTRING", Action::short_binstring},
    {'T', "BINSTRING", Action::binstring},
    {'C', "SHORT_BINBYTES", Action::short_binbytes},
    {'B', "BINBYTES", Action::binbytes},
    {0x8e, "BINBYTES8", Action::binbytes8},
    {0x96, "BYTEARRAY8", Action::bytearray8},
    {']', "EMPTY_LIST", Action::empty_list},
    {')', "EMPTY_TUPLE", Action::empty_tuple},
    {'}', "EMPTY_DICT", Action::empty_dict},
    {0x8f, "EMPTY_SET", Action::empty_set},
    {'(', "MARK", Action::mark},
    {'a', "APPEND", Action::append},
    {'e', "APPENDS", Action::appends},
    {'s', "SETITEM", Action::setitem},
    {'u', "SETITEMS", Action::setitems},
    {0x90, "ADDITEMS", Action::additems},
    {0x91, "FROZENSET", Action::frozenset},
    {'t', "TUPLE", Action::tuple},
    {0x85, "TUPLE1", Action::tuple1},
    {0x86, "TUPLE2", Action::tuple2},
    {0x87, "TUPLE3", Action::tuple3},
    {'l', "LIST", Action::list},
    {'d', "DICT", Action::dict},
    {'0', "POP", Action::pop},
    {'1', "POP_MARK", Action::pop_mark},
    {'2', "DUP", Action::dup},
    {'q', "BINPUT", Action::binput},
    {'r', "LONG_BINPUT", Action::long_binput},
    {0x94, "MEMOIZE", Action::memoize},
    {'h', "BINGET", Action::binget},
    {'j', "LONG_BINGET", Action::long_binget},
    {'c', "GLOBAL", Action::refuse_callable},
    {0x93, "STACK_GLOBAL", Action::refuse_callable},
    {'R', "REDUCE", Action::refuse_callable},
    {'b', "BUILD", Action::refuse_callable},
    {'i', "INST", Action::refuse_callable},
    {'o', "OBJ", Action::refuse_callable},
    {0x81, "NEWOBJ", Action::refuse_callable},
    {0x92, "NEWOBJ_EX", Action::refuse_callable},
    {'P', "PERSID", Action::refuse_callable},
    {'Q', "BINPERSID", Action::refuse_callable},
    {0x82, "EXT1", Action::refuse_callable},
    {0x83, "EXT2", Action::refuse_callable},
    {0x84, "EXT4", Action::refuse_callable},
    {0x97, "NEXT_BUFFER", Action::refuse_buffer},
    {0x98, "READONLY_BUFFER", Action::refuse_buffer},
    {'I', "INT", Action::refuse_text},
    {'L', "LONG", Action::refuse_text},
    {'F', "FLOAT", Action::refuse_text},
    {'S', "STRING", Action::refuse_text},
    {'V', "UNICODE", Action::refuse_text},
    {'p', "PUT", Action::refuse_text},
    {'g', "GET", Action::refuse_text},
};

struct OpcodeTable {
  const char* names[256] = {};
  Action actions[256] = {};
};
constexpr OpcodeTable opcode_table = [] {
  OpcodeTable table;
  for (const Opcode& opcode : opcodes) {
    table.names[opcode.code] = opcode.name;
    table.actions[opcode.code] = opcode.action;
  }
  return table;
}();

// Room for `more` items in a container that may be filled batch by batch
// (Python writes APPENDS, SETITEMS and ADDITEMS of 1,000 items): it grows by
// doubling, where reserving each batch exactly made loading a 100,000-item
// dict quadratic (2.6 s). At most twice the room the input's items need.
template <class Container, class Items>
void reserve_more(Container& container, const Items& items, std::size_t more) {
  const std::size_t needed = items.size() + more;
  if (needed > items.capacity()) container.reserve(std::max(needed, 2 * items.capacity()));
}

bool is_container(const Object& object) {
  const Kind kind = object.kind();
  return kind == Kind::list || kind == Kind::tuple || kind == Kind::dict || kind == Kind::set;
}

// The unpickler's bookkeeping of a container it built (see LoadInfo).
LoadInfo& info_of(const Object& container) {
  switch (container.kind()) {
    case Kind::list: return ObjectAccess::box<List>(container).info;
    case Kind::tuple: return ObjectAccess::box<Tuple>(container).info;
    case Kind::dict: return ObjectAccess::box<Dict>(container).info;
    default: return ObjectAccess::box<Set>(container).info;
  }
}

class Unpickler {
 public:
  explicit Unpickler(std::string_view input)
      : input_(input), cost_limit_((std::uint64_t{1} << 20) + 16 * std::uint64_t{input.size()}) {}
  // The stack keeps its capacity (up to 2 MiB) for the thread's next loads:
  // freeing and growing it again each time made glibc return and refetch its
  // pages, which cost more than the decoding of a 1,000-item dict.
  ~Unpickler() {
    stack_.clear();
    if (stack_.capacity() > (std::size_t{2} << 20) / sizeof(Object)) std::vector<Object>().swap(stack_);
  }

  Object run() {
    while (true) {
      if (at_ >= input_.size()) fail("the pickle ends without STOP");
      opcode_at_ = at_;
      const auto code = static_cast<unsigned char>(input_[at_++]);
      if (step(opcode_table.actions[code], code)) break;
    }
    if (at_ != input_.size())
      fail(std::to_string(input_.size() - at_) + " bytes follow STOP");
    return result_;
  }

 private:
  [[noreturn, gnu::noinline]] void fail(const std::string& what) const {
    const auto code = static_cast<unsigned char>(input_[opcode_at_]);
    const char* name = opcode_table.names[code];
    std::string opcode = name ? name : "unknown opcode";
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", code);
    throw SerializationError("pickle.loads: " + opcode + " (" + hex + ") at offset " +
                             std::to_string(opcode_at_) + ": " + what);
  }

  [[noreturn, gnu::noinline]] void fail_short(std::uint64_t count) const {
    fail("claims " + std::to_string(count) + " bytes but only " + std::to_string(input_.size() - at_) +
         " are left");
  }
  std::string_view take(std::uint64_t count) {
    if (count > input_.size() - at_) [[unlikely]]
      fail_short(count);
    std::string_view bytes = input_.substr(at_, static_cast<std::size_t>(count));
    at_ += static_cast<std::size_t>(count);
    return bytes;
  }
  std::uint64_t take_le(std::size_t width) {
    std::string_view bytes = take(width);
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < width; ++i)
      value |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
    return value;
  }
  std::string_view take_counted(std::size_t width) { return take(take_le(width)); }

  void push(Object object) { stack_.push_back(std::move(object)); }
  Object pop() {
    if (stack_.size() <= stack_floor()) fail("the stack is empty");
    Object top = std::move(stack_.back());
    stack_.pop_back();
    return top;
  }
  Object& top() {
    if (stack_.size() <= stack_floor()) fail("the stack is empty");
    return stack_.back();
  }
  // Items above the innermost MARK belong to it; below is out of reach.
  std::size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::size_t pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    return mark;
  }

  void push_str(std::string_view text) {
    try {
      stack_.emplace_back(text);
    } catch (const ValueError&) {
      fail("a str that is not UTF-8 (or holds a surrogate)");
    }
  }
  void push_ascii_str(std::string_view text) {
    for (char c : text)
      if (static_cast<unsigned char>(c) >= 0x80) fail("a Python 2 str that is not ASCII");
    stack_.emplace_back(text);
  }

  // What walking `object` (dumps, repr, a copy) costs: one per value, plus
  // its bytes (repr and dumps touch each), so that a hostile kilobyte
  // cannot become more than about a million units of work.
  static std::uint64_t cost_of(const Object& object) {
    switch (object.kind()) {
      case Kind::integer:
        return ObjectAccess::is_big_int(object) ? 1 + ObjectAccess::box<std::string>(object).value.size() : 1;
      case Kind::str: return 1 + object.as<std::string>().size();
      case Kind::bytes: return 1 + object.as<Bytes>().size();
      case Kind::list:
      case Kind::tuple:
      case Kind::dict:
      case Kind::set: return info_of(object).cost;
      default: return 1;
    }
  }
  // Records that `child` now lives in `container`, refusing what the bounds forbid.
  void account(LoadInfo& container, const Object& child) {
    if (is_container(child)) {
      const LoadInfo& info = info_of(child);
      if (info.depth + 1 > container.depth) container.depth = info.depth + 1;
      container.cost += info.cost;
    } else {
      if (container.depth == 0) container.depth = 1;
      container.cost += cost_of(child);
    }
    if (container.depth > max_depth) fail("the object nests deeper than " + std::to_string(max_depth));
    if (container.cost > cost_limit_)
      fail("memo references make the object larger than the input can describe");
  }
  // A dict key or set element is hashed (and maybe compared): a walk of it.
  void account_key(const Object& key) {
    key_work_ += cost_of(key);
    if (key_work_ > cost_limit_) fail("memo references make hashing the keys cost more than the input can describe");
  }
  // The container at the top of the marked items, which must be of `kind`
  // and not yet handed out twice.
  template <class T>
  T& target_below(std::size_t mark, Kind kind, LoadInfo*& info) {
    if (mark == 0 || mark > stack_.size() || (marks_.size() > 0 && mark - 1 < stack_floor()))
      fail("nothing to add to");
    Object& container = stack_[mark - 1];
    if (container.kind() != kind)
      fail("adds items to an object of type '" + std::string(container.type_name()) + "', not a " +
           std::string(Object::kind_name(kind)));
    info = &info_of(container);
    if (info->shared) fail("changes a container the pickle already referenced twice (a recursive structure?)");
    return ObjectAccess::box<T>(container).value;
  }

  void add_to_list(std::size_t first) {
    LoadInfo* info;
    List& list = target_below<List>(first, Kind::list, info);
    reserve_more(list, list, stack_.size() - first);
    for (std::size_t i = first; i < stack_.size(); ++i) {
      account(*info, stack_[i]);
      list.push_back(std::move(stack_[i]));
    }
    stack_.resize(first);
  }
  void add_to_dict(std::size_t first) {
    if ((stack_.size() - first) % 2 != 0) fail("a key without a value");
    LoadInfo* info;
    Dict& dict = target_below<Dict>(first, Kind::dict, info);
    reserve_more(dict, dict.items(), (stack_.size() - first) / 2);
    for (std::size_t i = first; i < stack_.size(); i += 2) {
      account(*info, stack_[i]);
      account(*info, stack_[i + 1]);
      account_key(stack_[i]);
      try {
        ObjectAccess::dict_set(dict, stack_[i], stack_[i + 1]);
      } catch (const TypeError& e) {
        fail(e.what());
      }
    }
    stack_.resize(first);
  }
  void add_to_set(Set& set, LoadInfo& info, std::size_t first) {
    reserve_more(set, set.items(), stack_.size() - first);
    for (std::size_t i = first; i < stack_.size(); ++i) {
      account(info, stack_[i]);
      account_key(stack_[i]);
      try {
        set.add(std::move(stack_[i]));
      } catch (const TypeError& e) {
        fail(e.what());
      }
    }
    stack_.resize(first);
  }
  // Builds a container of the items from `first` to the top, replacing them.
  template <class T, class Fill>
  void build(std::size_t first, Fill fill) {
    if (first > stack_.size()) fail("the stack is empty");
    Object object{T{}};
    fill(ObjectAccess::box<T>(object).value, ObjectAccess::box<T>(object).info);
    stack_.resize(first);
    push(std::move(object));
  }
  void build_tuple(std::size_t first) {
    if (first < stack_floor()) fail("the stack is empty");
    build<Tuple>(first, [&](Tuple& tuple, LoadInfo& info) {
      std::vector<Object> items;
      items.reserve(stack_.size() - first);
      for (std::size_t i = first; i < stack_.size(); ++i) {
        account(info, stack_[i]);
        items.push_back(std::move(stack_[i]));
      }
      tuple = Tuple(std::move(items));
    });
  }
  void build_list(std::size_t first) {
    build<List>(first, [&](List& list, LoadInfo& info) {
      list.reserve(stack_.size() - first);
      for (std::size_t i = first; i < stack_.size(); ++i) {
        account(info, stack_[i]);
        list.push_back(std::move(stack_[i]));
      }
    });
  }

  void put(std::uint64_t index) {
    if (index > memo_.size() + (input_.size() - at_)) fail("a memo index the input cannot reach");
    if (index >= memo_.size()) memo_.resize(static_cast<std::size_t>(index) + 1);
    memo_[static_cast<std::size_t>(index)] = top();
  }
  void get(std::uint64_t index) {
    if (index >= memo_.size() || !memo_[static_cast<std::size_t>(index)])
      fail("memo index " + std::to_string(index) + " was never stored");
    push_shared(*memo_[static_cast<std::size_t>(index)]);
  }
  void push_shared(Object object) {
    if (is_container(object)) info_of(object).shared = true;
    push(std::move(object));
  }

  // Runs one opcode; true at STOP.
  bool step(Action action, unsigned char code) {
    switch (action) {
      case Action::unknown: fail("not a pickle opcode");
      case Action::refuse_callable:
        fail("refused: it names a class or a function, and mp never imports or calls anything "
             "(only None, bool, int, float, str, bytes, list, tuple, dict and set load)");
      case Action::refuse_buffer: fail("refused: out-of-band buffers are not supported");
      case Action::refuse_text: fail("refused: a text opcode of protocol 0 (mp reads protocols 2 to 5)");
      case Action::proto: {
        const auto version = take_le(1);
        if (version > 5) fail("protocol " + std::to_string(version) + " is not supported (2 to 5 are)");
        return false;
      }
      case Action::frame:
        if (take_le(8) > input_.size() - at_) fail("a frame longer than the input");
        return false;
      case Action::stop:
        if (stack_.empty()) fail("the stack is empty");
        result_ = std::move(stack_.back());
        return true;
      case Action::none: push(Object()); return false;
      case Action::new_true: push(Object(true)); return false;
      case Action::new_false: push(Object(false)); return false;
      case Action::binint1: push(Object(take_le(1))); return false;
      case Action::binint2: push(Object(take_le(2))); return false;
      case Action::binint: push(Object(static_cast<std::int32_t>(static_cast<std::uint32_t>(take_le(4))))); return false;
      case Action::long1: push(Object::from_int_bytes(take_counted(1))); return false;
      case Action::long4: push(Object::from_int_bytes(take_counted(4))); return false;
      case Action::binfloat: {
        std::string_view bytes = take(8);
        std::uint64_t bits = 0;
        for (char c : bytes) bits = (bits << 8) | static_cast<unsigned char>(c);
        push(Object(std::bit_cast<double>(bits)));
        return false;
      }
      case Action::short_binunicode: push_str(take_counted(1)); return false;
      case Action::binunicode: push_str(take_counted(4)); return false;
      case Action::binunicode8: push_str(take_counted(8)); return false;
      case Action::short_binstring: push_ascii_str(take_counted(1)); return false;
      case Action::binstring: push_ascii_str(take_counted(4)); return false;
      case Action::short_binbytes: push(Object(Bytes(take_counted(1)))); return false;
      case Action::binbytes: push(Object(Bytes(take_counted(4)))); return false;
      case Action::binbytes8:
      case Action::bytearray8: push(Object(Bytes(take_counted(8)))); return false;
      case Action::empty_list: push(Object(List{})); return false;
      case Action::empty_tuple: push(Object(Tuple{})); return false;
      case Action::empty_dict: push(Object(Dict{})); return false;
      case Action::empty_set: push(Object(Set{})); return false;
      case Action::mark: marks_.push_back(stack_.size()); return false;
      case Action::append:
        if (stack_.size() < stack_floor() + 1) fail("the stack is empty");
        add_to_list(stack_.size() - 1);
        return false;
      case Action::appends: add_to_list(pop_mark()); return false;
      case Action::setitem:
        if (stack_.size() < stack_floor() + 2) fail("the stack is empty");
        add_to_dict(stack_.size() - 2);
        return false;
      case Action::setitems: add_to_dict(pop_mark()); return false;
      case Action::additems: {
        const std::size_t first = pop_mark();
        LoadInfo* info;
        Set& set = target_below<Set>(first, Kind::set, info);
        add_to_set(set, *info, first);
        return false;
      }
      case Action::frozenset: {
        const std::size_t first = pop_mark();
        build<Set>(first, [&](Set& set, LoadInfo& info) { add_to_set(set, info, first); });
        return false;
      }
      case Action::tuple: build_tuple(pop_mark()); return false;
      case Action::tuple1:
      case Action::tuple2:
      case Action::tuple3: {
        const std::size_t count = code - 0x84u;
        if (stack_.size() < stack_floor() + count) fail("the stack is empty");
        build_tuple(stack_.size() - count);
        return false;
      }
      case Action::list: build_list(pop_mark()); return false;
      case Action::dict: {
        const std::size_t first = pop_mark();
        stack_.insert(stack_.begin() + static_cast<std::ptrdiff_t>(first), Object(Dict{}));
        add_to_dict(first + 1);
        return false;
      }
      case Action::pop:
        if (stack_.size() > stack_floor())
          stack_.pop_back();
        else
          pop_mark();  // Python's POP of an empty frame discards the mark
        return false;
      case Action::pop_mark: stack_.resize(pop_mark()); return false;
      case Action::dup: push_shared(top()); return false;
      case Action::binput: put(take_le(1)); return false;
      case Action::long_binput: put(take_le(4)); return false;
      case Action::memoize: put(memo_.size()); return false;
      case Action::binget: get(take_le(1)); return false;
      case Action::long_binget: get(take_le(4)); return false;
    }
    fail("not a pickle opcode");
  }

  std::string_view input_;
  std::size_t at_ = 0;
  std::size_t opcode_at_ = 0;
  const std::uint64_t cost_limit_;
  std::uint64_t key_work_ = 0;
  static thread_local std::vector<Object> spare_stack;
  std::vector<Object>& stack_ = spare_stack;
  std::vector<std::size_t> marks_;
  std::vector<std::optional<Object>> memo_;
  Object result_;
};

thread_local std::vector<Object> Unpickler::spare_stack;

}  // namespace

void dump_into(std::string& out, const Object& object) {
  out += "\x80\x04";
  dump_value(out, object, 0);
  out += '.';
}

std::string dumps(const Object& object) {
  std::string out;
  dump_into(out, object);
  return out;
}

Object loads(std::string_view data) {
  if (data.empty()) throw SerializationError("pickle.loads: the pickle is empty");
  return Unpickler(data).run();
}

}  // namespace mp::pickle
