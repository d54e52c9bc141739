// Must not compile: a Connection cannot travel to pool workers, through
// imap's items either.
#include <vector>

#include "mp/connection.hpp"
#include "mp/pool.hpp"

static int send_one(mp::Connection& connection) {
  connection.send(1);
  return 1;
}

int main() {
  auto [left, right] = mp::Pipe();
  mp::Pool pool(1);
  std::vector<mp::Connection> connections{left};
  int sent = 0;
  for (int one : pool.imap(send_one, connections)) sent += one;
  return sent;
}
