// lib/object.cpp: mp::Object (Python values), its repr, equality and hash,
// and the hash-indexed Dict and Set.
//
// Invariants: an int in the int64 range is always held as one (never as
// bytes), and a big int's bytes are the fewest two's-complement bytes that
// hold it, so equal ints have one representation and compare bytewise. A
// float equal to an int hashes as that int. A str holds valid UTF-8 without
// surrogates. A str or bytes of at most 15 bytes is held inline (text_,
// bytes_), a longer one in a box.
// A shared box (heap_) is never changed: held_for_change copies it first
// unless this Object is its only owner.
#include "mp/object.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>

namespace mp {

namespace {

template <class T>
std::shared_ptr<void> make_box(T value) {
  return std::make_shared<detail::Box<T>>(std::move(value));
}

// ---- UTF-8 ------------------------------------------------------------------

// The code point at text[at], advancing `at`; -1 for an invalid sequence
// (overlong, surrogate, beyond U+10FFFF, truncated).
std::int32_t decode_utf8(std::string_view text, std::size_t& at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) {
    ++at;
    return lead;
  }
  std::size_t length;
  std::int32_t code;
  std::int32_t minimum;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, code = lead & 0x1F, minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, code = lead & 0x0F, minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, code = lead & 0x07, minimum = 0x10000;
  } else {
    return -1;
  }
  if (text.size() - at < length) return -1;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) return -1;
    code = (code << 6) | (byte(at + i) & 0x3F);
  }
  if (code < minimum || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return -1;
  at += length;
  return code;
}

// A little-endian word at `at`, unaligned.
template <class Word>
std::uint64_t load(const char* at) {
  Word word;
  std::memcpy(&word, at, sizeof word);
  return word;
}

// True when no byte has its high bit set (most text: skips UTF-8 decoding).
bool ascii(std::string_view text) {
  std::uint64_t high_bits = 0;
  std::size_t at = 0;
  for (; text.size() - at >= 8; at += 8) high_bits |= load<std::uint64_t>(text.data() + at);
  if (text.size() - at >= 4) {  // 4 to 7 left: two overlapping words
    high_bits |= load<std::uint32_t>(text.data() + at) | load<std::uint32_t>(text.data() + text.size() - 4);
  } else {
    for (; at < text.size(); ++at) high_bits |= static_cast<unsigned char>(text[at]);
  }
  return (high_bits & 0x8080808080808080ull) == 0;
}

bool valid_utf8(std::string_view text) {
  if (ascii(text)) return true;
  std::size_t at = 0;
  while (at < text.size()) {
    // ASCII runs are the common case: skip them eight bytes at a time.
    if (text.size() - at >= 8) {
      if ((load<std::uint64_t>(text.data() + at) & 0x8080808080808080ull) == 0) {
        at += 8;
        continue;
      }
    }
    if (static_cast<unsigned char>(text[at]) < 0x80)
      ++at;
    else if (decode_utf8(text, at) < 0)
      return false;
  }
  return true;
}

// Python's str.isprintable() for a code point, exact for ASCII and Latin-1
// and for the separator, format and private-use ranges beyond (Python asks
// its Unicode database; unassigned code points other than the noncharacters
// count as printable here).
bool printable(std::int32_t code) {
  if (code < 0x7F) return code >= 0x20;
  if (code <= 0xA0 || code == 0xAD) return false;
  struct Range {
    std::int32_t first, last;
  };
  static constexpr Range non_printable[] = {
      {0x0600, 0x0605},   {0x061C, 0x061C},   {0x06DD, 0x06DD},   {0x070F, 0x070F},
      {0x08E2, 0x08E2},   {0x1680, 0x1680},   {0x180E, 0x180E},   {0x2000, 0x200F},
      {0x2028, 0x202F},   {0x205F, 0x2064},   {0x2066, 0x206F},   {0x3000, 0x3000},
      {0xE000, 0xF8FF},   {0xFDD0, 0xFDEF},   {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},
      {0x110BD, 0x110BD}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
      {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF},
  };
  if ((code & 0xFFFE) == 0xFFFE) return false;  // the last two of every plane
  for (const Range& range : non_printable)
    if (code >= range.first && code <= range.last) return false;
  return true;
}

void append_hex(std::string& out, std::uint32_t value, int digits) {
  static constexpr char hex[] = "0123456789abcdef";
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += hex[(value >> shift) & 0xF];
}

// Python's choice: single quotes unless the text holds ' and no ".
char quote_for(std::string_view text) {
  return text.find('\'') != std::string_view::npos && text.find('"') == std::string_view::npos ? '"'
                                                                                               : '\'';
}

// The escapes str and bytes share; false for a character that needs more.
bool append_common_escape(std::string& out, std::uint32_t code, char quote) {
  switch (code) {
    case '\t': out += "\\t"; return true;
    case '\n': out += "\\n"; return true;
    case '\r': out += "\\r"; return true;
    case '\\': out += "\\\\"; return true;
    default: break;
  }
  if (code == static_cast<unsigned char>(quote)) {
    out += '\\';
    out += quote;
    return true;
  }
  if (code < 0x20 || code == 0x7F) {
    out += "\\x";
    append_hex(out, code, 2);
    return true;
  }
  return false;
}

}  // namespace

namespace detail {

// Python's repr(str).
void append_str_repr(std::string& out, std::string_view text) {
  const char quote = quote_for(text);
  out += quote;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t start = at;
    const auto code = static_cast<std::uint32_t>(decode_utf8(text, at));
    if (append_common_escape(out, code, quote)) continue;
    if (printable(static_cast<std::int32_t>(code))) {
      out.append(text.substr(start, at - start));
    } else if (code <= 0xFF) {
      out += "\\x";
      append_hex(out, code, 2);
    } else if (code <= 0xFFFF) {
      out += "\\u";
      append_hex(out, code, 4);
    } else {
      out += "\\U";
      append_hex(out, code, 8);
    }
  }
  out += quote;
}

}  // namespace detail

namespace {

using detail::append_str_repr;

void append_bytes_repr(std::string& out, std::string_view data) {
  const char quote = quote_for(data);
  out += 'b';
  out += quote;
  for (char c : data) {
    const auto code = static_cast<unsigned char>(c);
    if (append_common_escape(out, code, quote)) continue;
    if (code < 0x7F) {
      out += c;
    } else {
      out += "\\x";
      append_hex(out, code, 2);
    }
  }
  out += quote;
}

// Python's repr(float): the shortest digits that round-trip, positional for
// exponents from -4 to 15, else d.ddde+XX.
void append_float_repr(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "nan";
    return;
  }
  if (std::isinf(value)) {
    out += value < 0 ? "-inf" : "inf";
    return;
  }
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  std::string_view scientific(buffer, static_cast<std::size_t>(result.ptr - buffer));
  const std::size_t e = scientific.find('e');
  std::string_view mantissa = scientific.substr(0, e);
  int exponent = std::atoi(std::string(scientific.substr(e + 1)).c_str());
  if (mantissa.front() == '-') {
    out += '-';
    mantissa.remove_prefix(1);
  }
  std::string digits;
  for (char c : mantissa)
    if (c != '.') digits += c;
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0.";
      out.append(static_cast<std::size_t>(-exponent - 1), '0');
      out += digits;
    } else {
      const auto integer_digits = static_cast<std::size_t>(exponent) + 1;
      if (digits.size() <= integer_digits) {
        out += digits;
        out.append(integer_digits - digits.size(), '0');
        out += ".0";
      } else {
        out.append(digits, 0, integer_digits);
        out += '.';
        out.append(digits, integer_digits);
      }
    }
  } else {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += exponent < 0 ? "e-" : "e+";
    const int magnitude = std::abs(exponent);
    if (magnitude < 10) out += '0';
    out += std::to_string(magnitude);
  }
}

// ---- big ints: two's-complement bytes, little-endian ----------------------

bool negative_bytes(std::string_view bytes) {
  return !bytes.empty() && (static_cast<unsigned char>(bytes.back()) & 0x80);
}

// Drops the high bytes that only repeat the sign.
void trim_sign_bytes(std::string& bytes) {
  while (bytes.size() > 1) {
    const auto last = static_cast<unsigned char>(bytes.back());
    const bool sign_of_previous = static_cast<unsigned char>(bytes[bytes.size() - 2]) & 0x80;
    if ((last == 0x00 && !sign_of_previous) || (last == 0xFF && sign_of_previous))
      bytes.pop_back();
    else
      break;
  }
  if (bytes.size() == 1 && bytes[0] == 0) bytes.clear();
}

void negate_bytes(std::string& bytes) {
  unsigned carry = 1;
  for (char& c : bytes) {
    unsigned sum = (~static_cast<unsigned char>(c) & 0xFFu) + carry;
    c = static_cast<char>(sum & 0xFF);
    carry = sum >> 8;
  }
}

std::string small_int_bytes(std::int64_t value) {
  std::string bytes(8, '\0');
  auto bits = static_cast<std::uint64_t>(value);
  for (char& c : bytes) {
    c = static_cast<char>(bits & 0xFF);
    bits >>= 8;
  }
  trim_sign_bytes(bytes);
  return bytes;
}

// The bytes of an integral double whose magnitude is at least 2^63.
std::string big_int_bytes_of(double value) {
  int exponent = 0;
  const double fraction = std::frexp(std::fabs(value), &exponent);
  auto mantissa = static_cast<std::uint64_t>(std::ldexp(fraction, 53));  // exact: 53 bits
  const int shift = exponent - 53;                                       // >= 11 here
  std::string bytes(static_cast<std::size_t>(shift / 8) + 10, '\0');
  // mantissa << shift, written byte by byte
  const int byte_shift = shift / 8, bit_shift = shift % 8;
  unsigned __int128 wide = static_cast<unsigned __int128>(mantissa) << bit_shift;
  for (std::size_t i = 0; wide != 0; ++i, wide >>= 8)
    bytes[static_cast<std::size_t>(byte_shift) + i] = static_cast<char>(static_cast<unsigned>(wide & 0xFF));
  if (value < 0) negate_bytes(bytes);
  trim_sign_bytes(bytes);
  return bytes;
}

// Python's str(int) for bytes, with its 4300-digit limit.
std::string big_int_decimal(std::string bytes) {
  constexpr std::size_t max_digits = 4300;
  // 4300 digits need at most 14285 bits: refuse longer ones before dividing.
  if (bytes.size() * 8 > 14300)
    throw ValueError("Object.repr: Exceeds the limit (4300 digits) for integer string conversion");
  const bool negative = negative_bytes(bytes);
  if (negative) negate_bytes(bytes);
  std::vector<std::uint32_t> limbs((bytes.size() + 3) / 4, 0);  // little-endian base 2^32
  for (std::size_t i = 0; i < bytes.size(); ++i)
    limbs[i / 4] |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << (8 * (i % 4));
  std::string digits;
  while (!limbs.empty()) {
    std::uint64_t remainder = 0;
    for (std::size_t i = limbs.size(); i-- > 0;) {
      const std::uint64_t current = (remainder << 32) | limbs[i];
      limbs[i] = static_cast<std::uint32_t>(current / 1000000000u);
      remainder = current % 1000000000u;
    }
    while (!limbs.empty() && limbs.back() == 0) limbs.pop_back();
    for (int i = 0; i < 9 && (remainder != 0 || !limbs.empty()); ++i) {
      digits += static_cast<char>('0' + remainder % 10);
      remainder /= 10;
    }
  }
  if (digits.size() > max_digits)
    throw ValueError("Object.repr: Exceeds the limit (4300 digits) for integer string conversion");
  if (negative) digits += '-';
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::size_t mix(std::size_t seed, std::size_t value) {
  return seed ^ (value + 0x9E3779B97F4A7C15ull + (seed << 6) + (seed >> 2));
}

constexpr double two_to_63 = 9223372036854775808.0;

bool integral_in_int64(double value) {
  return value >= -two_to_63 && value < two_to_63 && value == std::trunc(value);
}

}  // namespace

// ---- construction and access -------------------------------------------------

void Object::hold_str(std::string_view text, std::string* owned) {
  if (!valid_utf8(text))
    throw ValueError("Object: a str must be UTF-8 text without surrogates (use Bytes for binary data)");
  if (text.size() <= inline_max) {
    new (&text_) std::string(text);
    storage_ = Storage::text;
  } else {
    hold_in_heap(make_box(owned ? std::move(*owned) : std::string(text)));
  }
}

Object::Object(std::string_view value) : kind_(Kind::str) { hold_str(value, nullptr); }
Object::Object(std::string value) : kind_(Kind::str) { hold_str(value, &value); }
Object::Object(Bytes value) : kind_(Kind::bytes) {
  if (value.size() <= inline_max) {
    new (&bytes_) Bytes(std::string_view(value.data()));
    storage_ = Storage::bytes;
  } else {
    hold_in_heap(make_box(std::move(value)));
  }
}
Object::Object(List value) : kind_(Kind::list), storage_(Storage::heap), heap_(make_box(std::move(value))) {}
Object::Object(Tuple value) : kind_(Kind::tuple), storage_(Storage::heap), heap_(make_box(std::move(value))) {}
Object::Object(Dict value) : kind_(Kind::dict), storage_(Storage::heap), heap_(make_box(std::move(value))) {}
Object::Object(Set value) : kind_(Kind::set), storage_(Storage::heap), heap_(make_box(std::move(value))) {}

Object Object::from_uint64(std::uint64_t value) {
  std::string bytes(9, '\0');  // a zero ninth byte keeps it positive
  for (std::size_t i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return from_int_bytes(bytes);
}

Object Object::from_int_bytes(std::string_view bytes) {
  std::string trimmed(bytes);
  trim_sign_bytes(trimmed);
  Object result(std::int64_t{0});
  if (trimmed.size() <= 8) {
    std::uint64_t bits = negative_bytes(trimmed) ? ~std::uint64_t{0} : 0;
    for (std::size_t i = 0; i < trimmed.size(); ++i) {
      bits &= ~(std::uint64_t{0xFF} << (8 * i));
      bits |= std::uint64_t{static_cast<unsigned char>(trimmed[i])} << (8 * i);
    }
    result.scalar_.integer = static_cast<std::int64_t>(bits);
  } else {
    result.big_ = true;
    result.hold_in_heap(make_box(std::move(trimmed)));
  }
  return result;
}

std::string Object::int_bytes() const {
  if (kind_ == Kind::boolean || (kind_ == Kind::integer && !big_)) return small_int_bytes(scalar_.integer);
  if (kind_ == Kind::integer) return detail::ObjectAccess::box<std::string>(*this).value;
  throw_type_error("int");
}

std::string_view Object::kind_name(Kind kind) noexcept {
  static constexpr std::string_view names[] = {"NoneType", "bool", "int",  "float", "str",
                                               "bytes",    "list", "tuple", "dict", "set"};
  return names[static_cast<std::size_t>(kind)];
}

void Object::throw_type_error(std::string_view wanted) const {
  throw TypeError("Object: expected " + std::string(wanted) + ", got " + std::string(type_name()));
}

std::int64_t Object::integer_in_range(std::int64_t low, std::uint64_t high) const {
  if (kind_ != Kind::integer && kind_ != Kind::boolean) throw_type_error("int");
  const std::int64_t value = scalar_.integer;
  const bool fits = !big_ && value >= low &&
                    (value < 0 || static_cast<std::uint64_t>(value) <= high);
  if (!fits) {
    // A uint64 above INT64_MAX is a big int of at most 8 magnitude bytes.
    if (big_ && high > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      const std::string& bytes = detail::ObjectAccess::box<std::string>(*this).value;
      if (bytes.size() == 9 && bytes[8] == 0) {
        std::uint64_t bits = 0;
        for (std::size_t i = 0; i < 8; ++i)
          bits |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
        return static_cast<std::int64_t>(bits);  // the caller casts it back to unsigned
      }
    }
    throw OverflowError("Object: int " + repr() + " does not fit the requested C++ type");
  }
  return value;
}

double Object::to_double() const {
  if (kind_ == Kind::floating) return scalar_.floating;
  if (kind_ == Kind::boolean || (kind_ == Kind::integer && !big_))
    return static_cast<double>(scalar_.integer);
  if (kind_ != Kind::integer) throw_type_error("float");
  std::string bytes = detail::ObjectAccess::box<std::string>(*this).value;
  const bool negative = negative_bytes(bytes);
  if (negative) negate_bytes(bytes);
  long double magnitude = 0;
  for (std::size_t i = bytes.size(); i-- > 0;) magnitude = magnitude * 256 + static_cast<unsigned char>(bytes[i]);
  if (magnitude > static_cast<long double>(std::numeric_limits<double>::max()))
    throw OverflowError("Object: int too large to convert to float");
  return static_cast<double>(negative ? -magnitude : magnitude);
}

template <class T>
T& Object::held_for_change(Kind kind) {
  if (kind_ != kind) throw_type_error(kind_name(kind));
  if (heap_.use_count() > 1) heap_ = make_box(T(detail::ObjectAccess::box<T>(*this).value));
  return detail::ObjectAccess::box<T>(*this).value;
}

std::size_t Object::size() const {
  switch (kind_) {
    case Kind::str: {
      const std::string& text = held<std::string>(Kind::str);
      return static_cast<std::size_t>(
          std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xC0) != 0x80; }));
    }
    case Kind::bytes: return held<Bytes>(Kind::bytes).size();
    case Kind::list: return held<List>(Kind::list).size();
    case Kind::tuple: return held<Tuple>(Kind::tuple).size();
    case Kind::dict: return held<Dict>(Kind::dict).size();
    case Kind::set: return held<Set>(Kind::set).size();
    default: throw TypeError("Object: object of type '" + std::string(type_name()) + "' has no len()");
  }
}

namespace {
std::size_t checked_index(std::int64_t index, std::size_t size, std::string_view type) {
  const auto signed_size = static_cast<std::int64_t>(size);
  if (index < 0) index += signed_size;
  if (index < 0 || index >= signed_size)
    throw IndexError("Object: " + std::string(type) + " index out of range");
  return static_cast<std::size_t>(index);
}
}  // namespace

const Object& Object::operator[](std::int64_t index) const {
  if (kind_ == Kind::tuple) {
    const auto& items = held<Tuple>(Kind::tuple).items();
    return items[checked_index(index, items.size(), "tuple")];
  }
  if (kind_ == Kind::dict) return (*this)[Object(index)];
  const List& items = held<List>(Kind::list);
  return items[checked_index(index, items.size(), "list")];
}

Object& Object::operator[](std::int64_t index) {
  if (kind_ == Kind::tuple) throw TypeError("Object: 'tuple' object does not support item assignment");
  if (kind_ == Kind::dict) return (*this)[Object(index)];
  List& items = held_for_change<List>(Kind::list);
  return items[checked_index(index, items.size(), "list")];
}

const Object& Object::operator[](const Object& key) const {
  if (kind_ != Kind::dict && (key.kind_ == Kind::integer || key.kind_ == Kind::boolean) && !key.big_)
    return (*this)[key.scalar_.integer];
  return held<Dict>(Kind::dict).at(key);
}

Object& Object::operator[](const Object& key) {
  if (kind_ != Kind::dict && (key.kind_ == Kind::integer || key.kind_ == Kind::boolean) && !key.big_)
    return (*this)[key.scalar_.integer];
  return held_for_change<Dict>(Kind::dict)[key];
}

// ---- equality and hash --------------------------------------------------------

namespace {

bool is_number(Object::Kind kind) {
  return kind == Object::Kind::boolean || kind == Object::Kind::integer || kind == Object::Kind::floating;
}

// An int (small or big) against a double, exactly.
bool int_equals_double(const Object& integer, double value) {
  using Access = detail::ObjectAccess;
  if (!Access::is_big_int(integer))
    return integral_in_int64(value) && static_cast<std::int64_t>(value) == Access::small_int(integer);
  if (!std::isfinite(value) || value != std::trunc(value) || integral_in_int64(value)) return false;
  return big_int_bytes_of(value) == Access::box<std::string>(integer).value;
}

bool numbers_equal(const Object& a, const Object& b) {
  using Access = detail::ObjectAccess;
  const bool a_float = a.kind() == Object::Kind::floating, b_float = b.kind() == Object::Kind::floating;
  if (a_float && b_float) return Access::floating(a) == Access::floating(b);
  if (a_float) return int_equals_double(b, Access::floating(a));
  if (b_float) return int_equals_double(a, Access::floating(b));
  if (Access::is_big_int(a) != Access::is_big_int(b)) return false;
  if (!Access::is_big_int(a)) return Access::small_int(a) == Access::small_int(b);
  return Access::box<std::string>(a).value == Access::box<std::string>(b).value;
}

// The hash of str and bytes (wyhash's construction: words folded through
// 64x64->128-bit products), good in the low bits that index a table. A third
// of the cost of libstdc++'s std::hash for the short keys dicts mostly hold.
std::uint64_t fold(std::uint64_t a, std::uint64_t b) {
  const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
  return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
}

std::size_t hash_bytes(std::string_view bytes) {
  constexpr std::uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull;
  const char* at = bytes.data();
  std::size_t left = bytes.size();
  std::uint64_t seed = k0 ^ left, a = 0, b = 0;
  if (left > 16) {
    for (; left > 16; at += 16, left -= 16)
      seed = fold(load<std::uint64_t>(at) ^ k1, load<std::uint64_t>(at + 8) ^ seed);
    a = load<std::uint64_t>(at + left - 16);
    b = load<std::uint64_t>(at + left - 8);
  } else if (left >= 4) {
    const std::size_t step = (left >> 3) << 2;  // 0 or 4: two overlapping pairs of 4-byte words
    a = (load<std::uint32_t>(at) << 32) | load<std::uint32_t>(at + step);
    b = (load<std::uint32_t>(at + left - 4) << 32) | load<std::uint32_t>(at + left - 4 - step);
  } else if (left > 0) {
    a = (std::uint64_t{static_cast<unsigned char>(at[0])} << 16) |
        (std::uint64_t{static_cast<unsigned char>(at[left >> 1])} << 8) | static_cast<unsigned char>(at[left - 1]);
  }
  return fold(k1 ^ bytes.size(), fold(a ^ k1, b ^ seed));
}

}  // namespace

bool operator==(const Object& a, const Object& b) {
  using Kind = Object::Kind;
  if (is_number(a.kind_) && is_number(b.kind_)) return numbers_equal(a, b);
  if (a.kind_ != b.kind_) return false;
  if (a.storage_ == Object::Storage::heap && b.storage_ == Object::Storage::heap && a.heap_ == b.heap_) {
    if (a.kind_ != Kind::list && a.kind_ != Kind::tuple && a.kind_ != Kind::dict && a.kind_ != Kind::set)
      return true;  // one str or bytes; a container may hold a nan, unequal to itself
  }
  switch (a.kind_) {
    case Kind::none: return true;
    case Kind::str: return a.as<std::string>() == b.as<std::string>();
    case Kind::bytes: return a.as<Bytes>() == b.as<Bytes>();
    case Kind::list: return a.as<List>() == b.as<List>();
    case Kind::tuple: return a.as<Tuple>() == b.as<Tuple>();
    case Kind::dict: return a.as<Dict>() == b.as<Dict>();
    case Kind::set: return a.as<Set>() == b.as<Set>();
    default: return false;  // numbers were compared above
  }
}

std::size_t Object::hash() const {
  switch (kind_) {
    case Kind::none: return 0x5bd1e995;
    case Kind::boolean: return std::hash<std::int64_t>{}(scalar_.integer);
    case Kind::integer:
      return big_ ? hash_bytes(held_big()) : std::hash<std::int64_t>{}(scalar_.integer);
    case Kind::floating: {
      const double value = scalar_.floating;
      if (integral_in_int64(value)) return std::hash<std::int64_t>{}(static_cast<std::int64_t>(value));
      if (std::isfinite(value) && value == std::trunc(value)) return hash_bytes(big_int_bytes_of(value));
      return std::hash<double>{}(value);
    }
    case Kind::str: return hash_bytes(as<std::string>());
    case Kind::bytes: return hash_bytes(as<Bytes>().data());
    case Kind::tuple: {
      std::size_t seed = 0x345678;
      for (const Object& item : as<Tuple>()) seed = mix(seed, item.hash());
      return seed;
    }
    default: throw TypeError("Object: unhashable type: '" + std::string(type_name()) + "'");
  }
}

const std::string& Object::held_big() const { return detail::ObjectAccess::box<std::string>(*this).value; }

// ---- repr -----------------------------------------------------------------------

namespace {

void append_repr(std::string& out, const Object& object);

template <class Range, class Each>
void append_sequence(std::string& out, const Range& items, char open, char close, Each each) {
  out += open;
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += ", ";
    first = false;
    each(item);
  }
  out += close;
}

void append_repr(std::string& out, const Object& object) {
  using Kind = Object::Kind;
  const auto element = [&out](const Object& item) { append_repr(out, item); };
  switch (object.kind()) {
    case Kind::none: out += "None"; break;
    case Kind::boolean: out += object.as<bool>() ? "True" : "False"; break;
    case Kind::integer:
      out += detail::ObjectAccess::is_big_int(object)
                 ? big_int_decimal(object.int_bytes())
                 : std::to_string(detail::ObjectAccess::small_int(object));
      break;
    case Kind::floating: append_float_repr(out, object.as<double>()); break;
    case Kind::str: append_str_repr(out, object.as<std::string>()); break;
    case Kind::bytes: append_bytes_repr(out, object.as<Bytes>().data()); break;
    case Kind::list: append_sequence(out, object.as<List>(), '[', ']', element); break;
    case Kind::tuple: {
      const Tuple& tuple = object.as<Tuple>();
      append_sequence(out, tuple, '(', ')', element);
      if (tuple.size() == 1) out.insert(out.size() - 1, ",");
      break;
    }
    case Kind::dict:
      append_sequence(out, object.as<Dict>(), '{', '}', [&out](const Dict::Item& item) {
        append_repr(out, item.key);
        out += ": ";
        append_repr(out, item.value);
      });
      break;
    case Kind::set:
      if (object.as<Set>().empty())
        out += "set()";
      else
        append_sequence(out, object.as<Set>(), '{', '}', element);
      break;
  }
}

}  // namespace

std::string Object::repr() const {
  std::string out;
  append_repr(out, *this);
  return out;
}

// ---- Tuple, Dict, Set -------------------------------------------------------------

const Object& Tuple::operator[](std::size_t index) const {
  if (index >= items_.size()) throw IndexError("Tuple: tuple index out of range");
  return items_[index];
}

namespace detail {

namespace {
constexpr std::size_t small_table = 8;
}

void OrderedIndex::append(std::size_t hash) {
  if (hashes_.size() >= std::numeric_limits<std::uint32_t>::max() - 1)
    throw OverflowError("Object: a dict or set holds at most 2^32 - 2 entries");
  hashes_.push_back(hash);
  const std::size_t count = hashes_.size();
  if (count <= small_table && slots_.empty()) return;  // scanned; a reserved table indexes every key
  if (count * 2 > slots_.size()) {
    rebuild(std::bit_ceil(count * 2));
    return;
  }
  const std::size_t mask = slots_.size() - 1;
  std::size_t slot = hash & mask;
  while (slots_[slot] != 0) slot = (slot + 1) & mask;
  slots_[slot] = static_cast<std::uint32_t>(count);
}

void OrderedIndex::rebuild(std::size_t slot_count) {
  slots_.assign(slot_count, 0);
  const std::size_t mask = slot_count - 1;
  for (std::size_t position = 0; position < hashes_.size(); ++position) {
    std::size_t slot = hashes_[position] & mask;
    while (slots_[slot] != 0) slot = (slot + 1) & mask;
    slots_[slot] = static_cast<std::uint32_t>(position + 1);
  }
}

void OrderedIndex::erase(std::size_t position) {
  hashes_.erase(hashes_.begin() + static_cast<std::ptrdiff_t>(position));
  if (hashes_.size() <= small_table)
    slots_.clear();
  else
    rebuild(slots_.size());
}

void OrderedIndex::reserve(std::size_t count) {
  hashes_.reserve(count);
  if (count > small_table && count * 2 > slots_.size()) rebuild(std::bit_ceil(count * 2));
}

void OrderedIndex::clear() noexcept {
  hashes_.clear();
  slots_.clear();
}

}  // namespace detail

namespace {
// Indexes the entry just appended to `items`, or takes it back if the index
// cannot grow, so the two never disagree.
template <class Items>
void append_to_index(Items& items, detail::OrderedIndex& index, std::size_t hash) {
  try {
    index.append(hash);
  } catch (...) {
    items.pop_back();
    throw;
  }
}
}  // namespace

Dict::Dict(std::initializer_list<Item> items) {
  reserve(items.size());
  for (const Item& item : items) set(item.key, item.value);
}

std::optional<std::size_t> Dict::position_of(const Object& key, std::size_t hash) const {
  return index_.find(hash, [&](std::size_t position) { return items_[position].key == key; });
}

bool Dict::contains(const Object& key) const { return find(key) != nullptr; }

const Object* Dict::find(const Object& key) const {
  auto position = position_of(key, key.hash());
  return position ? &items_[*position].value : nullptr;
}

const Object& Dict::at(const Object& key) const {
  if (const Object* value = find(key)) return *value;
  throw KeyError("Dict: key " + key.repr() + " is not there");
}

void Dict::set(Object key, Object value) { set_from(key, value); }

void Dict::set_from(Object& key, Object& value) {
  const std::size_t hash = key.hash();
  if (auto position = position_of(key, hash)) {
    items_[*position].value = std::move(value);
    return;
  }
  // Moved into a new item of two Nones: one move each, where a DictItem
  // temporary would cost two.
  Item& item = items_.emplace_back();
  item.key = std::move(key);
  item.value = std::move(value);
  append_to_index(items_, index_, hash);
}

Object& Dict::operator[](const Object& key) {
  const std::size_t hash = key.hash();
  if (auto position = position_of(key, hash)) return items_[*position].value;
  items_.push_back({key, Object()});
  append_to_index(items_, index_, hash);
  return items_.back().value;
}

bool Dict::erase(const Object& key) {
  auto position = position_of(key, key.hash());
  if (!position) return false;
  items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(*position));
  index_.erase(*position);
  return true;
}

void Dict::reserve(std::size_t count) {
  items_.reserve(count);
  index_.reserve(count);
}

bool Dict::operator==(const Dict& other) const {
  if (size() != other.size()) return false;
  for (const Item& item : items_) {
    const Object* theirs = other.find(item.key);
    if (theirs == nullptr || !(*theirs == item.value)) return false;
  }
  return true;
}

Set::Set(std::initializer_list<Object> items) {
  reserve(items.size());
  for (const Object& item : items) add(item);
}

std::optional<std::size_t> Set::position_of(const Object& item, std::size_t hash) const {
  return index_.find(hash, [&](std::size_t position) { return items_[position] == item; });
}

bool Set::contains(const Object& item) const { return position_of(item, item.hash()).has_value(); }

bool Set::add(Object item) {
  const std::size_t hash = item.hash();
  if (position_of(item, hash)) return false;
  items_.push_back(std::move(item));
  append_to_index(items_, index_, hash);
  return true;
}

bool Set::erase(const Object& item) {
  auto position = position_of(item, item.hash());
  if (!position) return false;
  items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(*position));
  index_.erase(*position);
  return true;
}

void Set::reserve(std::size_t count) {
  items_.reserve(count);
  index_.reserve(count);
}

bool Set::operator==(const Set& other) const {
  return size() == other.size() &&
         std::all_of(items_.begin(), items_.end(), [&](const Object& item) { return other.contains(item); });
}

}  // namespace mp
