// mp/detail/handshake.hpp: multiprocessing.connection's authkey handshake,
// both roles, byte for byte as CPython 3.12+ does it, with the legacy
// HMAC-MD5 form of CPython 3.11 and older understood in both directions.
//
//   challenger: "#CHALLENGE#" + "{sha256}" + 40 random bytes
//   responder:  "{sha256}" + HMAC-SHA256(key, "{sha256}" + random)   (MAC covers the prefix)
//               or a bare 16-byte HMAC-MD5 for a bare 20-byte (legacy) challenge
//   challenger: "#WELCOME#" or "#FAILURE#"
// Every message is read with a cap of 256 bytes, as in Python.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mp::detail {

// Where handshake messages come from and go to: a framed connection in real
// life, canned bytes in tests and fuzzers.
class HandshakeChannel {
 public:
  virtual ~HandshakeChannel() = default;
  virtual void send_message(std::string_view message) = 0;
  // Throws mp::AuthenticationError if the next message is longer than max_length.
  virtual std::string recv_message(std::size_t max_length) = 0;
};

inline constexpr std::size_t handshake_message_cap = 256;

// The listener's side first, then the client's; both throw
// mp::AuthenticationError with Python's wording on a wrong key.
void deliver_challenge(HandshakeChannel& channel, std::string_view authkey);
void answer_challenge(HandshakeChannel& channel, std::string_view authkey);

// HMAC(key, message) with a digest Python allows (md5, sha256, sha384,
// sha3_256, sha3_384); empty when the name is not one of them.
std::string hmac_digest(std::string_view digest_name, std::string_view key,
                        std::string_view message);

}  // namespace mp::detail
