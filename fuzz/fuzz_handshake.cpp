// Fuzzes both roles of the authkey handshake against a peer that says
// anything: the fuzz input is the raw byte stream the peer sends (frame
// headers included), handed over in pieces no larger than the handshake asks
// for. Either role must end in success or mp::AuthenticationError, never a
// crash, a hang, a read past its own last message or an allocation the peer
// asked for.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mp/detail/handshake.hpp"
#include "mp/errors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto role = (data[0] & 1) ? mp::detail::Handshake::Role::listener
                                  : mp::detail::Handshake::Role::client;
  std::string key = (data[0] & 2) ? "secret" : "";
  // Bits 2-7: the size of each piece (0: as much as the handshake wants).
  const std::size_t piece = data[0] >> 2;
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  mp::detail::Handshake handshake(role, key);
  try {
    while (!handshake.finished()) {
      handshake.sent(handshake.outgoing().size());
      std::size_t wanted = handshake.wanted();
      if (wanted == 0 || wanted > 4 + mp::detail::handshake_message_cap) std::abort();
      if (stream.empty()) return 0;  // the peer went quiet
      std::size_t take = std::min({wanted, stream.size(), piece == 0 ? wanted : piece});
      handshake.received(stream.substr(0, take));
      stream.remove_prefix(take);
    }
  } catch (const mp::AuthenticationError&) {
    if (handshake.wanted() != 0) std::abort();  // a failed handshake reads nothing more
  }
  return 0;
}
