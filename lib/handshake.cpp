#include "mp/detail/handshake.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <array>

#include "mp/detail/syscall.hpp"
#include "mp/errors.hpp"

namespace mp::detail {
namespace {

constexpr std::string_view challenge_tag = "#CHALLENGE#";
constexpr std::string_view welcome = "#WELCOME#";
constexpr std::string_view failure = "#FAILURE#";
constexpr std::size_t random_length = 40;     // Python's MESSAGE_LENGTH, must be > 20
constexpr std::size_t legacy_challenge_length = 20;
constexpr std::size_t legacy_digest_length = 16;
constexpr std::array<std::string_view, 5> allowed_digests = {"md5", "sha256", "sha384",
                                                             "sha3_256", "sha3_384"};

const EVP_MD* digest_by_name(std::string_view name) {
  if (name == "md5") return EVP_md5();
  if (name == "sha256") return EVP_sha256();
  if (name == "sha384") return EVP_sha384();
  if (name == "sha3_256") return EVP_sha3_256();
  if (name == "sha3_384") return EVP_sha3_384();
  return nullptr;
}

std::string printable(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return bytes.size() > 64 ? out + "..." : out;
}

struct DigestAndPayload {
  std::string_view digest;  // empty: legacy, no prefix (HMAC-MD5)
  std::string_view payload;
};

// Python's _get_digest_name_and_payload.
DigestAndPayload split_digest(std::string_view message) {
  if (message.size() == legacy_challenge_length || message.size() == legacy_digest_length)
    return {{}, message};
  if (!message.empty() && message[0] == '{') {
    auto curly = message.find('}', 1);
    if (curly != std::string_view::npos && curly <= 1 + 8) {
      std::string_view digest = message.substr(1, curly - 1);
      for (std::string_view allowed : allowed_digests)
        if (digest == allowed) return {digest, message.substr(curly + 1)};
    }
  }
  throw AuthenticationError(
      "handshake: unsupported message length, missing digest prefix, or unsupported digest: " +
      printable(message));
}

std::string random_bytes(std::size_t count) {
  std::string bytes(count, '\0');
  std::size_t filled = 0;
  while (filled < count) {
    auto got = check("getrandom", [&] { return ::getrandom(bytes.data() + filled, count - filled, 0); });
    filled += static_cast<std::size_t>(got);
  }
  return bytes;
}

// Python's _create_response.
std::string create_response(std::string_view authkey, std::string_view message) {
  std::string_view digest = split_digest(message).digest;
  if (digest.empty()) return hmac_digest("md5", authkey, message);
  return "{" + std::string(digest) + "}" + hmac_digest(digest, authkey, message);
}

// Python's _verify_challenge.
void verify_response(std::string_view authkey, std::string_view message, std::string_view response) {
  auto [digest, mac] = split_digest(response);
  if (digest.empty()) digest = "md5";
  std::string expected = hmac_digest(digest, authkey, message);
  if (expected.size() != mac.size())
    throw AuthenticationError("handshake: expected '" + std::string(digest) + "' of length " +
                              std::to_string(expected.size()) + ", got " +
                              std::to_string(mac.size()));
  if (CRYPTO_memcmp(expected.data(), mac.data(), mac.size()) != 0)
    throw AuthenticationError("digest received was wrong");
}

}  // namespace

std::string hmac_digest(std::string_view digest_name, std::string_view key, std::string_view message) {
  const EVP_MD* md = digest_by_name(digest_name);
  if (md == nullptr) return {};
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  static const unsigned char no_key = 0;  // OpenSSL reads a null key as "reuse the last one"
  const void* key_bytes = key.empty() ? static_cast<const void*>(&no_key) : key.data();
  if (HMAC(md, key_bytes, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out,
           &length) == nullptr)
    throw AuthenticationError("handshake: HMAC-" + std::string(digest_name) + " is not available");
  return std::string(reinterpret_cast<const char*>(out), length);
}

void deliver_challenge(HandshakeChannel& channel, std::string_view authkey) {
  std::string message = "{sha256}" + random_bytes(random_length);
  channel.send_message(std::string(challenge_tag) + message);
  std::string response = channel.recv_message(handshake_message_cap);
  try {
    verify_response(authkey, message, response);
  } catch (const AuthenticationError&) {
    channel.send_message(failure);
    throw;
  }
  channel.send_message(welcome);
}

void answer_challenge(HandshakeChannel& channel, std::string_view authkey) {
  std::string message = channel.recv_message(handshake_message_cap);
  if (message.compare(0, challenge_tag.size(), challenge_tag) != 0)
    throw AuthenticationError("handshake: protocol error, expected a challenge, got " +
                              printable(message));
  std::string_view challenge = std::string_view(message).substr(challenge_tag.size());
  if (challenge.size() < legacy_challenge_length)
    throw AuthenticationError("handshake: challenge too short: " + std::to_string(challenge.size()) +
                              " bytes");
  channel.send_message(create_response(authkey, challenge));
  if (channel.recv_message(handshake_message_cap) != welcome)
    throw AuthenticationError("digest sent was rejected");
}

}  // namespace mp::detail
