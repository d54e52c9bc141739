// Compiled, never run: every public header, with the templates a program
// typically instantiates, under the strictest warnings mp promises to be
// clean under (tests/meson.build adds -Wshadow -Wconversion -Wpedantic
// -Werror). A warning in a header warns in every includer, whose own flags
// mp does not choose.
#include <mp/mp.hpp>
#include <mp/mpi.hpp>  // not in mp.hpp: it needs libmp_mpi to link

#include <chrono>
#include <string>
#include <tuple>
#include <vector>

namespace {

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
void nothing() {}

struct Scaled {
  double factor = 1.0;
  double operator()(double x) const { return x * factor; }
  template <class Archive>
  void serialize(Archive& archive) {
    archive(factor);
  }
};

}  // namespace

void headers_clean_instantiations();
void headers_clean_instantiations() {
  using namespace std::chrono_literals;

  mp::Queue<std::string> strings(4);
  strings.put("x", 10ms);
  strings.put_nowait(std::string(3, 'y'));
  (void)strings.get(10ms);
  mp::Queue<int> ints;
  ints.put(1, false);
  (void)ints.get_nowait();
  mp::JoinableQueue<std::vector<double>> joinable;
  (void)joinable.join(1ms);
  mp::SimpleQueue<std::tuple<int, std::string>> simple;
  simple.put({1, "a"});

  auto [left, right] = mp::Pipe();
  left.send(std::vector<int>{1, 2});
  (void)right.recv<std::vector<int>>();
  (void)right.poll(1ms);
  (void)mp::wait(std::vector<int>{left.fileno()}, 1ms);

  mp::Value<long> counter(0);
  counter.fetch_add(1);
  counter.store(counter.load() + 1);
  mp::Value<double> real(0.5);
  real.store(1.5);
  mp::Array<int> numbers{1, 2, 3};
  numbers[0] = 4;
  mp::RawArray<char> bytes(8);
  mp::RawValue<unsigned> raw(1U);
  raw.store(2U);

  mp::Lock lock;
  (void)lock.acquire(1ms);
  mp::Condition condition;
  (void)condition.wait_for([] { return true; }, 1ms);
  mp::Event event;
  (void)event.wait(1ms);
  mp::Semaphore semaphore(2);
  (void)semaphore.acquire(1ms);

  auto context = mp::get_context("fork");
  auto context_queue = context.Queue<int>(2);
  auto context_value = context.Value<long>(1L);
  auto context_process = context.Process(nothing);
  auto context_pool = context.Pool(1);
  auto context_array = context.Array<int>(3);
  auto context_listed = context.RawArray<int>({1, 2});

  mp::Process child(add, 1, 2);
  child.start();
  child.join(1s);

  mp::Pool pool(2);
  (void)pool.apply(square, 3);
  (void)pool.apply_async(nothing).get(1s);
  (void)pool.map(square, std::vector<int>{1, 2, 3});
  (void)pool.map(Scaled{2.0}, std::vector<double>{1.0});
  (void)pool.starmap(add, std::vector<std::tuple<int, int>>{{1, 2}});
  for (int value : pool.imap(square, std::vector<int>{1, 2})) (void)value;
  for (int value : pool.imap_unordered([](int x) { return x + 1; }, std::vector<int>{1})) (void)value;
  (void)pool.map_async(mp::Callbacks{[](const std::vector<int>&) {}, nullptr}, square,
                       std::vector<int>{1})
      .wait(1s);

  mp::ThreadPool threads(2);
  int offset = 1;
  (void)threads.map([&offset](int x) { return x + offset; }, std::vector<int>{1, 2});
  (void)threads.starmap(add, std::vector<std::tuple<int, int>>{{1, 2}});
  for (int value : threads.imap([](int x) { return x; }, std::vector<int>{1})) (void)value;
  (void)threads.apply_async(mp::Callbacks{[](const int&) {}, [](const std::exception&) {}}, square, 2)
      .get(1s);

  mp::ProcessPoolExecutor executor(2);
  auto future = executor.submit(add, 1, 2);
  future.add_done_callback([](mp::Future<int>& f) { (void)f.done(); });
  (void)future.result(1s);
  (void)executor.submit(nothing).exception();
  std::vector<mp::Future<int>> futures{future, executor.submit(square, 3)};
  (void)mp::as_completed(futures, 1s);
  (void)mp::wait(futures, 1s, mp::FIRST_EXCEPTION).not_done;
  for (double value : executor.map(Scaled{2.0}, std::vector<double>{1.0}, 1, 1s)) (void)value;
  executor.shutdown(true, true);

  mp::subprocess::Popen popen({"true"}, {.out = mp::subprocess::PIPE});
  (void)popen.wait(1s);
  (void)mp::subprocess::run({"true"}, {.capture_output = true, .timeout = 1s});
}

void headers_clean_mpi(int& argc, char**& argv);
void headers_clean_mpi(int& argc, char**& argv) {
  using namespace std::chrono_literals;
  mp::mpi::Pool pool(argc, argv, {.initializer = nothing, .chunks_in_flight = 2});
  (void)pool.apply(add, 1, 2);
  (void)pool.map(Scaled{2.0}, std::vector<double>{1.0});
  (void)pool.starmap_async(add, std::vector<std::tuple<int, int>>{{1, 2}}).get(1s);
  for (int value : pool.imap_unordered(square, std::vector<int>{1})) (void)value;
  pool.close();
  pool.join();
}
