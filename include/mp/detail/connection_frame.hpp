// mp/detail/connection_frame.hpp: the wire format of Python's
// multiprocessing.connection (connection.py, _send_bytes/_recv_bytes). A frame
// is a 4-byte big-endian signed length and the payload; a payload longer than
// 0x7fffffff bytes is announced by a length of -1 followed by an 8-byte
// big-endian unsigned length.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mp::detail {

inline constexpr std::uint64_t kLargestShortFrame = 0x7fffffff;
inline constexpr std::size_t kShortHeaderSize = 4;
inline constexpr std::size_t kLongHeaderSize = 12;

struct FrameHeader {
  std::array<unsigned char, kLongHeaderSize> bytes{};
  std::size_t size = 0;  // 4 or 12
};

FrameHeader encode_frame_header(std::uint64_t payload_size) noexcept;

struct DecodedHeader {
  std::size_t header_size;
  std::uint64_t payload_size;
};

// Reads a header from the front of `bytes`: nullopt while more bytes are
// needed; how many are still missing is header_bytes_missing(bytes). A negative
// length other than -1 is not a frame: throws mp::OSError(EPROTO) naming `object`.
std::optional<DecodedHeader> decode_frame_header(std::string_view bytes, std::string_view object);
std::size_t header_bytes_missing(std::string_view bytes) noexcept;

}  // namespace mp::detail
