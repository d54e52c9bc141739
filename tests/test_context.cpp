// Context: get_context, set_start_method, get_start_method and
// get_all_start_methods (Python: multiprocessing.context), and a port of the
// docs' "Contexts and start methods" example through the context's factories.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "mp/context.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using test_support::error_text;

namespace {

constexpr auto patience = 60s;  // the bound on every wait: a bug fails, never hangs

void put_hello(mp::Queue<std::string> queue) { queue.put("hello"); }
int cube(int x) { return x * x * x; }

}  // namespace

TEST_SUITE("context") {
  TEST_CASE("get_context(\"fork\") makes working objects under Python's factory names") {
    // Python: ctx = mp.get_context('fork'); q = ctx.Queue();
    //         p = ctx.Process(target=foo, args=(q,)); p.start(); print(q.get()); p.join()
    mp::Context ctx = mp::get_context("fork");
    CHECK(ctx.get_start_method() == "fork");
    auto queue = ctx.Queue<std::string>();
    auto process = ctx.Process(put_hello, queue);
    process.start();
    CHECK(queue.get(patience) == "hello");
    process.join(patience);
    CHECK(process.exitcode() == 0);

    auto pool = ctx.Pool(2);
    CHECK(pool.map(cube, std::vector<int>{1, 2, 3}) == std::vector<int>{1, 8, 27});
    pool.close();
    pool.join();

    auto [left, right] = ctx.Pipe();
    auto counter = ctx.Value<int>(5);
    auto lock = ctx.Lock();
    auto event = ctx.Event();
    auto numbers = ctx.Array<int>(std::size_t{3});
    auto child = ctx.Process([&, right = right]() mutable {
      {
        std::lock_guard guard(lock);
        counter.fetch_add(1);
        numbers[2] = 7;
      }
      event.set();
      right.send(std::string("from the child"));
    });
    child.start();
    CHECK(event.wait(patience));
    CHECK(left.poll(patience));
    CHECK(left.recv<std::string>() == "from the child");
    child.join(patience);
    CHECK(counter.load() == 6);
    CHECK(numbers[2] == 7);
    CHECK(ctx.cpu_count() == mp::cpu_count());
    CHECK(ctx.active_children().empty());
  }

  TEST_CASE("the default context is fork") {
    CHECK(mp::get_context().get_start_method() == "fork");
    CHECK(mp::get_all_start_methods() == std::vector<std::string>{"fork"});
  }

  TEST_CASE("spawn and forkserver are refused with ValueError saying why and what to use") {
    for (const char* method : {"spawn", "forkserver"}) {
      CAPTURE(method);
      std::string message = error_text<mp::ValueError>([&] { mp::get_context(method); });
      CHECK(message.find(std::string("get_context(\"") + method + "\")") != std::string::npos);
      CHECK(message.find("fork only") != std::string::npos);
      CHECK(message.find("Use \"fork\"") != std::string::npos);
      CHECK(error_text<mp::ValueError>([&] { mp::set_start_method(method, true); })
                .find("set_start_method") != std::string::npos);
    }
    CHECK(error_text<mp::ValueError>([] { mp::get_context("spawn"); }).find("subprocess::Popen") !=
          std::string::npos);
    CHECK(error_text<mp::ValueError>([] { mp::get_context("threads"); })
              .find("cannot find context for 'threads'") != std::string::npos);
  }

  TEST_CASE("set_start_method fixes the method once, as Python's does") {
    // The only case that touches the setting, so the order holds.
    CHECK(mp::get_start_method(true) == std::nullopt);
    CHECK_THROWS_AS(mp::set_start_method("spawn"), mp::ValueError);
    CHECK(mp::get_start_method(true) == std::nullopt);  // a refused method changes nothing
    mp::set_start_method("fork");
    CHECK(mp::get_start_method(true) == "fork");
    CHECK(error_text<mp::ProcessError>([] { mp::set_start_method("fork"); })
              .find("already been set") != std::string::npos);
    mp::set_start_method("fork", true);
    CHECK(mp::get_start_method() == "fork");
  }
}
