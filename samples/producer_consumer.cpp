// The seed article's producer/consumer, with mp::Queue.
//
// The original's producer created its own Queue inside the child, so it put
// into a queue nobody else could see and the consumer received nothing. Here
// one queue is created before start(), and both children inherit it.
#include <mp/mp.hpp>

#include <iostream>
#include <string>
#include <variant>
#include <vector>

using namespace std::chrono_literals;

// Python's queue carried a list of strings, a list of ints and a string; a
// typed queue carries the same three shapes as a variant.
using Item = std::variant<std::vector<std::string>, std::vector<int>, std::string>;

std::string describe(const Item& item) {
  struct {
    std::string operator()(const std::vector<std::string>& v) const {
      std::string s = "[";
      for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", '" : "'") + v[i] + "'";
      return s + "]";
    }
    std::string operator()(const std::vector<int>& v) const {
      std::string s = "[";
      for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
      return s + "]";
    }
    std::string operator()(const std::string& s) const { return "'" + s + "'"; }
  } show;
  return std::visit(show, item);
}

int main() {
  mp::Queue<Item> queue;

  mp::Process producer([&] {
    queue.put(std::vector<std::string>{"apple", "banana"});
    queue.put(std::vector<int>{1, 2});
    queue.put(std::string("hello"));
  });
  // The consumer takes the first two items; the main process drains the rest.
  mp::Process consumer([&] {
    for (int i = 0; i < 2; ++i) std::cout << "consumer got: " << describe(queue.get(10s)) << std::endl;
  });

  producer.start();
  consumer.start();
  producer.join();
  consumer.join();

  while (!queue.empty()) std::cout << "main drained: " << describe(queue.get_nowait()) << "\n";
  std::cout << "producer exit code " << *producer.exitcode() << ", consumer exit code "
            << *consumer.exitcode() << "\n";
  return producer.exitcode() == 0 && consumer.exitcode() == 0 ? 0 : 1;
}
