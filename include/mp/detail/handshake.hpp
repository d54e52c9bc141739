// mp/detail/handshake.hpp: multiprocessing.connection's authkey handshake,
// both roles, byte for byte as CPython 3.12+ does it, with the legacy
// HMAC-MD5 form of CPython 3.11 and older understood in both directions.
//
//   challenger: "#CHALLENGE#" + "{sha256}" + 40 random bytes
//   responder:  "{sha256}" + HMAC-SHA256(key, "{sha256}" + random)   (MAC covers the prefix)
//               or a bare 16-byte HMAC-MD5 for a bare 20-byte (legacy) challenge
//   challenger: "#WELCOME#" or "#FAILURE#"
// The listener challenges first, then answers the client's challenge.
//
// Handshake is the protocol alone, over the raw bytes of the stream (frames
// included) and with no I/O of its own: a Listener drives many at once over
// non-blocking sockets, a Client drives one, and the fuzzer feeds it anything.
// It never asks for a byte past its own last message, so what the peer sends
// right after the handshake stays in the socket for the Connection.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mp::detail {

// Every handshake message is capped at this many payload bytes, as in Python.
inline constexpr std::size_t handshake_message_cap = 256;

class Handshake {
 public:
  enum class Role { listener, client };
  Handshake(Role role, std::string authkey);

  // Framed bytes to write to the peer now; sent(n) drops the first n of them.
  std::string_view outgoing() const noexcept { return outgoing_; }
  void sent(std::size_t count) noexcept { outgoing_.erase(0, count); }

  // How many bytes to read next: exactly what the message being received
  // still lacks (0 when the handshake waits for nothing).
  std::size_t wanted() const noexcept;
  // Bytes from the peer, at most wanted(). Any fault of the peer (a bad
  // frame, a wrong digest, a protocol error) throws mp::AuthenticationError
  // with Python's wording where Python has one and ends the handshake;
  // #FAILURE# is then in outgoing() where Python sends it.
  void received(std::string_view bytes);

  // Both sides are authenticated and everything we had to say is in outgoing()
  // or already sent; the connection is ready once outgoing() is empty.
  bool finished() const noexcept { return step_ == Step::finished; }

 private:
  enum class Step { await_response, await_challenge, await_welcome, finished, failed };
  void challenge();
  void take_bytes(std::string_view bytes);
  void on_message(std::string_view message);
  void queue_message(std::string_view message);

  Role role_;
  std::string authkey_;
  Step step_;
  std::string challenge_;  // what we asked the peer to sign
  std::string incoming_;   // the frame being received: header, then payload
  std::string outgoing_;
};

// HMAC(key, message) with a digest Python allows (md5, sha256, sha384,
// sha3_256, sha3_384); empty when the name is not one of them.
std::string hmac_digest(std::string_view digest_name, std::string_view key,
                        std::string_view message);

}  // namespace mp::detail
