// SharedMemory: Python's _TestSharedMemory behaviours (create, attach, errors,
// unlink once), interop with Python's own SharedMemory, and ownership: nothing
// of this suite is left in /dev/shm.
#include <doctest/doctest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "mp/process.hpp"
#include "mp/shared_memory.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

std::string prefix() { return "mp_test_shm_" + std::to_string(::getpid()) + "_"; }
std::string test_name(const char* what) { return prefix() + what; }

bool exists(const std::string& name) { return std::filesystem::exists("/dev/shm/" + name); }

void write_text(mp::SharedMemory& shm, const std::string& text) {
  std::memcpy(shm.buf().data(), text.data(), text.size());
}

std::string read_text(mp::SharedMemory& shm, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(shm.buf().data()), size);
}

}  // namespace

TEST_SUITE("shared_memory") {

TEST_CASE("SharedMemory: create, attach in a child, size, unlink once") {
  const std::string name = test_name("basic");
  mp::SharedMemory created(name, true, 5000);
  CHECK(created.name() == name);
  CHECK(created.size() >= 5000);
  CHECK(exists(name));
  write_text(created, "hello");

  mp::Process child([&] {
    mp::SharedMemory attached(name, false, 1);  // size is ignored when attaching
    bool ok = attached.size() == created.size() && read_text(attached, 5) == "hello";
    write_text(attached, "HELLO");
    mp::exit(ok ? 0 : 1);
  });
  child.start();
  child.join(30s);
  CHECK(child.exitcode() == 0);
  CHECK(read_text(created, 5) == "HELLO");
  CHECK(exists(name));  // the attaching child removed nothing

  created.close();
  CHECK_THROWS_AS(created.buf(), mp::ValueError);
  created.unlink();
  CHECK_FALSE(exists(name));
  CHECK_THROWS_AS(created.unlink(), mp::FileNotFoundError);
}

TEST_CASE("SharedMemory: Python's errors") {
  const std::string name = test_name("errors");
  CHECK_THROWS_WITH_AS(mp::SharedMemory(std::nullopt, false),
                       "SharedMemory: 'name' can only be None if create=True", mp::ValueError);
  CHECK_THROWS_WITH_AS(mp::SharedMemory(name, true, 0),
                       "SharedMemory: 'size' must be a positive number different from zero",
                       mp::ValueError);
  CHECK_THROWS_AS(mp::SharedMemory(std::string("bad\0name", 8), true, 10), mp::ValueError);
  CHECK_THROWS_AS(mp::SharedMemory("a/b", true, 10), mp::ValueError);
  CHECK_THROWS_AS(mp::SharedMemory(name, false), mp::FileNotFoundError);
  mp::SharedMemory first(name, true, 10);
  try {
    mp::SharedMemory second(name, true, 10);
    FAIL("creating an existing name must throw");
  } catch (const mp::FileExistsError& error) {
    CHECK(std::string(error.what()).find(name) != std::string::npos);
  }
  first.unlink();
}

TEST_CASE("SharedMemory: generated names; the creator owns the name, attachers never remove it") {
  std::string generated;
  {
    mp::SharedMemory anonymous(std::nullopt, true, 100);
    generated = anonymous.name();
    CHECK(generated.rfind("psm_", 0) == 0);
    CHECK(generated.size() == 12);
    CHECK(exists(generated));
    { mp::SharedMemory attached(generated, false); }
    CHECK(exists(generated));
  }
  CHECK_FALSE(exists(generated));  // the creator's destructor unlinked it

  const std::string kept = test_name("kept");
  {
    mp::SharedMemory owner(kept, true, 100);
    owner.release_ownership();
  }
  CHECK(exists(kept));
  mp::SharedMemory(kept, false).unlink();
  CHECK_FALSE(exists(kept));
}

TEST_CASE("SharedMemory: a size /dev/shm cannot hold is an OSError, not a SIGBUS later") {
  const std::string name = test_name("huge");
  CHECK_THROWS_AS(mp::SharedMemory(name, true, std::size_t{1} << 50), mp::OSError);
  CHECK_FALSE(exists(name));
}

// A child gets a mount namespace of its own with a 1 MiB tmpfs on /dev/shm,
// so the test fills a real tmpfs without touching the machine's.
TEST_CASE("SharedMemory: on a full tmpfs, creation fails with ENOSPC and no SIGBUS ever comes") {
  if (::geteuid() != 0) {
    MESSAGE("not root: a tmpfs of our own cannot be mounted, case not run");
    return;
  }
  mp::Process child([] {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=1m") != 0)
      mp::exit(10);
    mp::SharedMemory first("fits", true, 768 << 10);
    std::memset(first.buf().data(), 1, first.size());
    try {
      mp::SharedMemory second("too_big", true, 512 << 10);  // fits the size, not the space left
      mp::exit(11);
    } catch (const mp::OSError& error) {
      if (error.code() != ENOSPC || std::string(error.what()).find("too_big") == std::string::npos) mp::exit(12);
    }
    if (exists("too_big")) mp::exit(13);
    std::memset(first.buf().data(), 2, first.size());  // the first segment is whole and usable
    mp::exit(0);
  });
  child.start();
  child.join(60s);
  CHECK(child.exitcode() == 0);
}

TEST_CASE("SharedMemory: a creator killed with kill -9 leaves no name behind, once its children are gone") {
  const std::string owned = test_name("reaped"), released = test_name("released");
  test_support::Program creator({MP_TEST_HELPERS "/shared_memory_owner", owned, released});
  REQUIRE(creator.read_line() == std::optional<std::string>("ready"));
  CHECK(creator.wait(0ms) == -SIGKILL);
  CHECK(exists(owned));  // its child (alive for 3 s) may still use it
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (exists(owned) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  CHECK_FALSE(exists(owned));
  CHECK(exists(released));  // release_ownership(): meant to outlive its creator
  mp::SharedMemory(released, false).unlink();
}

TEST_CASE("SharedMemory: Python attaches to ours and we attach to Python's") {
  const std::string name = test_name("python");
  mp::SharedMemory ours(name, true, 64);
  write_text(ours, "from-c++");
  const std::string script =
      "import sys\n"
      "from multiprocessing import shared_memory\n"
      "kw = {'track': False} if sys.version_info >= (3, 13) else {}\n"
      "s = shared_memory.SharedMemory(sys.argv[1], **kw)\n"
      "assert bytes(s.buf[:8]) == b'from-c++', bytes(s.buf[:8])\n"
      "s.buf[:8] = b'from-py!'\n"
      "t = shared_memory.SharedMemory(sys.argv[1] + '_py', create=True, size=32, **kw)\n"
      "t.buf[:5] = b'pyseg'\n"
      "if not kw:  # before 3.13 the resource tracker would unlink both at exit\n"
      "    from multiprocessing import resource_tracker\n"
      "    for seg in (s, t): resource_tracker.unregister(seg._name, 'shared_memory')\n"
      "s.close(); t.close()\n";
  test_support::Program python({"python3", "-c", script, name});
  int code = python.wait(60s);
  INFO(python.err());
  REQUIRE(code == 0);
  CHECK(read_text(ours, 8) == "from-py!");
  mp::SharedMemory theirs(name + "_py", false);
  CHECK(read_text(theirs, 5) == "pyseg");
  theirs.unlink();
  ours.unlink();
}

TEST_CASE("SharedMemory: nothing of this suite is left in /dev/shm") {
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm"))
    CHECK_MESSAGE(entry.path().filename().string().rfind(prefix(), 0) != 0, entry.path());
}

}  // TEST_SUITE
