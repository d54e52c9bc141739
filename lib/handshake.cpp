// lib/handshake.cpp: the authkey handshake of multiprocessing.connection as
// a state machine (detail/handshake.hpp). Invariants: a frame is read header
// first and its length checked against the 256-byte cap before any payload
// is taken, so a peer can make it hold at most 4 + 256 bytes; wanted() never
// reaches past the end of the current message; digests are compared in
// constant time; #FAILURE# is queued exactly where Python sends it (a wrong
// response to our challenge) and nowhere else.
#include "mp/detail/handshake.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "mp/detail/connection_frame.hpp"
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

// The length word of a frame header: a handshake message is short, so the
// 8-byte length of a long frame is never read.
std::uint32_t announced_length(std::string_view header) noexcept {
  std::uint32_t value = 0;
  for (char byte : header.substr(0, kShortHeaderSize)) value = (value << 8) | static_cast<unsigned char>(byte);
  return value;
}

void check_announced_length(std::uint32_t length) {
  if (length <= handshake_message_cap) return;
  std::string what;
  if (length == 0xffffffffu)
    what = "a long frame (over 2 GiB)";
  else if (length > kLargestShortFrame)
    what = "a negative length " + std::to_string(static_cast<std::int32_t>(length));
  else
    what = std::to_string(length) + " bytes";
  throw AuthenticationError("handshake: bad message length: the peer announced " + what +
                            ", the cap is " + std::to_string(handshake_message_cap) + " bytes");
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

Handshake::Handshake(Role role, std::string authkey)
    : role_(role), authkey_(std::move(authkey)), step_(Step::await_challenge) {
  if (role_ == Role::listener) challenge();
}

void Handshake::queue_message(std::string_view message) {
  FrameHeader header = encode_frame_header(message.size());
  outgoing_.append(reinterpret_cast<const char*>(header.bytes.data()), header.size);
  outgoing_.append(message);
}

// Python's deliver_challenge, first half: the challenge goes out.
void Handshake::challenge() {
  challenge_ = "{sha256}" + random_bytes(random_length);
  queue_message(std::string(challenge_tag) + challenge_);
  step_ = Step::await_response;
}

std::size_t Handshake::wanted() const noexcept {
  if (step_ == Step::finished || step_ == Step::failed) return 0;
  if (incoming_.size() < kShortHeaderSize) return kShortHeaderSize - incoming_.size();
  return kShortHeaderSize + announced_length(incoming_) - incoming_.size();
}

void Handshake::received(std::string_view bytes) {
  try {
    take_bytes(bytes);
  } catch (const AuthenticationError&) {
    step_ = Step::failed;
    throw;
  }
}

void Handshake::take_bytes(std::string_view bytes) {
  while (!bytes.empty()) {
    std::size_t take = std::min(wanted(), bytes.size());
    if (take == 0)
      throw AuthenticationError("handshake: " + std::to_string(bytes.size()) +
                                " bytes after the end of the handshake");
    incoming_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (incoming_.size() == kShortHeaderSize) check_announced_length(announced_length(incoming_));
    if (incoming_.size() >= kShortHeaderSize && wanted() == 0) {
      std::string message = incoming_.substr(kShortHeaderSize);
      incoming_.clear();
      on_message(message);
    }
  }
}

void Handshake::on_message(std::string_view message) {
  switch (step_) {
    case Step::await_response:  // Python's deliver_challenge, second half
      try {
        verify_response(authkey_, challenge_, message);
      } catch (const AuthenticationError&) {
        queue_message(failure);
        throw;
      }
      queue_message(welcome);
      step_ = role_ == Role::listener ? Step::await_challenge : Step::finished;
      return;
    case Step::await_challenge: {  // Python's answer_challenge
      if (message.compare(0, challenge_tag.size(), challenge_tag) != 0)
        throw AuthenticationError("handshake: protocol error, expected a challenge, got " +
                                  printable(message));
      std::string_view challenge = message.substr(challenge_tag.size());
      if (challenge.size() < legacy_challenge_length)
        throw AuthenticationError("handshake: challenge too short: " +
                                  std::to_string(challenge.size()) + " bytes");
      queue_message(create_response(authkey_, challenge));
      step_ = Step::await_welcome;
      return;
    }
    case Step::await_welcome:
      if (message != welcome) throw AuthenticationError("digest sent was rejected");
      if (role_ == Role::client)
        challenge();
      else
        step_ = Step::finished;
      return;
    case Step::finished:
    case Step::failed:
      return;
  }
}

}  // namespace mp::detail
