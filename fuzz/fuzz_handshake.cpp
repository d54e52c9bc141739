// Fuzzes both roles of the authkey handshake against a peer that says
// anything: the fuzz input is cut into the peer's messages. Either role must
// end in success or mp::AuthenticationError, never a crash, a hang or an
// allocation the peer asked for.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mp/detail/handshake.hpp"
#include "mp/errors.hpp"

namespace {

class ScriptedPeer final : public mp::detail::HandshakeChannel {
 public:
  explicit ScriptedPeer(std::string_view script) : script_(script) {}
  void send_message(std::string_view) override {}
  std::string recv_message(std::size_t max_length) override {
    // Each message: one length byte, then that many bytes (what is there).
    if (script_.empty()) throw mp::AuthenticationError("the peer closed the connection");
    std::size_t length = static_cast<unsigned char>(script_[0]);
    script_.remove_prefix(1);
    std::string message(script_.substr(0, length));
    script_.remove_prefix(message.size());
    if (message.size() > max_length) throw mp::AuthenticationError("message too long");
    return message;
  }

 private:
  std::string_view script_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  bool challenger = data[0] & 1;
  std::string_view key = (data[0] & 2) ? std::string_view("secret") : std::string_view();
  ScriptedPeer peer(input);
  try {
    if (challenger)
      mp::detail::deliver_challenge(peer, key);
    else
      mp::detail::answer_challenge(peer, key);
  } catch (const mp::AuthenticationError&) {
  }
  return 0;
}
