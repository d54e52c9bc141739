// The seed article's socket and select servers, in mp terms: one Listener
// serves three Client processes at once, multiplexing them with mp::wait (the
// select() of multiprocessing.connection) and echoing what each sends until
// each closes.
#include <mp/mp.hpp>

#include <algorithm>
#include <iostream>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr int client_count = 3;
constexpr int messages_per_client = 4;
const std::string authkey = "echo-secret";

void run_client(const mp::Address& server, int id) {
  auto connection = mp::Client(server, authkey);
  for (int i = 0; i < messages_per_client; ++i) {
    std::string message = "client " + std::to_string(id) + " message " + std::to_string(i);
    connection.send_bytes(message);
    if (!connection.poll(10s) || connection.recv_bytes() != message) mp::exit(2);
  }
  connection.close();  // the server sees EOFError and drops us
}

}  // namespace

int main() {
  mp::Listener listener(mp::tcp_address("127.0.0.1", 0), authkey, client_count);
  std::cout << "listening on " << listener.address().to_string() << "\n" << std::flush;

  std::vector<mp::Process> clients;
  for (int id = 0; id < client_count; ++id)
    clients.emplace_back([server = listener.address(), id] { run_client(server, id); });
  for (auto& client : clients) client.start();

  std::map<int, mp::Connection> open;  // by fileno
  int accepted = 0, echoed = 0;
  while (accepted < client_count || !open.empty()) {
    std::vector<int> watched;
    if (accepted < client_count) watched.push_back(listener.fileno());
    for (auto& [fd, connection] : open) watched.push_back(fd);
    auto ready = mp::wait(watched, 30s);
    if (ready.empty()) {
      std::cout << "nothing happened for 30 s; giving up\n";
      return 1;
    }
    for (int fd : ready) {
      if (fd == listener.fileno()) {
        // Readable means progress, not a finished handshake: take what is
        // ready without waiting for a client still in its handshake.
        auto connection = listener.accept(0ms);
        if (!connection) continue;
        ++accepted;
        std::cout << "accepted client from " << listener.last_accepted()->to_string() << "\n";
        open.emplace(connection->fileno(), std::move(*connection));
        continue;
      }
      auto it = open.find(fd);
      try {
        std::string message = it->second.recv_bytes();
        it->second.send_bytes(message);
        ++echoed;
        std::cout << "echoed: " << message << "\n";
      } catch (const mp::EOFError&) {
        std::cout << "a client closed its connection\n";
        it->second.close();
        open.erase(it);
      }
    }
  }
  int failures = 0;
  for (auto& client : clients) {
    client.join(30s);
    failures += client.exitcode() != 0;
  }
  std::cout << "served " << accepted << " clients, echoed " << echoed << " messages, " << failures
            << " client failures\n";
  listener.close();
  return failures == 0 && echoed == client_count * messages_per_client ? 0 : 1;
}
