// Pipe ping-pong: the round trip of a small object between two processes,
// mp::Pipe (cereal send/recv) beside a hand-written raw socketpair ping-pong
// of a fixed-size struct, alternating. Peer: bench/peers/connection.py.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "mp/connection.hpp"

namespace {

using Message = std::pair<int, double>;
constexpr int kRoundTrips = 20'000;

template <class Child>
pid_t fork_child(Child&& body) {
  pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  return pid;
}

template <class Body>
double ns_per_round_trip(Body&& body) {
  auto start = std::chrono::steady_clock::now();
  body();
  std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / kRoundTrips;
}

double mp_pingpong() {
  auto [parent, child] = mp::Pipe();
  pid_t pid = fork_child([&, child = child]() mutable {
    for (int i = 0; i < kRoundTrips; ++i) child.send(child.recv<Message>());
  });
  child.close();
  double result = ns_per_round_trip([&] {
    for (int i = 0; i < kRoundTrips; ++i) {
      parent.send(Message{i, 0.5});
      if (parent.recv<Message>().first != i) std::abort();
    }
  });
  ::waitpid(pid, nullptr, 0);
  return result;
}

void read_exactly(int fd, void* data, std::size_t size) {
  auto* cursor = static_cast<char*>(data);
  while (size > 0) {
    ssize_t got = ::read(fd, cursor, size);
    if (got <= 0) std::abort();
    cursor += got;
    size -= static_cast<std::size_t>(got);
  }
}

double raw_pingpong() {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, ends) != 0) std::abort();
  pid_t pid = fork_child([&] {
    ::close(ends[0]);
    Message message;
    for (int i = 0; i < kRoundTrips; ++i) {
      read_exactly(ends[1], &message, sizeof message);
      if (::send(ends[1], &message, sizeof message, MSG_NOSIGNAL) != sizeof message) std::abort();
    }
  });
  ::close(ends[1]);
  double result = ns_per_round_trip([&] {
    Message message;
    for (int i = 0; i < kRoundTrips; ++i) {
      message = {i, 0.5};
      if (::send(ends[0], &message, sizeof message, MSG_NOSIGNAL) != sizeof message) std::abort();
      read_exactly(ends[0], &message, sizeof message);
      if (message.first != i) std::abort();
    }
  });
  ::close(ends[0]);
  ::waitpid(pid, nullptr, 0);
  return result;
}

}  // namespace

int main() {
  for (int round = 0; round < 3; ++round) {
    std::printf("RESULT pipe_pingpong mp %.1f ns/op\n", mp_pingpong());
    std::printf("RESULT pipe_pingpong raw %.1f ns/op\n", raw_pingpong());
    std::fflush(stdout);
  }
}
