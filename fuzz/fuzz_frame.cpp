// Fuzzes the connection frame reader and its ready decision: the input is
// what a peer wrote on a pipe or a socket (first byte: which end kind, whether
// the peer then closed, which receive). Before each receive, poll() and
// wait() must agree; when they say ready the receive must return (message or
// mp::Error) without blocking (an alarm turns a block into a crash), and it
// must take out of the kernel exactly the one frame the bytes announce, no
// more. With the peer gone every state is ready. No crash, no allocation the
// length prefix merely claims.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mp/connection.hpp"
#include "mp/detail/connection_frame.hpp"

namespace {

// Below what any pipe or socket buffer holds: the whole input sits in the
// kernel, so "ready" can only mean "a receive does not block".
constexpr std::size_t kLargestInput = 2000;

int queued(int fd) {
  int bytes = 0;
  if (::ioctl(fd, FIONREAD, &bytes) != 0) std::abort();
  return bytes;
}

// The size of the frame at the front of `rest`, as the receive must consume it.
std::size_t frame_size(std::string_view rest) {
  auto header = mp::detail::decode_frame_header(rest, "fuzz");
  if (!header) std::abort();
  return header->header_size + static_cast<std::size_t>(header->payload_size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > kLargestInput) return 0;
  const std::uint8_t mode = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool socket = mode & 1, peer_closes = mode & 2;
  int fds[2];
  if ((socket ? ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) : ::pipe2(fds, O_CLOEXEC)) != 0)
    return 0;
  if (::write(fds[1], input.data(), input.size()) != static_cast<ssize_t>(input.size())) std::abort();
  if (peer_closes) ::close(fds[1]);
  mp::Connection reader(fds[0], true, socket);
  constexpr std::size_t maxlength = 256;
  std::size_t consumed = 0;
  for (int messages = 0; messages < 64; ++messages) {
    const bool with_maxlength = (mode >> 2) % 4 == 2;
    bool ready = with_maxlength ? reader.poll(std::chrono::seconds(0), maxlength) : reader.poll();
    bool waited = mp::wait({reader.fileno()}, std::chrono::seconds(0)).size() == 1;
    if (!with_maxlength && ready != waited) std::abort();
    if (!ready) {
      if (peer_closes) std::abort();  // the end of the stream is always ready
      break;
    }
    const int before = queued(fds[0]);
    ::alarm(5);  // a receive that blocks after "ready" is a crash
    try {
      switch ((mode >> 2) % 4) {
        case 0:
          reader.recv_bytes();
          break;
        case 1:
          reader.recv<std::string>();
          break;
        case 2:
          reader.recv_bytes(maxlength);
          break;
        default: {
          std::array<std::byte, 64> buffer{};
          reader.recv_bytes_into(buffer);
        }
      }
    } catch (const mp::SerializationError&) {
      // A whole frame that is not a tagged string: consumed, the stream goes on.
    } catch (const mp::BufferTooShort&) {
    } catch (const mp::Error&) {
      ::alarm(0);
      break;
    }
    ::alarm(0);
    const std::size_t frame = frame_size(input.substr(consumed));
    if (static_cast<std::size_t>(before - queued(fds[0])) != frame) std::abort();
    consumed += frame;
  }
  reader.close();
  if (!peer_closes) ::close(fds[1]);
  return 0;
}
