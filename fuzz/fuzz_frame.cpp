// Fuzzes the connection frame reader: the input is what a peer wrote on the
// socket, then it closed. Reading messages (through recv_bytes, recv with a
// type tag, poll and recv_bytes_into) must end in messages, EOFError or an
// mp::Error: no crash, no hang, no allocation the length prefix merely claims.
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>

#include "mp/connection.hpp"
#include "mp/detail/fd.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  const std::uint8_t mode = data[0];
  ++data;
  --size;
  // A writer thread, so that inputs larger than the socket buffer still flow.
  std::thread writer([&] {
    mp::detail::FileDescriptor end(fds[1]);
    try {
      mp::detail::write_all(end.get(), data, size, "fuzz writer");
    } catch (const mp::Error&) {
    }
  });
  mp::Connection reader(fds[0]);
  try {
    for (int messages = 0; messages < 64; ++messages) {
      switch (mode % 4) {
        case 0:
          reader.recv_bytes();
          break;
        case 1:
          reader.recv<std::string>();
          break;
        case 2:
          if (!reader.poll(std::chrono::seconds(5), 1 << 20)) return writer.join(), 0;
          reader.recv_bytes(1 << 20);
          break;
        default: {
          std::array<std::byte, 64> buffer{};
          reader.recv_bytes_into(buffer);
        }
      }
    }
  } catch (const mp::Error&) {
  }
  reader.close();
  writer.join();
  return 0;
}
