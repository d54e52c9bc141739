// The Listener/Client pair of Python's multiprocessing docs ("Listeners and
// Clients"): the server sends an object and two byte messages, the client
// prints them. Either side talks to Python's side as well as to its own.
// Python reference: python/listener_client.py (the same two roles).
//   listener_client server      listens on 127.0.0.1, any free port (the docs
//                               use port 6000), prints the address, serves one
//                               client
//   listener_client client PORT
//
// The docs' object is [2.25, None, 'junk', float]. `float` (a class) cannot
// cross as an mp::Object: mp's pickle refuses every pickle that names a class
// or a function, so this server sends the list without it, and this client,
// given Python's original list, prints the refusal (SerializationError naming
// the opcode) and goes on with the next message.
#include <mp/mp.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

namespace {

const char* const authkey = "secret password";

// Python's repr of an ('host', port) address.
std::string address_repr(const mp::Address& address) {
  return mp::Object(mp::Tuple{address.host, static_cast<std::int64_t>(address.port)}).repr();
}

void serve() {
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0), authkey);
  std::printf("listening on %s\n", address_repr(listener.address()).c_str());
  std::fflush(stdout);
  mp::Connection conn = listener.accept();
  std::printf("connection accepted from %s\n", address_repr(*listener.last_accepted()).c_str());

  conn.send(mp::Object(mp::List{2.25, mp::None, "junk"}));

  conn.send_bytes("hello");

  const std::array<std::int32_t, 2> numbers{42, 1729};  // Python's array('i', [42, 1729])
  conn.send_bytes(std::as_bytes(std::span(numbers)));
}

void connect(std::uint16_t port) {
  mp::Connection conn = mp::Client(mp::tcp_address("127.0.0.1", port), authkey);
  try {
    std::printf("%s\n", conn.recv<mp::Object>().repr().c_str());  // => [2.25, None, 'junk']
  } catch (const mp::SerializationError& refused) {
    std::printf("refused: %s\n", refused.what());
  }

  std::printf("%s\n", mp::Object(mp::Bytes(conn.recv_bytes())).repr().c_str());  // => b'hello'

  std::array<std::int32_t, 5> arr{};
  std::printf("%zu\n", conn.recv_bytes_into(std::as_writable_bytes(std::span(arr))));  // => 8
  std::printf("array('i', [%d, %d, %d, %d, %d])\n", arr[0], arr[1], arr[2], arr[3], arr[4]);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string role = argc > 1 ? argv[1] : "";
  if (role == "server" && argc == 2) {
    serve();
  } else if (role == "client" && argc == 3) {
    connect(static_cast<std::uint16_t>(std::stoi(argv[2])));
  } else {
    std::fprintf(stderr, "usage: %s server | client PORT\n", argv[0]);
    return 2;
  }
}
