// A small-message round trip over loopback TCP through Listener/Client,
// against Python's multiprocessing.connection (bench/peers/listener_peer.py).
#include <chrono>
#include <cstdio>

#include "mp/connection.hpp"
#include "mp/process.hpp"

int main() {
  constexpr int round_trips = 20'000;
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0), std::string("bench"));
  mp::Process echo([address = listener.address()] {
    auto connection = mp::Client(address, std::string("bench"));
    for (int i = 0; i < round_trips + 100; ++i) connection.send_bytes(connection.recv_bytes());
  });
  echo.start();
  auto connection = listener.accept();
  for (int i = 0; i < 100; ++i) {  // warm up
    connection.send_bytes("ping-ping-ping-ping");
    connection.recv_bytes();
  }
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < round_trips; ++i) {
    connection.send_bytes("ping-ping-ping-ping");
    connection.recv_bytes();
  }
  std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
  std::printf("RESULT tcp_roundtrip mp %.1f ns/op\n", elapsed.count() / round_trips);
  echo.join(std::chrono::seconds(30));
}
