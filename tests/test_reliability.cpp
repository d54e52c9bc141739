// Reliability: storms of signals during blocking calls, and running out of
// processes or descriptors while creating objects.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "mp/connection.hpp"
#include "mp/detail/syscall.hpp"
#include "mp/pool.hpp"
#include "mp/process.hpp"
#include "mp/queues.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/synchronize.hpp"
#include "mp/subprocess.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

std::atomic<int> signals_seen{0};
void count_signal(int) { signals_seen.fetch_add(1, std::memory_order_relaxed); }

// Installs a SIGUSR1 handler without SA_RESTART (so every blocking system
// call it interrupts fails with EINTR) and has a child process send SIGUSR1
// to us every 100 microseconds until destroyed.
class SignalStorm {
 public:
  SignalStorm() {
    struct sigaction action {};
    action.sa_handler = count_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART
    sigaction(SIGUSR1, &action, &previous_);
    const pid_t target = ::getpid();
    sender_ = std::make_unique<mp::Process>([target] {
      for (;;) {
        ::kill(target, SIGUSR1);
        ::usleep(100);
      }
    });
    sender_->start();
    // The storm has begun before the calls under test: a fast call must not
    // slip through ahead of the first signal.
    const int seen = signals_seen.load();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (signals_seen.load() == seen && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
  }
  ~SignalStorm() {
    sender_->kill();
    sender_->join(10s);
    sigaction(SIGUSR1, &previous_, nullptr);
  }

 private:
  struct sigaction previous_ {};
  std::unique_ptr<mp::Process> sender_;
};

int slow_square(int x) {
  std::this_thread::sleep_for(2ms);
  return x * x;
}

}  // namespace

TEST_CASE("a storm of SIGUSR1 never makes a blocking call fail or lose data") {
  SignalStorm storm;
  const int before = signals_seen.load();

  SUBCASE("Connection send and recv of 8 MiB across processes") {
    auto [here, there] = mp::Pipe();
    mp::Process echo([there = there]() mutable { there.send_bytes(there.recv_bytes()); });
    echo.start();
    std::string big(8 << 20, 'x');
    here.send_bytes(big);
    CHECK(here.poll(30s));
    CHECK(here.recv_bytes() == big);
    echo.join(30s);
    CHECK(echo.exitcode() == 0);
  }
  SUBCASE("Listener accept and the authkey handshake, with a late client") {
    mp::Listener listener(mp::tcp_address("127.0.0.1", 0), std::string("key"));
    mp::Process client([address = listener.address()] {
      std::this_thread::sleep_for(200ms);  // accept() waits through many signals first
      mp::Client(address, std::string("key")).send_bytes("late");
    });
    client.start();
    CHECK(listener.accept().recv_bytes() == "late");
    client.join(30s);
    CHECK(client.exitcode() == 0);
  }
  SUBCASE("Queue put and get, with a slow producer") {
    mp::Queue<int> queue(4);
    mp::Process producer([&] {
      for (int i = 0; i < 200; ++i) {
        if (i % 10 == 0) std::this_thread::sleep_for(2ms);  // the consumer blocks in get meanwhile
        queue.put(i);
      }
    });
    producer.start();
    for (int i = 0; i < 200; ++i) REQUIRE(queue.get(30s) == i);  // a dead producer fails once, not 200 times
    producer.join(30s);
    CHECK(producer.exitcode() == 0);
  }
  SUBCASE("Lock acquire, Semaphore acquire and Event wait while another process holds them") {
    mp::Lock lock;
    mp::Semaphore semaphore(0);
    mp::Event holding, go;
    mp::Process holder([&] {
      lock.acquire();
      holding.set();
      std::this_thread::sleep_for(200ms);
      lock.release();
      std::this_thread::sleep_for(200ms);
      semaphore.release();
      std::this_thread::sleep_for(200ms);
      go.set();
    });
    holder.start();
    REQUIRE(holding.wait(30s));
    CHECK(lock.acquire(30s));
    lock.release();
    CHECK(semaphore.acquire(30s));
    CHECK(go.wait(30s));
    holder.join(30s);
    CHECK(holder.exitcode() == 0);
  }
  SUBCASE("Condition wait and notify across processes") {
    mp::Condition condition;
    mp::Value<int> stage(0);
    mp::Process notifier([&] {
      for (int round = 1; round <= 3; ++round) {
        std::this_thread::sleep_for(100ms);
        std::lock_guard guard(condition);
        stage.value() = round;
        condition.notify_all();
      }
    });
    notifier.start();
    {
      std::unique_lock guard(condition);
      CHECK(condition.wait_for([&] { return stage.value() == 3; }, 30s));
    }
    notifier.join(30s);
    CHECK(notifier.exitcode() == 0);
  }
  SUBCASE("Process join waits out the whole timeout, then the child") {
    mp::Process sleeper([] { std::this_thread::sleep_for(300ms); });
    sleeper.start();
    auto start = std::chrono::steady_clock::now();
    sleeper.join(100ms);
    CHECK(std::chrono::steady_clock::now() - start >= 100ms);
    CHECK(sleeper.is_alive());
    sleeper.join(30s);
    CHECK(sleeper.exitcode() == 0);
  }
  SUBCASE("Pool.map") {
    mp::Pool pool(2);
    std::vector<int> inputs(100);
    for (int i = 0; i < 100; ++i) inputs[static_cast<std::size_t>(i)] = i;
    auto squares = pool.map_async(slow_square, inputs, 1).get(60s);
    for (int i = 0; i < 100; ++i) CHECK(squares[static_cast<std::size_t>(i)] == i * i);
  }
  SUBCASE("subprocess communicate of 4 MiB through cat") {
    mp::subprocess::Popen cat({"cat"}, {.in = mp::subprocess::PIPE, .out = mp::subprocess::PIPE});
    std::string data(4 << 20, 'y');
    auto [out, err] = cat.communicate(data, 60s);
    CHECK(out == data);
    CHECK(cat.wait(30s) == 0);
  }
  CHECK(signals_seen.load() > before);  // the storm really hit those calls
}

TEST_CASE("fork failing while a Pool starts: a clear error, and the started workers go away") {
  // Root ignores RLIMIT_NPROC, so fork's EAGAIN is injected at the door.
  std::vector<int> before = mp::active_children();
  mp::detail::inject_fault("fork", EAGAIN, 1, 2);  // the third worker cannot start
  try {
    mp::Pool pool(4);
    FAIL("no exception");
  } catch (const mp::OSError& e) {
    CHECK(e.code() == EAGAIN);
    CHECK(std::string(e.what()).find("ForkPoolWorker") != std::string::npos);
  }
  mp::detail::clear_faults();
  CHECK(mp::active_children() == before);

  mp::detail::inject_fault("fork", EAGAIN);
  mp::Process process([] {});
  CHECK_THROWS_AS(process.start(), mp::OSError);
  mp::detail::clear_faults();
  CHECK_FALSE(process.pid().has_value());
}

// A task that ends its worker, so that the pool has to fork a replacement.
int exit_unless_zero(int code) {
  if (code != 0) ::_exit(code);
  return 1;
}

// A fault armed for one test: cleared however the test ends, so that a
// failed check does not leave the rest of the suite unable to fork.
class ArmedFault {
 public:
  ArmedFault(const char* call, int code, int count) { mp::detail::inject_fault(call, code, count); }
  ~ArmedFault() { clear(); }
  void clear() noexcept { mp::detail::clear_faults(); }
};

// What a replacement worker needs from the kernel, each of which can fail:
// the process, its task queue's memfd, its pidfd.
struct StartFailure {
  const char* call;
  int code;
};
StartFailure pick_start_failure() {
  StartFailure failure{"fork", EAGAIN};
  SUBCASE("fork: EAGAIN") { failure = {"fork", EAGAIN}; }
  SUBCASE("memfd_create: EMFILE") { failure = {"memfd_create", EMFILE}; }
  SUBCASE("pidfd_open: EMFILE") { failure = {"pidfd_open", EMFILE}; }
  return failure;
}

TEST_CASE("a replacement worker failing to start: the others go on, the slot is filled later") {
  StartFailure failure = pick_start_failure();
  mp::Pool pool(2);
  REQUIRE(pool.worker_pids().size() == 2);
  ArmedFault fault(failure.call, failure.code, 3);  // the first three tries to replace it fail
  std::vector<int> codes{0, 0, 0, 3, 0, 0, 0, 0, 0, 0};
  auto it = pool.imap(exit_unless_zero, codes, 1);
  for (int code : codes) {
    if (code == 0)
      CHECK(it.next(60s) == 1);
    else
      CHECK_THROWS_AS(it.next(60s), mp::WorkerLost);
  }
  // Tried again every 50 ms: the fourth try succeeds.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (pool.worker_pids().size() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  fault.clear();
  CHECK(pool.worker_pids().size() == 2);
  CHECK(pool.map(slow_square, std::vector<int>{1, 2, 3}, 1) == std::vector<int>{1, 4, 9});
  pool.close();
  pool.join();
}

TEST_CASE("the last worker's replacement failing to start: outstanding and later work fail with the cause") {
  StartFailure failure = pick_start_failure();
  mp::Pool pool(1);
  ArmedFault fault(failure.call, failure.code, 1000);
  auto dying = pool.apply_async(exit_unless_zero, 3);
  try {
    // Behind it in the same worker's queue, or, if the pool already knows
    // that no worker is left, refused at once with the same error.
    pool.apply_async(slow_square, 4).get(60s);
    FAIL_CHECK("no exception");
  } catch (const mp::OSError& e) {
    CHECK(e.code() == failure.code);
    CHECK(std::string(e.what()).find("no worker is left") != std::string::npos);
    CHECK(std::string(e.what()).find(std::string(failure.call) + " failed") != std::string::npos);
  }
  CHECK_THROWS_AS(dying.get(60s), mp::WorkerLost);
  CHECK_THROWS_AS(pool.apply_async(slow_square, 5), mp::OSError);
  fault.clear();
  SUBCASE("close and join") {
    pool.close();
    pool.join();
  }
  SUBCASE("terminate and join") {
    pool.terminate();
    pool.join();
  }
  CHECK(pool.worker_pids().empty());
}

TEST_CASE("poll failing in the pool's watcher thread: deaths are reported late, never lost, no abort") {
  mp::Pool pool(1);
  REQUIRE(pool.worker_pids().size() == 1);
  for (int round = 0; round < 2; ++round) {
    // The watcher polls again after each death; the pool's reaping of the
    // dead worker (Process::join) may take one of these, the watcher the rest.
    mp::detail::inject_fault("poll", ENOMEM, 5);
    CHECK_THROWS_AS(pool.apply_async(exit_unless_zero, 3).get(60s), mp::WorkerLost);
  }
  mp::detail::clear_faults();
  CHECK(pool.apply(slow_square, 6) == 36);
  pool.close();
  pool.join();
}

TEST_CASE("running out of file descriptors while creating objects gives clear errors") {
  // In a child, so that the lowered limit cannot hurt the rest of the suite.
  mp::Process child([] {
    // A little room above what is open now (the test runner may hold many).
    int highest_open = 0;
    for (int fd = 0; fd < 4096; ++fd)
      if (::fcntl(fd, F_GETFD) != -1) highest_open = fd;
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = static_cast<rlim_t>(highest_open + 17);
    setrlimit(RLIMIT_NOFILE, &limit);
    int failures = 0;
    std::vector<std::pair<mp::Connection, mp::Connection>> pipes;
    try {
      for (;;) pipes.push_back(mp::Pipe());
    } catch (const mp::OSError& e) {
      failures += e.code() == EMFILE && std::string(e.what()).find("Pipe") != std::string::npos;
    }
    std::vector<int> fillers;  // a pipe needs two descriptors: take the last odd one too
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
    try {
      mp::Queue<int> queue;
      mp::exit(10);  // a queue needs a descriptor while it is created
    } catch (const mp::OSError& e) {
      failures += e.code() == EMFILE && std::string(e.what()).find("Queue") != std::string::npos;
    }
    try {
      mp::Process grandchild([] {});
      grandchild.start();  // its pidfd needs a descriptor
      mp::exit(11);
    } catch (const mp::OSError& e) {
      failures += e.code() == EMFILE;
    }
    pipes.clear();
    for (int fd : fillers) ::close(fd);
    mp::Queue<int> queue;  // with descriptors back, everything works again
    queue.put(1);
    if (failures != 3) mp::exit(20 + failures);
    mp::exit(queue.get(1s) == 1 ? 0 : 1);
  });
  child.start();
  child.join(60s);
  CHECK(child.exitcode().value_or(-1000) == 0);
}
