// The docs' Manager example (multiprocessing, "Sharing state between
// processes: Server process"), with the same output:
//   def f(d, l):
//       d[1] = '1'
//       d['2'] = 2
//       d[0.25] = None
//       l.reverse()
//   with Manager() as manager:
//       d = manager.dict()
//       l = manager.list(range(10))
//       p = Process(target=f, args=(d, l)); p.start(); p.join()
//       print(d)    # {1: '1', '2': 2, 0.25: None}
//       print(l)    # [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
#include <iostream>
#include <mp/managers.hpp>
#include <mp/object.hpp>
#include <mp/process.hpp>
#include <string>
#include <vector>

void f(mp::DictProxy<mp::Object, mp::Object> d, mp::ListProxy<int> l) {
  d.set(1, std::string("1"));
  d.set(std::string("2"), 2);
  d.set(0.25, mp::None);
  l.reverse();
}

int main() {
  mp::Manager manager;
  auto d = manager.dict<mp::Object, mp::Object>();
  auto l = manager.list<int>();
  l.extend(std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  mp::Process p(f, d, l);
  p.start();
  p.join();

  mp::Dict printed;
  for (auto& [key, value] : d.items()) printed.set(key, value);
  std::cout << mp::Object(printed).repr() << "\n";
  std::vector<mp::Object> items;
  for (int x : l.copy()) items.emplace_back(x);
  std::cout << mp::Object(items).repr() << std::endl;
  return p.exitcode().value_or(1);
}
